"""The embedded default job: simulate weeks of traffic, validate, triage, write the weekly report.

Needs no data of the user's own: the simulator makes the traces and the bundled model triages
them. The last simulated week is a `drift` week, so the report shows a real change.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, timedelta
from pathlib import Path

import polars as pl

from fpi.io import ValidationReport, validate_dumps, write_traces
from fpi.model import load_bundle
from fpi.report import run_report
from fpi.report.stats import week_label
from fpi.shift import ShiftCheck
from fpi.simulate import simulate
from fpi.triage import TriageRun, run_triage

DEMO_START = date(2026, 11, 2)  # a Monday: ISO week 2026-W45
#: Confidence below which the demo leaves a turn to people (the report's uncertain queue).
DEMO_ABSTAIN_BELOW = 0.5


@dataclass(frozen=True)
class DemoResult:
    traces_path: Path
    triage_path: Path
    report_files: list[Path]
    week: str
    scenarios: list[tuple[str, str]]  # (ISO week, scenario)
    validation: ValidationReport
    triage: TriageRun
    summary: str  # the report's headline paragraph


def run_demo(
    *,
    out_dir: Path,
    data_dir: Path,
    weeks: int = 4,
    turns_per_week: int = 25_000,
    seed: int = 2026,
    owners_path: Path | None = None,
    model_dir: Path | None = None,
) -> DemoResult:
    """Simulate `weeks` weeks (the last one `drift`), triage them and report on the last week."""
    if weeks < 2:
        raise ValueError("the demo needs at least two weeks (the report compares weeks)")
    frames, scenarios = [], []
    for index in range(weeks):
        monday = DEMO_START + timedelta(weeks=index)
        scenario = "drift" if index == weeks - 1 else "base"
        frames.append(
            simulate(turns_per_week, seed=seed + index, scenario=scenario, start=monday, weeks=1)
        )
        scenarios.append((week_label(monday), scenario))
    traces_path = write_traces(pl.concat(frames), data_dir / "traces.jsonl.gz")
    validation = validate_dumps([traces_path])
    triage_path = data_dir / "triage.parquet"
    bundle = load_bundle(model_dir)
    triage = run_triage(
        [traces_path],
        bundle,
        out=triage_path,
        abstain_below=DEMO_ABSTAIN_BELOW,
        rejects=[],
        shift=ShiftCheck(bundle.profile),
    )
    week = scenarios[-1][0]
    report, written = run_report(
        [triage_path], week=week, weeks_back=weeks, owners_path=owners_path, out_dir=out_dir
    )
    return DemoResult(
        traces_path=traces_path,
        triage_path=triage_path,
        report_files=written,
        week=week,
        scenarios=scenarios,
        validation=validation,
        triage=triage,
        summary=report.summary,
    )
