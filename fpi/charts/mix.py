"""Failure-point mix: this week's rate per failure point against last week's."""

from __future__ import annotations

import numpy as np
import polars as pl
from matplotlib.axes import Axes
from matplotlib.ticker import PercentFormatter

from fpi.charts.style import (
    STAGE_COLORS,
    STAGE_LABELS,
    WEEK_PAIR_HEIGHT,
    axes_for,
    no_data,
    tidy,
    week_pair_bars,
)


def failure_point_mix(df: pl.DataFrame, *, ax: Axes | None = None) -> Axes:
    """Horizontal bars of `rate` (this week) and `last_rate` per `failure_point`; a star marks
    a `significant` change."""
    ax = axes_for(ax, (8, 3.8))
    frame = df.with_columns(pl.col("rate", "last_rate").cast(pl.Float64).fill_null(0.0) * 100)
    stages = frame.get_column("failure_point").to_list()
    positions = np.arange(len(stages))[::-1]
    week_pair_bars(
        ax,
        positions,
        frame.get_column("last_rate").to_numpy(),
        frame.get_column("rate").to_numpy(),
        [STAGE_COLORS.get(s, "#444444") for s in stages],
    )
    significant = frame.get_column("significant").fill_null(False).to_list()
    for y, rate, star in zip(
        positions, frame.get_column("rate").to_list(), significant, strict=True
    ):
        if star:
            ax.annotate(
                "*", (rate, y + WEEK_PAIR_HEIGHT / 2), xytext=(3, -4), textcoords="offset points"
            )
    if not stages:
        no_data(ax)
    ax.set_yticks(positions, [STAGE_LABELS.get(s, s) for s in stages])
    ax.xaxis.set_major_formatter(PercentFormatter(decimals=1))
    ax.set_title("Failure-point mix: this week (colour) vs last week (grey); * significant")
    ax.set_xlabel("Defect rate (% of classified turns)")
    ax.set_ylabel("Failure point")
    tidy(ax)
    return ax
