"""Turns per owner: this week against last week."""

from __future__ import annotations

import numpy as np
import polars as pl
from matplotlib.axes import Axes
from matplotlib.ticker import MaxNLocator

from fpi.charts.style import axes_for, no_data, plain, tidy, week_pair_bars

THIS_WEEK_COLOR = "#0072B2"


def owner_volume(df: pl.DataFrame, *, ax: Axes | None = None) -> Axes:
    """Horizontal bars of `turns` (this week) and `last_turns` per `owner`, largest on top."""
    ax = axes_for(ax, (8, max(2.5, 0.45 * df.height + 1.2)))
    frame = df.sort("turns")
    positions = np.arange(frame.height)
    week_pair_bars(
        ax,
        positions,
        frame.get_column("last_turns").to_numpy(),
        frame.get_column("turns").to_numpy(),
        THIS_WEEK_COLOR,
    )
    if frame.is_empty():
        no_data(ax)
    else:
        ax.legend(loc="lower right", frameon=False)
    ax.set_yticks(positions, [plain(name) for name in frame.get_column("owner")])
    ax.set_title("Turns per owner: this week vs last week")
    ax.set_xlabel("Turns (defects and uncertain)")
    ax.set_ylabel("Owner")
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    tidy(ax)
    return ax
