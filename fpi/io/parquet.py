"""Parquet dumps: row batches checked like JSON lines (a row's "line" is its 0-based row).

A file whose trace columns already have `TRACE_JSON_SCHEMA` types is checked as frames (the
fast path); any other is turned into JSON lines and read like a JSONL block.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path
from typing import NamedTuple

import polars as pl

from fpi.errors import InputError, display_path
from fpi.io.decode import Block
from fpi.io.jsonl import (
    PARSE_ERRORS,
    Parsed,
    check_records,
    conform,
    parse_jsonl_block,
    to_traces,
)
from fpi.io.write import ndjson_bytes, to_trace_records
from fpi.schema import TRACE_JSON_SCHEMA, Reject

PARQUET_BATCH_ROWS = 65_536


class Chunk(NamedTuple):
    """Checked records of one piece of a file: accepted traces, rejects, records read."""

    traces: pl.DataFrame  # accepted, TRACE_SCHEMA + `_file`
    rejects: list[Reject]
    read: int


def _parquet_is_typed(schema: pl.Schema) -> bool:
    """True when the file's trace columns already have `TRACE_JSON_SCHEMA` types (the fast path)."""
    for name, dtype in schema.items():
        if name not in TRACE_JSON_SCHEMA or dtype == pl.Null:
            continue
        if name == "timestamp" and isinstance(dtype, pl.String | pl.Datetime):
            continue
        if name == "reference_labels" and isinstance(dtype, pl.String | pl.Struct):
            continue
        if dtype != TRACE_JSON_SCHEMA[name]:
            return False
    return True


def _parquet_json_columns(batch: pl.DataFrame) -> pl.DataFrame:
    """A Parquet batch's trace columns in JSON form: timestamps, `reference_labels` as text."""
    columns = []
    for name in TRACE_JSON_SCHEMA.names():
        if name not in batch.columns:
            continue
        dtype = batch.schema[name]
        column = pl.col(name)
        if name == "timestamp" and isinstance(dtype, pl.Datetime):
            column = to_trace_records(batch.select(name)).to_series().alias(name)
        elif name == "reference_labels" and isinstance(dtype, pl.Struct):
            column = column.struct.json_encode()
        columns.append(column)
    return batch.select(columns)


def _texts_are_objects(texts: pl.Series) -> bool:
    """True when every non-null text is a JSON object (checked by one polars parse)."""
    texts = texts.drop_nulls()
    if texts.is_empty():
        return True
    if not texts.str.strip_chars().str.starts_with("{").all():
        return False
    payload = "\n".join(('{"r":' + texts + "}").to_list()).encode()
    try:
        pl.read_ndjson(payload, schema={"r": pl.String})
    except PARSE_ERRORS:
        return False
    return True


def parquet_rows_ndjson(batch: pl.DataFrame, path: Path) -> bytes:
    """Parquet rows as JSON lines of their trace fields (`{}` for a row without any)."""
    columns = _parquet_json_columns(batch)
    if not columns.columns:
        return b"{}\n" * batch.height
    try:
        return ndjson_bytes(columns)
    except PARSE_ERRORS as exc:
        raise InputError(f"{path}: Parquet columns that cannot be read as JSON ({exc})") from None


def _parquet_chunk(
    batch: pl.DataFrame, offset: int, path: Path, file_index: int, typed: bool
) -> Chunk:
    file = display_path(path)
    columns = _parquet_json_columns(batch)
    labels = columns.get_column("reference_labels", default=None)
    if typed and columns.columns and (labels is None or _texts_are_objects(labels)):
        records = conform(columns).with_columns(
            pl.int_range(pl.len(), dtype=pl.Int64).alias("_idx")
        )

        def raw(i: int) -> str:
            return parquet_rows_ndjson(batch[i : i + 1], path).decode().strip()

        checked = check_records(Parsed([records], {}), file=file, base=offset, raw=raw)
    else:
        block = Block(parquet_rows_ndjson(batch, path), offset)
        checked, _ = parse_jsonl_block(block, file, max_line_bytes=sys.maxsize)
    return Chunk(
        to_traces(checked.records, file, offset, file_index), checked.rejects, batch.height
    )


def parquet_batches(path: Path) -> Iterator[pl.DataFrame]:
    """Row batches of a Parquet file; an unreadable file is an InputError."""
    try:
        batches = iter(pl.scan_parquet(path).collect_batches(chunk_size=PARQUET_BATCH_ROWS))
        while True:
            try:
                batch = next(batches)
            except StopIteration:
                return
            yield batch
    except (*PARSE_ERRORS, OSError) as exc:
        reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise InputError(f"{path}: unreadable Parquet ({reason})") from None


def parquet_chunks(path: Path, file_index: int) -> Iterator[Chunk]:
    try:
        typed = _parquet_is_typed(pl.read_parquet_schema(path))
    except (*PARSE_ERRORS, OSError) as exc:
        raise InputError(f"{path}: unreadable Parquet ({str(exc).splitlines()[0]})") from None
    offset = 0
    for batch in parquet_batches(path):
        yield _parquet_chunk(batch, offset, path, file_index, typed)
        offset += batch.height
