"""Triage files: the one place that writes and reads triage output (.parquet, .jsonl, .csv).

`TriageWriter` appends triage batches to one file, atomically, and in input order whatever
the batching: batches that overlap in input order are kept as sorted runs in a scratch
directory and merged (memory: one chunk per run) when the writer closes.
"""

from __future__ import annotations

import tempfile
from collections.abc import Iterator
from pathlib import Path
from types import TracebackType
from typing import BinaryIO

import polars as pl

from fpi.errors import FpiError, InputError
from fpi.io.atomic import atomic_output
from fpi.io.decode import first_line
from fpi.io.files import TRIAGE_SUFFIXES, suffix_list
from fpi.schema import OWNER, OWNER_CONTACT, TRIAGE_SCHEMA

#: The column of a triage frame that gives each row's place in the input (dropped on write).
ORDER = "_order"
#: Columns whose presence tells triage output apart from a trace dump.
TRIAGE_MARKERS = ("failure_point", "p_correct")
#: Columns a triage file may carry beyond TRIAGE_SCHEMA that the report uses.
OPTIONAL_COLUMNS = {OWNER: pl.String, OWNER_CONTACT: pl.String}
CSV_REFUSED = "CSV triage output flattens the reasons; write it as .parquet or .jsonl"
MERGE_CHUNK_ROWS = 16_384


def flatten_reasons(triaged: pl.DataFrame) -> pl.DataFrame:
    """Reasons as one text column ("text (+0.42); ..."), for flat formats such as CSV."""
    text = pl.col("reasons").list.eval(
        pl.format(
            "{} ({})",
            pl.element().struct.field("text"),
            pl.element().struct.field("contribution").round(3).cast(pl.String),
        )
    )
    return triaged.with_columns(text.list.join("; ").alias("reasons"))


def _triage_suffix(path: Path) -> str:
    suffix = path.suffix.lower()
    if suffix not in TRIAGE_SUFFIXES:
        raise FpiError(f"{path}: unknown output format (use {suffix_list(TRIAGE_SUFFIXES)})")
    return suffix


class _FormatWriter:
    """Frames appended to one open file in the format of `suffix`."""

    def __init__(self, path: Path, suffix: str) -> None:
        self.path = path
        self.suffix = suffix
        self._parquet = None
        self._handle: BinaryIO | None = None
        self._header = True

    def write(self, triaged: pl.DataFrame) -> None:
        if self.suffix == ".parquet":
            import pyarrow.parquet as pq

            table = triaged.to_arrow()
            if self._parquet is None:
                self._parquet = pq.ParquetWriter(self.path, table.schema, compression="zstd")
            self._parquet.write_table(table)
            return
        if self._handle is None:
            self._handle = self.path.open("wb")
        if self.suffix == ".jsonl":
            triaged.write_ndjson(self._handle)
        else:
            flatten_reasons(triaged).write_csv(self._handle, include_header=self._header)
            self._header = False

    def close(self, empty: pl.DataFrame, metadata: dict[str, str]) -> None:
        if self._parquet is None and self._handle is None:
            self.write(empty)
        if self._parquet is not None:
            if metadata:
                self._parquet.add_key_value_metadata(metadata)
            self._parquet.close()
        if self._handle is not None:
            self._handle.close()


