"""The report's charts rendered to PNG bytes, one `fpi.charts` function each."""

from __future__ import annotations

import io
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

import polars as pl

from fpi.owners import OWNER, owner_file_stems

if TYPE_CHECKING:
    from fpi.report import Report

DPI = 100


@dataclass(frozen=True, slots=True)
class ChartImage:
    key: str
    title: str
    png: bytes

    @property
    def file_name(self) -> str:
        return f"{self.key}.png"


def render_png(chart: Callable, df: pl.DataFrame, size: tuple[float, float]) -> bytes:
    """Draw `chart(df, ax=...)` on a new Agg figure of `size` inches and return the PNG."""
    from matplotlib.figure import Figure

    figure = Figure(figsize=size, dpi=DPI, layout="constrained")
    chart(df, ax=figure.add_subplot())
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png")
    return buffer.getvalue()


def _bar_chart_height(bars: int) -> float:
    """Inches for a horizontal bar chart: room for the title and axis, then each bar."""
    return max(2.2, 1.1 + 0.32 * bars)


def owner_chart_keys(owners: list[str]) -> dict[str, str]:
    """Chart key per owner, safe as a file name."""
    return {
        name: f"owner-{stem}" for name, stem in zip(owners, owner_file_stems(owners), strict=True)
    }


def render_charts(report: Report) -> dict[str, ChartImage]:
    """Every chart of the report, keyed by name (`trend`, `mix`, `drivers-asr`, ...)."""
    from fpi.charts.drivers import feature_drivers
    from fpi.charts.mix import failure_point_mix
    from fpi.charts.owner_volume import owner_volume
    from fpi.charts.style import STAGE_LABELS
    from fpi.charts.trend import defect_rate_trend
    from fpi.charts.uncertain import uncertain_pairs
    from fpi.charts.weekly_counts import weekly_counts

    tables = report.tables
    wanted: list[tuple[str, str, Callable, pl.DataFrame, tuple[float, float]]] = [
        ("trend", "Weekly defect rate", defect_rate_trend, tables["trend"], (9.5, 4.4)),
        ("mix", "Failure-point mix", failure_point_mix, tables["mix"], (8.5, 3.6)),
    ]
    for (stage,), part in tables["drivers"].group_by("failure_point", maintain_order=True):
        title = f"What drove the {STAGE_LABELS.get(stage, stage)} attributions"
        size = (8.5, _bar_chart_height(part.height))
        wanted.append((f"drivers-{stage}", title, feature_drivers, part, size))
    if not tables["uncertain_pairs"].is_empty():
        pairs = tables["uncertain_pairs"]
        size = (8.5, _bar_chart_height(pairs.height))
        wanted.append(("uncertain", "Uncertain queue", uncertain_pairs, pairs, size))
    if "owners" in tables:
        owner_frame = tables["owners"]
        size = (8.5, _bar_chart_height(2 * owner_frame.height))
        wanted.append(("owners", "Turns per owner", owner_volume, owner_frame, size))
        keys = owner_chart_keys(owner_frame.get_column(OWNER).to_list())
        for name, key in keys.items():
            part = tables["owner_trend"].filter(pl.col(OWNER) == name)
            wanted.append((key, f"{name}: turns per week", weekly_counts, part, (8.5, 3.0)))
    return {
        key: ChartImage(key=key, title=title, png=render_png(chart, df, size))
        for key, title, chart, df, size in wanted
    }
