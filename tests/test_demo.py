"""The README's main command, end to end on a small simulated month."""

import json

import polars as pl
from typer.testing import CliRunner

from fpi.cli import app

runner = CliRunner()


def test_demo_simulates_triages_and_reports(tmp_path):
    out, data = tmp_path / "report", tmp_path / "data"
    args = ["demo", "--out", str(out), "--data-dir", str(data), "--turns-per-week", "600"]
    result = runner.invoke(app, [*args, "--weeks", "3", "--owners", "examples/owners.toml"])
    assert result.exit_code == 0, result.output
    assert "read 1,800 = 1,800 accepted + 0 rejected" in result.output
    assert "read 1,800 = 1,800 triaged + 0 rejected" in result.output
    assert "Weekly report 2026-W47" in result.output
    html = (out / "report.html").read_text()
    assert "2026-W47" in html and "<img" in html
    summary = json.loads((out / "report.json").read_text())
    assert summary["week"] == "2026-W47"
    triaged = pl.read_parquet(data / "triage.parquet")
    assert len(triaged) == 1_800
    assert triaged["reasons"].list.len().min() >= 1
    drift_week = triaged.filter(pl.col("dialogue_id").str.starts_with("sim-drift-"))
    assert len(drift_week) == 600


def test_demo_needs_two_weeks(tmp_path):
    result = runner.invoke(app, ["demo", "--weeks", "1", "--out", str(tmp_path)])
    assert result.exit_code == 2