class TriageWriter:
    """Append triage batches to one file (format by suffix), in input order, atomically.

    A frame may carry `ORDER` (its rows' places in the input, ascending within the frame);
    rows are written sorted by it and without it. The file replaces an earlier one only when
    `close()` is called (or the `with` block ends without an error); `abort()` leaves it be.
    """

    SUFFIXES = TRIAGE_SUFFIXES

    def __init__(self, path: Path | str) -> None:
        self.path = Path(path)
        self.suffix = _triage_suffix(self.path)
        if self.path.is_dir():
            raise InputError(f"{self.path}: a directory, but the triage output is a file")
        self._held: pl.DataFrame | None = None  # the first batch, until a second one comes
        self._runs: list[Path] = []
        self._scratch: tempfile.TemporaryDirectory | None = None
        self._schema: pl.Schema | None = None
        self._written = 0
        #: Key-value metadata for a Parquet file's footer (ignored by JSONL and CSV).
        self.metadata: dict[str, str] = {}

    def write(self, triaged: pl.DataFrame) -> None:
        if self._schema is None:
            self._schema = triaged.drop(ORDER, strict=False).schema
        if triaged.is_empty():
            return
        if ORDER not in triaged.columns:  # no places given: the order of the calls
            places = pl.int_range(pl.len(), dtype=pl.Int64) + self._written
            triaged = triaged.with_columns(places.alias(ORDER))
        self._written += triaged.height
        if self._held is None and not self._runs:
            self._held = triaged
            return
        if self._held is not None:
            self._spill(self._held)
            self._held = None
        self._spill(triaged)

    def _spill(self, triaged: pl.DataFrame) -> None:
        if self._scratch is None:
            self._scratch = tempfile.TemporaryDirectory(prefix="fpi-triage-runs-")
        path = Path(self._scratch.name) / f"run{len(self._runs):05d}.parquet"
        triaged.sort(ORDER).write_parquet(path, compression="lz4", statistics=False)
        self._runs.append(path)

    def _sorted_chunks(self) -> Iterator[pl.DataFrame]:
        if self._held is not None:
            held = self._held
            yield held if held[ORDER].is_sorted() else held.sort(ORDER)
            return
        yield from merge_runs(self._runs)

    def close(self) -> None:
        """Write every row, in input order, and put the file in place."""
        schema = self._schema if self._schema is not None else TRIAGE_SCHEMA
        try:
            with atomic_output(self.path) as tmp:
                writer = _FormatWriter(tmp, self.suffix)
                try:
                    for chunk in self._sorted_chunks():
                        writer.write(chunk.drop(ORDER).cast(dict(schema)))
                finally:
                    writer.close(schema.to_frame(), self.metadata)
        except OSError as exc:
            raise InputError(f"{self.path}: cannot write ({exc.strerror or exc})") from None
        finally:
            self.abort()

    def abort(self) -> None:
        """Drop what was written so far; the target file stays as it was."""
        self._held = None
        self._runs = []
        if self._scratch is not None:
            self._scratch.cleanup()
            self._scratch = None

    def __enter__(self) -> TriageWriter:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if exc_type is None:
            self.close()
        else:
            self.abort()


def merge_runs(runs: list[Path], chunk_rows: int = MERGE_CHUNK_ROWS) -> Iterator[pl.DataFrame]:
    """Frames of the Parquet `runs` (each sorted by `ORDER`) merged in `ORDER`, reading one
    chunk of each run at a time."""
    import pyarrow.parquet as pq

    readers = [pq.ParquetFile(run).iter_batches(batch_size=chunk_rows) for run in runs]

    def next_chunk(i: int) -> pl.DataFrame | None:
        for batch in readers[i]:
            if batch.num_rows:
                return pl.from_arrow(batch)  # type: ignore[return-value]
        return None

    heads = [next_chunk(i) for i in range(len(readers))]
    while any(head is not None for head in heads):
        live = [h for h in heads if h is not None]
        watermark = min(h[ORDER][-1] for h in live)  # every row up to it is in the heads
        taken = []
        for i, head in enumerate(heads):
            if head is None:
                continue
            cut = head[ORDER].search_sorted(watermark, side="right")
            taken.append(head[:cut])
            heads[i] = head[cut:] if cut < head.height else next_chunk(i)
        yield pl.concat(taken).sort(ORDER)


def write_triage_frame(frame: pl.DataFrame, path: Path) -> Path:
    """Write a whole triage frame (atomically) as Parquet, JSONL or CSV, by suffix."""
    with TriageWriter(path) as writer:
        writer.write(frame)
    return path


# ---- reading -------------------------------------------------------------------------------


def _first_record_keys(path: Path) -> set[str]:
    """The keys of the first record (Parquet: the columns); the sniff reads a bounded prefix."""
    import json

    if path.name.lower().endswith(".parquet"):
        try:
            return set(pl.read_parquet_schema(path))
        except Exception as exc:  # polars raises several types for a broken file
            raise InputError(f"{path}: not a readable Parquet file ({exc})") from None
    line = first_line(path)
    if line is None:
        return set()
    try:
        record = json.loads(line)
    except ValueError:
        return set()
    return set(record) if isinstance(record, dict) else set()


def is_triage_file(path: Path) -> bool:
    """Whether the file holds triage output (else it is taken for a trace dump)."""
    return all(marker in _first_record_keys(path) for marker in TRIAGE_MARKERS)


def scan_triage(path: Path) -> pl.LazyFrame:
    """A lazy scan of one .parquet or .jsonl triage file as `TRIAGE_SCHEMA` (+ owners)."""
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
        return scan_triage(path).collect()
    except pl.exceptions.PolarsError as exc:
        raise InputError(f"{path}: cannot read triage output ({exc})") from None
