"""Reading report inputs: triage output (Parquet or JSONL), or raw trace dumps to triage first."""

from __future__ import annotations

import glob
import gzip
import io
import json
from collections.abc import Sequence
from datetime import datetime
from pathlib import Path

import polars as pl
import zstandard

from fpi.errors import InputError
from fpi.owners import OWNER, OWNER_CONTACT
from fpi.schema import TRIAGE_SCHEMA

DUMP_SUFFIXES = (".parquet", ".jsonl", ".jsonl.gz", ".jsonl.zst")
#: Columns whose presence tells triage output apart from a trace dump.
TRIAGE_MARKERS = ("failure_point", "p_correct")
#: Columns a triage file may carry beyond TRIAGE_SCHEMA that the report uses.
OPTIONAL_COLUMNS = {OWNER: pl.String, OWNER_CONTACT: pl.String}
CSV_REFUSED = "CSV triage output flattens the reasons; write it as .parquet or .jsonl"


def expand_paths(paths: Sequence[Path | str]) -> list[Path]:
    """Files named directly, inside directories (recursively) or matched by globs."""
    files: list[Path] = []
    for raw in paths:
        path = Path(raw)
        if path.is_dir():
            found = sorted(p for p in path.rglob("*") if p.name.lower().endswith(DUMP_SUFFIXES))
            if not found:
                raise InputError(f"{path}: directory holds no {', '.join(DUMP_SUFFIXES)} files")
            files += found
        elif path.is_file():
            files.append(path)
        elif any(ch in str(raw) for ch in "*?["):
            matched = sorted(Path(p) for p in glob.glob(str(raw), recursive=True))
            if not matched:
                raise InputError(f"{raw}: no file matches")
            files += [p for p in matched if p.is_file()]
        else:
            raise InputError(f"{path}: no such file or directory")
    return files


def _first_record_keys(path: Path) -> set[str]:
    name = path.name.lower()
    if name.endswith(".parquet"):
        try:
            return set(pl.read_parquet_schema(path))
        except Exception as exc:  # polars raises several types for a broken file
            raise InputError(f"{path}: not a readable Parquet file ({exc})") from None
    try:
        with path.open("rb") as raw:
            if name.endswith(".gz"):
                stream = gzip.GzipFile(fileobj=raw)
            elif name.endswith(".zst"):
                stream = io.BufferedReader(zstandard.ZstdDecompressor().stream_reader(raw))
            else:
                stream = raw
            for line in stream:
                if line.strip():
                    record = json.loads(line)
                    return set(record) if isinstance(record, dict) else set()
    except (OSError, ValueError, zstandard.ZstdError) as exc:
        raise InputError(f"{path}: not readable as JSON Lines ({exc})") from None
    return set()


def is_triage_file(path: Path) -> bool:
    """Whether the file holds triage output (else it is taken for a trace dump)."""
    return all(marker in _first_record_keys(path) for marker in TRIAGE_MARKERS)


def _scan_triage(path: Path) -> pl.LazyFrame:
    suffix = path.suffix.lower()
    if suffix not in (".parquet", ".jsonl"):
        raise InputError(f"{path}: triage output must be .parquet or .jsonl")
    keys = _first_record_keys(path)
    missing = [c for c in TRIAGE_SCHEMA if c not in keys]
    if missing:
        raise InputError(f"{path}: missing triage columns {', '.join(missing)}")
    extra = {c: t for c, t in OPTIONAL_COLUMNS.items() if c in keys}
    schema = pl.Schema({**TRIAGE_SCHEMA, **extra})
    if suffix == ".parquet":
        frame = pl.scan_parquet(path).select(schema.names())
    else:
        frame = pl.scan_ndjson(path, schema=schema)
    return frame.cast(dict(schema))


def read_triage_file(path: Path | str) -> pl.DataFrame:
    """One triage output file: .parquet or .jsonl as a TRIAGE_SCHEMA frame (plus owner
    columns), .csv (reasons flattened to text) as written."""
    path = Path(path)
    if not path.is_file():
        raise InputError(f"{path}: no such file")
    try:
        if path.suffix.lower() == ".csv":
            return pl.read_csv(path, infer_schema_length=10_000)
        return _scan_triage(path).collect()
    except pl.exceptions.PolarsError as exc:
        raise InputError(f"{path}: cannot read triage output ({exc})") from None


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
    for path in expand_paths(paths):
        if path.suffix.lower() == ".csv":
            raise InputError(f"{path}: {CSV_REFUSED}")
        if not is_triage_file(path):
            dumps.append(path)
            continue
        scan = _scan_triage(path).filter(window)
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
