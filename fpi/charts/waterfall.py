"""SHAP waterfall for one turn: from the expected score to the predicted class's raw score."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import polars as pl
from matplotlib.axes import Axes

from fpi.charts.style import plain

PUSH_TOWARD = "#c0392b"
PUSH_AWAY = "#2471a3"
BASE = "#7f8c8d"


def waterfall(df: pl.DataFrame, *, ax: Axes | None = None) -> Axes:
    """Horizontal waterfall of `df` rows (`kind` base/feature/rest, `label`, `contribution`).

    The first row is the base value; each later bar starts where the previous one ended,
    red when it pushes toward the predicted class, blue when it pushes away.
    """
    if ax is None:
        _, ax = plt.subplots(figsize=(9, 0.45 * len(df) + 1.5))
    start = 0.0
    for position, (kind, contribution) in enumerate(df.select("kind", "contribution").iter_rows()):
        y = len(df) - 1 - position
        if kind == "base":
            ax.barh(y, contribution, color=BASE)
            start = contribution
            continue
        colour = PUSH_TOWARD if contribution >= 0 else PUSH_AWAY
        ax.barh(y, contribution, left=start, color=colour)
        ax.text(
            start + contribution,
            y,
            f" {contribution:+.2f}",
            va="center",
            ha="left" if contribution >= 0 else "right",
            fontsize=8,
        )
        start += contribution
    ax.axvline(start, color="black", linewidth=0.8, linestyle="--")
    labels = [plain(label) for label in reversed(df.get_column("label").to_list())]
    ax.set_yticks(range(len(df)), labels, fontsize=8)
    ax.set_xlabel("raw score (log-odds) of the predicted class")
    ax.set_title(f"Why this turn: contributions to the final score {start:.2f}")
    return ax
