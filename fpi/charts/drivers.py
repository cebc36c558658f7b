"""The features that drove the attributions: mean |SHAP contribution| per turn."""

from __future__ import annotations

import numpy as np
import polars as pl
from matplotlib.axes import Axes

from fpi.charts.style import STAGE_COLORS, STAGE_LABELS, axes_for, no_data, tidy


def feature_drivers(df: pl.DataFrame, *, ax: Axes | None = None) -> Axes:
    """Horizontal bars of `mean_abs_contribution` per `feature`, coloured by `failure_point`
    (largest on top)."""
    ax = axes_for(ax, (8, 3.6))
    frame = df.sort("mean_abs_contribution")
    stages = frame.get_column("failure_point").unique(maintain_order=True).to_list()
    labels = frame.get_column("feature").to_list()
    if len(stages) > 1:
        labels = [
            f"{STAGE_LABELS.get(s, s)}: {f}"
            for s, f in zip(frame.get_column("failure_point"), labels, strict=True)
        ]
    positions = np.arange(frame.height)
    ax.barh(
        positions,
        frame.get_column("mean_abs_contribution").to_numpy(),
        color=[STAGE_COLORS.get(s, "#444444") for s in frame.get_column("failure_point")],
    )
    if frame.is_empty():
        no_data(ax)
    ax.set_yticks(positions, labels)
    which = STAGE_LABELS.get(stages[0], stages[0]) + " " if len(stages) == 1 else ""
    ax.set_title(f"What drove the {which}attributions this week")
    ax.set_xlabel("Mean |SHAP contribution| per turn (model score units)")
    ax.set_ylabel("Feature")
    tidy(ax)
    return ax
