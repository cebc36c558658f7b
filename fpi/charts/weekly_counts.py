"""Turns per week, stacked by failure point."""

from __future__ import annotations

import numpy as np
import polars as pl
from matplotlib.axes import Axes
from matplotlib.ticker import MaxNLocator

from fpi.charts.style import STAGE_COLORS, STAGE_LABELS, axes_for, no_data, tidy


def weekly_counts(df: pl.DataFrame, *, ax: Axes | None = None) -> Axes:
    """Stacked bars of `turns` per `week`, one segment per `failure_point`."""
    ax = axes_for(ax, (8, 3.4))
    weeks = df.get_column("week").unique().sort().to_list()
    positions = np.arange(len(weeks))
    bottom = np.zeros(len(weeks))
    present = set(df.filter(pl.col("turns") > 0).get_column("failure_point"))
    for stage in [s for s in STAGE_COLORS if s in present]:
        counts = (
            pl.DataFrame({"week": weeks})
            .join(
                df.filter(pl.col("failure_point") == stage)
                .group_by("week")
                .agg(pl.col("turns").sum()),
                on="week",
                how="left",
            )
            .get_column("turns")
            .fill_null(0)
            .to_numpy()
        )
        ax.bar(
            positions, counts, bottom=bottom, color=STAGE_COLORS[stage], label=STAGE_LABELS[stage]
        )
        bottom += counts
    if not weeks:
        no_data(ax)
    else:
        ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1), frameon=False)
    ax.set_xticks(positions, weeks, rotation=30, ha="right")
    ax.set_title("Turns per week by failure point")
    ax.set_xlabel("ISO week")
    ax.set_ylabel("Turns")
    ax.yaxis.set_major_locator(MaxNLocator(integer=True))
    tidy(ax)
    return ax
