"""The HTML report in a real browser: it loads without errors, every chart decodes, and user
text cannot run script."""

from __future__ import annotations

import polars as pl
import pytest
from fixtures.report.synthetic import synthetic_triage

from fpi.owners import parse_owners
from fpi.report import build_report, write_report
from fpi.report.browser import check_page, chromium_path, screenshot

pytestmark = pytest.mark.skipif(
    chromium_path() is None,
    reason="headless Chromium not installed (Debian package `chromium`; .ci/run installs it)",
)

WEEK = "2026-W47"
INJECTION = (
    "<script>document.documentElement.setAttribute('data-fpi-injected', 'script')</script>"
    "<img src=x onerror=\"document.documentElement.setAttribute('data-fpi-injected', 'img')\">"
)
OWNERS = """\
[teams."<img src=x onerror=alert(1)>"]
contact = "x@example.com"
[[rules]]
failure_point = "asr"
team = "<img src=x onerror=alert(1)>"
"""


@pytest.fixture(scope="module")
def page(tmp_path_factory):
    triaged = synthetic_triage(dialogues_per_week=200)
    template = triaged.filter(
        (pl.col("failure_point") == "asr") & (pl.col("timestamp").dt.strftime("%G-W%V") == WEEK)
    )
    triaged = pl.concat([triaged, template.with_columns(pl.lit(INJECTION).alias("asr_text"))])
    report = build_report(triaged, week=WEEK, weeks_back=4, owners=parse_owners(OWNERS))
    out = tmp_path_factory.mktemp("report")
    written = write_report(report, out)
    return out / "report.html", [p for p in written if p.suffix == ".png"]


def test_report_loads_with_every_chart_and_no_errors(page):
    html_path, charts = page
    result = check_page(html_path)
    assert result["loaded"]
    assert result["errors"] == []
    assert result["images"] == len(charts) > 5
    assert result["decoded"] == result["images"]
    assert "injected" not in result["attributes"]


def test_screenshot(page, tmp_path):
    html_path, _ = page
    png = screenshot(html_path, tmp_path / "shot.png", width=1000, height=1400)
    data = png.read_bytes()
    assert data.startswith(b"\x89PNG")
    width, height = int.from_bytes(data[16:20], "big"), int.from_bytes(data[20:24], "big")
    assert (width, height) == (1000, 1400)
