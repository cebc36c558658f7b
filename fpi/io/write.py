"""Writing `fpi-trace/1` dumps and rejects files, every one atomically (`atomic_output`)."""

from __future__ import annotations

import contextlib
import gzip
import json
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from types import TracebackType
from typing import BinaryIO

import polars as pl
import zstandard

from fpi.errors import InputError
from fpi.io.atomic import atomic_output
from fpi.io.files import dump_format, suffix_list
from fpi.schema import TRACE_JSON_SCHEMA, Reject

RFC3339_FORMAT = "%Y-%m-%dT%H:%M:%S%.3fZ"
RFC3339_US_FORMAT = "%Y-%m-%dT%H:%M:%S%.6fZ"


def _format_timestamps(timestamps: pl.Expr) -> pl.Expr:
    """RFC 3339 UTC text: milliseconds, or microseconds when a timestamp has them."""
    return (
        pl.when(timestamps.dt.microsecond() % 1000 == 0)
        .then(timestamps.dt.strftime(RFC3339_FORMAT))
        .otherwise(timestamps.dt.strftime(RFC3339_US_FORMAT))
    )


def to_trace_records(traces: pl.DataFrame) -> pl.DataFrame:
    """The frame as `fpi-trace/1` records: RFC 3339 text timestamps, no provenance columns."""
    columns = [c for c in TRACE_JSON_SCHEMA.names() if c in traces.columns]
    out = traces.select(columns)
    if isinstance(out.schema.get("timestamp"), pl.Datetime):
        utc = pl.col("timestamp").dt.convert_time_zone("UTC")
        if out.schema["timestamp"].time_zone is None:  # type: ignore[union-attr]
            utc = pl.col("timestamp").dt.replace_time_zone("UTC")
        out = out.with_columns(_format_timestamps(utc).alias("timestamp"))
    return out


def ndjson_bytes(records: pl.DataFrame) -> bytes:
    """JSON Lines bytes, with `reference_labels` (JSON text) spliced in verbatim as an object."""
    if "reference_labels" not in records.columns or records["reference_labels"].null_count() == len(
        records
    ):
        return records.write_ndjson().encode()
    others = [c for c in records.columns if c != "reference_labels"]
    labels = pl.col("reference_labels").fill_null("null")
    if others:
        body = pl.struct(others).struct.json_encode().str.strip_suffix("}")
        line = pl.concat_str(body, pl.lit(',"reference_labels":'), labels, pl.lit("}"))
    else:
        line = pl.concat_str(pl.lit('{"reference_labels":'), labels, pl.lit("}"))
    lines = records.select(line.alias("line")).to_series()
    return ("\n".join(lines.to_list()) + "\n").encode()


def _known_format(path: Path) -> str:
    fmt = dump_format(path)
    if fmt is None:
        raise InputError(f"{path}: unknown trace format (use {suffix_list()})")
    return fmt


@contextlib.contextmanager
def trace_sink(path: Path | str) -> Iterator[Callable[[pl.DataFrame], None]]:
    """`write(frame)` appending frames of traces to one dump (format by suffix), streamed in
    chunks and renamed into place only when the `with` block ends without an error."""
    path = Path(path)
    fmt = _known_format(path)
    try:
        with atomic_output(path) as tmp:
            if fmt == ".parquet":
                with _parquet_sink(tmp) as write:
                    yield write
            else:
                with _jsonl_sink(tmp, fmt) as write:
                    yield write
    except OSError as exc:
        raise InputError(f"{path}: cannot write ({exc.strerror or exc})") from None


