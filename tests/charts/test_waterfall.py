"""The SHAP waterfall draws user text as written, whatever characters it holds."""

from __future__ import annotations

import io

import matplotlib.pyplot as plt
import polars as pl

from fpi.charts.waterfall import waterfall

HOSTILE = ["$\\frac{a}{$", "cost $5 and $6", "x^2_{i}", "[bold] :smile:"]


def test_labels_with_mathtext_draw_literally() -> None:
    frame = pl.DataFrame(
        {
            "kind": ["base", *["feature"] * len(HOSTILE)],
            "label": ["expected score (asr)", *HOSTILE],
            "contribution": [-1.0, 0.5, -0.25, 0.75, 0.1],
        }
    )
    ax = waterfall(frame)
    ax.figure.savefig(io.BytesIO(), format="png")  # mathtext would raise while drawing
    shown = [tick.get_text() for tick in ax.get_yticklabels()]
    plt.close(ax.figure)
    assert shown[0].replace("\\$", "$") == HOSTILE[-1]
    assert [t.replace("\\$", "$") for t in reversed(shown[:-1])] == HOSTILE
