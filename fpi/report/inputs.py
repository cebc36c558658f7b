"""Reading report inputs: triage output (Parquet or JSONL), or raw trace dumps to triage first."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from pathlib import Path

import polars as pl

from fpi.errors import InputError
from fpi.io.files import expand_inputs
from fpi.io.triagefile import CSV_REFUSED, is_triage_file, scan_triage
from fpi.schema import TRIAGE_SCHEMA


def read_report_input(
    paths: Sequence[Path | str],
    *,
    since: datetime | None = None,
    until: datetime | None = None,
    model_dir: Path | str | None = None,
) -> pl.LazyFrame:
    """Triage rows with `since <= timestamp < until` from triage files and trace dumps alike.

    Parquet triage files stay lazy scans, so a report reads only the columns and rows it
    needs; JSONL files are read into memory, and trace dumps are triaged with
    `fpi.triage.triage_paths` first.
    """
    window = pl.lit(True)
    if since is not None:
        window = window & (pl.col("timestamp") >= since)
    if until is not None:
        window = window & (pl.col("timestamp") < until)
    frames, dumps = [], []
    for path in expand_inputs(paths, any_file=True):
        if path.suffix.lower() == ".csv":
            raise InputError(f"{path}: {CSV_REFUSED}")
        if not is_triage_file(path):
            dumps.append(path)
            continue
        scan = scan_triage(path).filter(window)
        if path.suffix.lower() != ".parquet":
            try:
                scan = scan.collect().lazy()
            except pl.exceptions.PolarsError as exc:
                raise InputError(f"{path}: cannot read triage output ({exc})") from None
        frames.append(scan)
    if dumps:
        from fpi.triage import triage_paths

        frames.append(triage_paths(dumps, model_dir=model_dir).lazy().filter(window))
    if not frames:
        return TRIAGE_SCHEMA.to_frame().lazy()
    return pl.concat(frames, how="diagonal_relaxed")
