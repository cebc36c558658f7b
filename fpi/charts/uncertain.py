"""The uncertain queue: which pairs of classes competed for the turns left to review."""

from __future__ import annotations

import numpy as np
import polars as pl
from matplotlib.axes import Axes
from matplotlib.ticker import MaxNLocator

from fpi.charts.style import STAGE_COLORS, STAGE_LABELS, axes_for, no_data, tidy


def uncertain_pairs(df: pl.DataFrame, *, ax: Axes | None = None) -> Axes:
    """Horizontal bars of `turns` per (`predicted`, `runner_up`) pair, largest on top."""
    ax = axes_for(ax, (8, 3.4))
    frame = df.sort("turns")
    labels = [
        f"{STAGE_LABELS.get(p, p)} vs {STAGE_LABELS.get(r, r)}"
        for p, r in zip(frame.get_column("predicted"), frame.get_column("runner_up"), strict=True)
    ]
    positions = np.arange(frame.height)
    ax.barh(
        positions,
        frame.get_column("turns").to_numpy(),
        color=[STAGE_COLORS.get(p, "#444444") for p in frame.get_column("predicted")],
    )
    if frame.is_empty():
        no_data(ax)
    ax.set_yticks(positions, labels)
    ax.set_title("Uncertain turns: best class vs runner-up")
    ax.set_xlabel("Turns left to human review")
    ax.set_ylabel("Competing classes")
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    tidy(ax)
    return ax
