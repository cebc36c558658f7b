"""What the report knows about its input traffic: shift from the training traffic this week,
and input drift against last week.

The triage output holds no feature values, so the report reads what triage recorded in the
Parquet file metadata (`fpi.shift.triage_metadata`: the model's training profile and each
ISO week's sampled turns as profile codes); trace dumps given to the report are sampled here
with the bundled model's profile. Both measures are those of `fpi shift`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import polars as pl

from fpi.features import CATALOG
from fpi.profile import BinnedSample, Profile
from fpi.shift import MIN_TURNS, ShiftReport, compare, read_recorded_input, sample_dumps

#: Features listed in the report's input drift table.
TOP_DRIFT = 8
LAST_WEEK = "last week's traffic"
THIS_WEEK = "This week's traffic"


@dataclass
class InputRecord:
    """A profile and, per ISO week, sampled turns binned on it; `notes` say what was left out."""

    profile: Profile | None = None
    weeks: dict[str, BinnedSample] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)

    def add(self, profile: Profile, weeks: dict[str, BinnedSample], source: str) -> None:
        if self.profile is None:
            self.profile = profile
        elif profile.fingerprint != self.profile.fingerprint:
            self.notes.append(f"{source}: triaged with another model's profile, left out")
            return
        for week, sample in weeks.items():
            self.weeks[week] = _concat(self.weeks[week], sample) if week in self.weeks else sample


def _concat(first: BinnedSample, second: BinnedSample) -> BinnedSample:
    offset = first.groups.max(initial=-1) + 1
    return BinnedSample(
        np.vstack([first.codes, second.codes]), np.r_[first.groups, second.groups + offset]
    )


def input_record(
    paths: Sequence[Path | str], *, model_dir: Path | str | None = None
) -> InputRecord:
    """The input record of report inputs: Parquet triage files' metadata, sampled dumps."""
    from fpi.model import load_bundle
    from fpi.io.files import expand_inputs
    from fpi.io.triagefile import is_triage_file

    record = InputRecord()
    dumps = []
    for path in expand_inputs(paths, any_file=True):
        if not is_triage_file(path):
            dumps.append(path)
        elif path.suffix.lower() != ".parquet":
            record.notes.append(f"{path}: only Parquet triage output records its input")
        else:
            recorded = read_recorded_input(path)
            if recorded.profile is None:
                record.notes.append(f"{path}: records no input profile (triaged before fpi shift)")
            else:
                record.add(recorded.profile, recorded.weeks, str(path))
    if dumps:
        profile = load_bundle(model_dir).profile
        if profile is None:
            record.notes.append("the bundled model has no training profile")
        else:
            record.add(profile, sample_dumps(dumps).binned_weeks(profile), "trace dumps")
    return record


def week_shift(record: InputRecord, week: str) -> ShiftReport:
    """This week's sampled turns against the model's training traffic."""
    if record.profile is None:
        return ShiftReport.unknown("; ".join(record.notes) or "no input profile recorded")
    if week not in record.weeks:
        return ShiftReport.unknown(f"no sampled turns recorded for {week}")
    return compare(record.profile, record.weeks[week])


def week_drift(record: InputRecord, week: str, previous: str) -> ShiftReport:
    """This week's sampled turns against last week's, on the training profile's bins."""
    if record.profile is None or week not in record.weeks:
        return ShiftReport.unknown("no input profile recorded for this week")
    if previous not in record.weeks or len(record.weeks[previous]) < MIN_TURNS:
        return ShiftReport.unknown(f"too few sampled turns recorded for {previous}")
    reference = record.profile.with_reference(record.weeks[previous])
    return compare(reference, record.weeks[week], reference=LAST_WEEK)


def drift_table(drift: ShiftReport, n: int = TOP_DRIFT) -> pl.DataFrame:
    """The `n` input features that moved most against last week, with their descriptions."""
    descriptions = pl.DataFrame(
        {"name": [f.name for f in CATALOG], "description": [f.description for f in CATALOG]}
    )
    return (
        drift.features.head(n)
        .join(descriptions, on="name", how="left", maintain_order="left")
        .rename(
            {
                "name": "feature",
                "shift": "psi",
                "missing_rate_train": "missing_last_week",
                "missing_rate_dump": "missing_this_week",
            }
        )
        .select("feature", "stage", "description", "psi", "missing_last_week", "missing_this_week")
    )
