"""Numbers and sentences for people: percentages, point changes, and the headline paragraph."""

from __future__ import annotations

from datetime import timedelta

import polars as pl

from fpi.charts.style import STAGE_LABELS
from fpi.report.stats import week_start


def stage_label(stage: str | None) -> str:
    return STAGE_LABELS.get(stage, stage) if stage is not None else "–"


def count(value: int | None) -> str:
    return "–" if value is None else f"{value:,}"


def percent(value: float | None, digits: int = 2) -> str:
    return "–" if value is None else f"{value * 100:.{digits}f}%"


def points(value: float | None) -> str:
    """A change of a rate in percentage points, always signed."""
    return "–" if value is None else f"{value * 100:+.2f} pp"


def interval(low: float | None, high: float | None, *, signed: bool = False) -> str:
    if low is None or high is None:
        return "–"
    if signed:
        return f"{low * 100:+.2f} to {high * 100:+.2f} pp"
    return f"{low * 100:.2f}–{high * 100:.2f}%"


def number(value: float | None, digits: int = 2) -> str:
    return "–" if value is None else f"{value:.{digits}f}"


def week_dates(week: str) -> str:
    monday = week_start(week)
    sunday = monday + timedelta(days=6)
    return f"{monday:%a %d %b} – {sunday:%a %d %b %Y}"


def _change_sentence(head: dict) -> str:
    if head["change"] is None:
        return f"No classified turns in {head['previous_week']} to compare against."
    size = f"{abs(head['change']) * 100:.2f} pp"
    direction = (
        f"up {size}"
        if head["change"] > 0
        else f"down {size}"
        if head["change"] < 0
        else "unchanged"
    )
    verdict = (
        "a significant change"
        if head["significant"]
        else "within week-to-week noise (not significant)"
    )
    return (
        f"Last week ({head['previous_week']}) it was {percent(head['last_rate'])}: "
        f"{direction} "
        f"(95% CI {interval(head['change_low'], head['change_high'], signed=True)}), {verdict}."
    )


def summary_text(head: dict, mix: pl.DataFrame, owner: str | None) -> str:
    """The headline paragraph, ready to paste into the weekly defect review."""
    opening = (
        f"Week {head['week']} ({week_dates(head['week'])}): {count(head['turns'])} turns; "
        f"the model classified {count(head['classified'])}"
    )
    queued = head["turns"] - head["classified"]
    opening += (
        f" and left {count(queued)} ({percent(queued / head['turns'], 1)}) for human review."
        if queued and head["turns"]
        else "."
    )
    bounds = f"(95% CI {interval(head['defect_rate_low'], head['defect_rate_high'])})"
    rate = (
        f"Team {owner} owns {count(head['defects'])} defect turns, "
        f"{percent(head['defect_rate'])} of classified turns {bounds}."
        if owner
        else f"Defect rate {percent(head['defect_rate'])} {bounds}: "
        f"{count(head['defects'])} defect turns."
    )
    sentences = [opening, rate, _change_sentence(head)]
    ranked = mix.filter(pl.col("turns") > 0).sort("turns", descending=True)
    if not ranked.is_empty():
        top = ranked.row(0, named=True)
        sentences.append(
            f"{stage_label(top['failure_point'])} carries most defects "
            f"({percent(top['share_of_defects'], 0)} of them, {percent(top['rate'])} of turns)."
        )
    movers = mix.filter(pl.col("significant").fill_null(False))
    if not movers.is_empty():
        moved = ", ".join(
            f"{stage_label(r['failure_point'])} {points(r['change'])}"
            for r in movers.iter_rows(named=True)
        )
        sentences.append(f"Significant moves by failure point: {moved}.")
    return " ".join(sentences)