@contextlib.contextmanager
def jsonl_stream(path: Path, fmt: str) -> Iterator[BinaryIO]:
    """A binary stream writing `path`, gzip or zstd compressed as the dump format `fmt`
    (`.jsonl`, `.jsonl.gz`, `.jsonl.zst`) says; closed (and the frame ended) on exit."""
    with path.open("wb") as raw:
        stream: BinaryIO
        if fmt == ".jsonl.gz":
            stream = gzip.GzipFile(fileobj=raw, mode="wb", compresslevel=5)  # type: ignore[assignment]
        elif fmt == ".jsonl.zst":
            stream = zstandard.ZstdCompressor(level=3).stream_writer(raw, closefd=False)  # type: ignore[assignment]
        else:
            stream = raw
        with stream:
            yield stream


@contextlib.contextmanager
def _jsonl_sink(path: Path, fmt: str) -> Iterator[Callable[[pl.DataFrame], None]]:
    with jsonl_stream(path, fmt) as stream:
        yield lambda frame: stream.write(ndjson_bytes(to_trace_records(frame)))


@contextlib.contextmanager
def _parquet_sink(path: Path) -> Iterator[Callable[[pl.DataFrame], None]]:
    import pyarrow.parquet as pq

    writer: list[pq.ParquetWriter] = []

    def write(frame: pl.DataFrame) -> None:
        table = _typed_records(frame).to_arrow()
        if not writer:
            writer.append(pq.ParquetWriter(path, table.schema, compression="zstd"))
        writer[0].write_table(table)

    try:
        yield write
        if not writer:
            write(pl.DataFrame(schema=TRACE_JSON_SCHEMA))
    finally:
        if writer:
            writer[0].close()


def _typed_records(frame: pl.DataFrame) -> pl.DataFrame:
    """Records with every `TRACE_JSON_SCHEMA` column (absent ones null), one schema per file."""
    records = to_trace_records(frame)
    return records.select(
        pl.col(name).cast(dtype) if name in records.columns else pl.lit(None, dtype).alias(name)
        for name, dtype in TRACE_JSON_SCHEMA.items()
    )


def write_traces(traces: pl.DataFrame, path: Path | str) -> Path:
    """Write traces as `fpi-trace/1` (atomically); the format follows the suffix
    (.jsonl[.gz|.zst], .parquet)."""
    path = Path(path)
    fmt = _known_format(path)
    records = to_trace_records(traces)
    with atomic_output(path) as tmp:
        if fmt == ".parquet":
            records.write_parquet(tmp, compression="zstd")
        elif fmt == ".jsonl.gz":
            with gzip.open(tmp, "wb", compresslevel=5) as fh:
                fh.write(ndjson_bytes(records))
        elif fmt == ".jsonl.zst":
            tmp.write_bytes(zstandard.ZstdCompressor(level=3).compress(ndjson_bytes(records)))
        else:
            tmp.write_bytes(ndjson_bytes(records))
    return path


class RejectsWriter:
    """Streams rejects to a JSONL file (`Reject.to_json()` per line) as they are found.

    A context manager and a `rejects_sink`; without a path it only counts. The file appears
    (atomically, replacing an earlier one) only when the `with` block ends without an error.
    """

    def __init__(self, path: Path | str | None) -> None:
        self.path = Path(path) if path is not None else None
        self.count = 0
        self._fh = None
        self._atomic: contextlib.AbstractContextManager[Path] | None = None

    def __enter__(self) -> RejectsWriter:
        if self.path is not None:
            self._atomic = atomic_output(self.path)
            tmp = self._atomic.__enter__()
            self._fh = tmp.open("w", encoding="utf-8")
        return self

    def __call__(self, reject: Reject) -> None:
        if self._fh is not None:
            self._fh.write(json.dumps(reject.to_json(), ensure_ascii=False) + "\n")
        self.count += 1

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._fh is not None:
            self._fh.close()
        if self._atomic is not None:
            self._atomic.__exit__(exc_type, exc, tb)


def write_rejects(rejects: Iterable[Reject], path: Path | str) -> Path:
    """Write rejects as JSONL: the verbatim raw record and every reason, one line per record."""
    with RejectsWriter(path) as writer:
        for reject in rejects:
            writer(reject)
    return Path(path)
