"""The weekly defect-attribution report: numbers as frames, then HTML and Markdown.

report = build_report(triaged, week="2026-W47", owners=load_owners("owners.toml"))
report.summary, report.headline, report.tables["mix"]   # in a notebook
write_report(report, "reports/2026-W47")                # report.html, report.md, *.png
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import polars as pl

from fpi.errors import FpiError, InputError
from fpi.owners import OWNER, Owners, assign_owners, load_owners
from fpi.report import sections
from fpi.report.drift import THIS_WEEK, InputRecord, drift_table, week_drift, week_shift
from fpi.report.stats import iso_week, week_window
from fpi.report.wording import summary_text

__all__ = ["Report", "build_report", "run_report", "write_report"]


@dataclass(frozen=True)
class Report:
    """A week's report as data. `tables` holds polars frames: trend, mix, carriers, movers,
    drivers, utterances, uncertain_pairs, and with owners: owners, owner_trend, owner_examples."""

    week: str
    weeks: tuple[str, ...]
    owner: str | None
    redacted: bool
    summary: str
    headline: dict[str, Any]
    uncertain: dict[str, Any]
    tables: dict[str, pl.DataFrame]
    #: This week's input against the training traffic and against last week (`fpi.shift`).
    shift: dict[str, Any] | None = None
    drift: dict[str, Any] | None = None

    def to_dict(self) -> dict[str, Any]:
        """Everything as plain JSON-ready values."""
        return {
            "week": self.week,
            "weeks": list(self.weeks),
            "owner": self.owner,
            "redacted": self.redacted,
            "summary": self.summary,
            "headline": self.headline,
            "uncertain": self.uncertain,
            "shift": self.shift,
            "drift": self.drift,
            "tables": {name: frame.to_dicts() for name, frame in self.tables.items()},
        }


def _check_owner(frame: pl.LazyFrame, owners: Owners | None, owner: str) -> None:
    if OWNER not in frame.collect_schema().names():
        raise FpiError(f"--owner {owner}: give --owners FILE (or triage output with owners)")
    if owners is not None:
        known = set(owners.teams)
    else:
        known = set(frame.select(pl.col(OWNER).drop_nulls().unique()).collect().to_series())
    if owner not in known:
        listed = ", ".join(sorted(known)) or "none"
        raise FpiError(f"--owner {owner}: no such team (known: {listed})")


def _no_turns(frame: pl.LazyFrame, week: str) -> FpiError:
    first, last = (
        frame.select(iso_week().min().alias("first"), iso_week().max().alias("last"))
        .collect()
        .row(0)
    )
    if first is None:
        return FpiError(f"no turns in {week}: the input holds no turns in the report's weeks")
    return FpiError(f"no turns in {week}: the input's turns span {first} to {last}")


def build_report(
    triaged: pl.DataFrame | pl.LazyFrame,
    *,
    week: str,
    weeks_back: int = 8,
    owners: Owners | None = None,
    owner: str | None = None,
    redact: bool = False,
    inputs: InputRecord | None = None,
) -> Report:
    """The report for ISO `week` over the `weeks_back` weeks ending with it.

    `triaged` follows `fpi.schema.TRIAGE_SCHEMA` (plus `owner` if already assigned); a lazy
    frame is read only for the columns and rows the report needs. With `owner`, only that
    team's turns count as defects (the denominator stays all classified turns); `redact`
    masks utterances after their first word. `inputs` (`fpi.report.drift.input_record`)
    gives the input shift and the week-over-week input drift; without it they are unknown.
    """
    weeks, _, _ = week_window(week, weeks_back)
    previous = weeks[-2]
    frame = triaged.lazy()
    if owners is not None:
        frame = assign_owners(frame, owners)
    if owner is not None:
        _check_owner(frame, owners, owner)
    try:
        turns, details = sections.prepare(frame, weeks, owner=owner)
    except pl.exceptions.ComputeError as exc:
        raise InputError(f"cannot read the triage input: {exc}") from None
    if turns.filter(pl.col("week") == week).is_empty():
        raise _no_turns(frame, week)
    rates = sections.rates(turns)
    head = sections.headline(turns, rates, week, previous)
    mix = sections.mix(turns, rates, week, previous)
    segment_frame = sections.segments(turns, week, previous)
    uncertain, pairs = sections.uncertain_queue(turns, details, week, previous, redact=redact)
    tables = {
        "trend": sections.trend(rates, weeks),
        "mix": mix,
        "carriers": sections.carriers(segment_frame),
        "movers": sections.movers(segment_frame),
        "drivers": sections.drivers(details),
        "utterances": sections.utterances(details, redact=redact),
        "uncertain_pairs": pairs,
    }
    inputs = inputs if inputs is not None else InputRecord(notes=["no input record given"])
    shift, drift = week_shift(inputs, week), week_drift(inputs, week, previous)
    tables["input_drift"] = drift_table(drift)
    if OWNER in turns.columns:
        tables |= {
            "owners": sections.owner_table(turns, week, previous),
            "owner_trend": sections.owner_trend(turns, weeks),
            "owner_examples": sections.owner_examples(details, redact=redact),
        }
    return Report(
        week=week,
        weeks=tuple(weeks),
        owner=owner,
        redacted=redact,
        summary=f"{summary_text(head, mix, owner)} {shift.sentence(THIS_WEEK)}",
        headline=head,
        uncertain=uncertain,
        tables=tables,
        shift=shift.to_dict(),
        drift=drift.to_dict(),
    )


def write_report(report: Report, out_dir: Path | str) -> list[Path]:
    """Write `report.html` (self-contained), `report.md` with its chart PNGs, and
    `report.json` (the numbers), each atomically once all are rendered; returns the paths."""
    from fpi.io import atomic_output
    from fpi.report.figures import render_charts
    from fpi.report.html import render_html
    from fpi.report.layout import report_blocks, title
    from fpi.report.markdown import render_markdown

    out_dir = Path(out_dir)
    charts = render_charts(report)
    blocks = report_blocks(report, charts)
    heading = title(report)
    contents: dict[str, bytes] = {
        "report.html": render_html(heading, blocks).encode("utf-8"),
        "report.md": render_markdown(heading, blocks).encode("utf-8"),
        "report.json": json.dumps(report.to_dict(), indent=1, default=str).encode("utf-8"),
        **{chart.file_name: chart.png for chart in charts.values()},
    }
    written = []
    for name, data in contents.items():  # everything rendered first; each file atomic
        with atomic_output(out_dir / name) as tmp:
            tmp.write_bytes(data)
        written.append(out_dir / name)
    html_path, md_path, json_path, *pngs = written
    return [html_path, md_path, json_path, *pngs]


def run_report(
    paths: Sequence[Path | str],
    *,
    week: str,
    weeks_back: int = 8,
    owners_path: Path | str | None = None,
    owner: str | None = None,
    redact: bool = False,
    out_dir: Path | str | None = None,
) -> tuple[Report, list[Path]]:
    """`fpi report`: read triage output or trace dumps (only the report's weeks), build the
    report and write it to `out_dir` (default `reports/<week>`)."""
    from fpi.io import check_output
    from fpi.report.drift import input_record
    from fpi.report.inputs import read_report_input

    out_dir = Path(out_dir) if out_dir is not None else Path("reports", week)
    check_output(out_dir, paths, option="--out", directory=True)
    _, since, until = week_window(week, weeks_back)
    owners = load_owners(owners_path) if owners_path is not None else None
    triaged = read_report_input(paths, since=since, until=until)
    report = build_report(
        triaged,
        week=week,
        weeks_back=weeks_back,
        owners=owners,
        owner=owner,
        redact=redact,
        inputs=input_record(paths),
    )
    written = write_report(report, out_dir)
    return report, written
