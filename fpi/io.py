"""Reading and writing `fpi-trace/1` dumps (JSONL, .jsonl.gz, .jsonl.zst, Parquet)."""

from __future__ import annotations

import gzip
from pathlib import Path

import polars as pl
import zstandard

from fpi.schema import TRACE_JSON_SCHEMA, TRACE_SCHEMA

RFC3339_FORMAT = "%Y-%m-%dT%H:%M:%S%.3fZ"


def to_trace_records(traces: pl.DataFrame) -> pl.DataFrame:
    """The frame as `fpi-trace/1` records: RFC 3339 text timestamps, no provenance columns."""
    columns = [c for c in TRACE_JSON_SCHEMA.names() if c in traces.columns]
    out = traces.select(columns)
    if out.schema.get("timestamp") == TRACE_SCHEMA["timestamp"]:
        out = out.with_columns(pl.col("timestamp").dt.strftime(RFC3339_FORMAT))
    return out


def _ndjson_bytes(records: pl.DataFrame) -> bytes:
    """JSON Lines bytes, with `reference_labels` written back as a JSON object."""
    if "reference_labels" in records.columns and records["reference_labels"].null_count() < len(
        records
    ):
        decoded = records["reference_labels"].str.json_decode(infer_schema_length=None)
        records = records.with_columns(decoded.alias("reference_labels"))
    return records.write_ndjson().encode()


def write_traces(traces: pl.DataFrame, path: Path | str) -> Path:
    """Write traces as `fpi-trace/1`; the format follows the suffix (.jsonl[.gz|.zst], .parquet)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    records = to_trace_records(traces)
    name = path.name.lower()
    if name.endswith(".parquet"):
        records.write_parquet(path, compression="zstd")
    elif name.endswith(".jsonl.gz"):
        with gzip.open(path, "wb", compresslevel=5) as fh:
            fh.write(_ndjson_bytes(records))
    elif name.endswith(".jsonl.zst"):
        path.write_bytes(zstandard.ZstdCompressor(level=3).compress(_ndjson_bytes(records)))
    elif name.endswith(".jsonl"):
        path.write_bytes(_ndjson_bytes(records))
    else:
        raise ValueError(f"{path}: unknown trace format (use .jsonl, .jsonl.gz, .jsonl.zst, .parquet)")
    return path
