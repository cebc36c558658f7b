from __future__ import annotations

import io

import matplotlib.pyplot as plt
import polars as pl
import pytest
from matplotlib.axes import Axes
from matplotlib.figure import Figure

from fpi.charts.drivers import feature_drivers
from fpi.charts.mix import failure_point_mix
from fpi.charts.owner_volume import owner_volume
from fpi.charts.trend import defect_rate_trend
from fpi.charts.uncertain import uncertain_pairs
from fpi.charts.weekly_counts import weekly_counts

CHARTS = {
    "trend": (defect_rate_trend, "trend"),
    "mix": (failure_point_mix, "mix"),
    "drivers": (feature_drivers, "drivers"),
    "uncertain": (uncertain_pairs, "uncertain_pairs"),
    "owners": (owner_volume, "owners"),
    "weekly_counts": (weekly_counts, "owner_trend"),
}


def _frame(report, table: str) -> pl.DataFrame:
    frame = report.tables[table]
    return frame.filter(pl.col("owner") == "asr") if table == "owner_trend" else frame


@pytest.mark.parametrize("name", CHARTS)
def test_chart_returns_labelled_axes_without_pyplot(report, name):
    chart, table = CHARTS[name]
    before = plt.get_fignums()
    ax = chart(_frame(report, table))
    assert isinstance(ax, Axes)
    assert ax.get_title() and ax.get_xlabel() and ax.get_ylabel()
    assert plt.get_fignums() == before  # no pyplot figure left open, nothing shown
    buffer = io.BytesIO()
    ax.figure.savefig(buffer, format="png")
    assert buffer.getvalue().startswith(b"\x89PNG")


@pytest.mark.parametrize("name", CHARTS)
def test_chart_draws_on_the_given_axes(report, name):
    chart, table = CHARTS[name]
    ax = Figure().add_subplot()
    assert chart(_frame(report, table), ax=ax) is ax
    assert ax.has_data()


@pytest.mark.parametrize("name", CHARTS)
def test_chart_survives_an_empty_frame(report, name):
    chart, table = CHARTS[name]
    ax = chart(_frame(report, table).clear())
    assert ax.get_title()
    assert any(t.get_text() == "no data" for t in ax.texts)
    ax.figure.savefig(io.BytesIO(), format="png")


def test_trend_draws_one_line_and_band_per_failure_point(report):
    ax = defect_rate_trend(report.tables["trend"])
    labels = [line.get_label() for line in ax.get_lines()]
    assert labels == ["all defects", "false wake", "ASR", "NLU", "ER", "result"]
    assert len(ax.collections) == 6
    assert [t.get_text() for t in ax.get_xticklabels()] == list(report.weeks)


def test_mix_stars_significant_changes(report):
    ax = failure_point_mix(report.tables["mix"])
    significant = report.tables["mix"].get_column("significant").sum()
    assert sum(t.get_text() == "*" for t in ax.texts) == significant > 0


def test_owner_names_with_dollars_are_shown_literally(report):
    ax = owner_volume(report.tables["owners"])
    ax.figure.savefig(io.BytesIO(), format="png")
    labels = [t.get_text() for t in ax.get_yticklabels()]
    assert r"cost \$5 team" in labels
