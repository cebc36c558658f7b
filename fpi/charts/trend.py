"""Weekly defect rate per failure point, with bootstrap intervals."""

from __future__ import annotations

import numpy as np
import polars as pl
from matplotlib.axes import Axes
from matplotlib.ticker import PercentFormatter

from fpi.charts.style import STAGE_COLORS, STAGE_LABELS, axes_for, no_data, tidy


def defect_rate_trend(df: pl.DataFrame, *, ax: Axes | None = None) -> Axes:
    """Lines of `rate` per `failure_point` over `week`, shaded between `low` and `high`.

    Rates are fractions of classified turns; `all` (every defect stage) is drawn dashed.
    """
    ax = axes_for(ax, (9, 4.5))
    weeks = df.get_column("week").unique().sort().to_list()
    positions = np.arange(len(weeks))
    for stage in [s for s in STAGE_COLORS if s in set(df.get_column("failure_point"))]:
        part = (
            pl.DataFrame({"week": weeks})
            .join(df.filter(pl.col("failure_point") == stage), on="week", how="left")
            .with_columns(pl.col("rate", "low", "high").cast(pl.Float64).fill_null(np.nan) * 100)
        )
        color = STAGE_COLORS[stage]
        ax.plot(
            positions,
            part.get_column("rate").to_numpy(),
            marker="o",
            markersize=4,
            color=color,
            linestyle="--" if stage == "all" else "-",
            label=STAGE_LABELS[stage],
        )
        ax.fill_between(
            positions,
            part.get_column("low").to_numpy(),
            part.get_column("high").to_numpy(),
            color=color,
            alpha=0.15,
            linewidth=0,
        )
    if not weeks:
        no_data(ax)
    ax.set_xticks(positions, weeks, rotation=30, ha="right")
    ax.yaxis.set_major_formatter(PercentFormatter(decimals=1))
    ax.set_ylim(bottom=0)
    ax.set_title("Weekly defect rate by failure point (shaded: 95% interval)")
    ax.set_xlabel("ISO week")
    ax.set_ylabel("Defect rate (% of classified turns)")
    if weeks:
        ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1), frameon=False)
    tidy(ax)
    return ax
