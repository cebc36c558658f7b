"""Shared look of the report charts: one colour and one label per failure point."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import numpy as np
    from matplotlib.axes import Axes

#: Okabe-Ito colours (distinguishable with colour-vision deficiency).
STAGE_COLORS = {
    "all": "#222222",
    "correct": "#0072B2",
    "false_wake": "#E69F00",
    "asr": "#56B4E9",
    "nlu": "#009E73",
    "er": "#CC79A7",
    "result": "#D55E00",
    "uncertain": "#999999",
}
STAGE_LABELS = {
    "all": "all defects",
    "correct": "correct",
    "false_wake": "false wake",
    "asr": "ASR",
    "nlu": "NLU",
    "er": "ER",
    "result": "result",
    "uncertain": "uncertain",
}
LAST_WEEK_COLOR = "#C8C8C8"


def axes_for(ax: Axes | None, size: tuple[float, float]) -> Axes:
    """`ax`, or the axes of a new figure of `size` inches (no pyplot, so no global state)."""
    if ax is not None:
        return ax
    from matplotlib.figure import Figure

    return Figure(figsize=size, layout="constrained").add_subplot()


#: Height of each bar of a `week_pair_bars` pair (positions are 1 apart).
WEEK_PAIR_HEIGHT = 0.38


def week_pair_bars(
    ax: Axes, positions: np.ndarray, last_week: np.ndarray, this_week: np.ndarray, color
) -> None:
    """Two horizontal bars per position: last week (grey, below) and this week (`color`)."""
    height = WEEK_PAIR_HEIGHT
    ax.barh(positions - height / 2, last_week, height, color=LAST_WEEK_COLOR, label="last week")
    ax.barh(positions + height / 2, this_week, height, color=color, label="this week")


def plain(text: str) -> str:
    """Text shown as written: `$` would otherwise start matplotlib mathtext."""
    return text.replace("$", r"\$")


def no_data(ax: Axes) -> None:
    ax.text(0.5, 0.5, "no data", ha="center", va="center", transform=ax.transAxes, color="grey")


def tidy(ax: Axes) -> None:
    ax.spines[["top", "right"]].set_visible(False)
    ax.grid(axis="both", color="#E5E5E5", linewidth=0.8)
    ax.set_axisbelow(True)
