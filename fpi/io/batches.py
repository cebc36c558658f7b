"""Batching: files to checked chunks to batches of whole dialogues, with bounded memory.

Inputs larger than one batch are hash-partitioned by `dialogue_id` into temporary Parquet
files. Rejects go to the caller's sink the moment they are found; batches only count them.
Repeated `(dialogue_id, turn_index)` keys are found from the key columns alone, so copies of
one record are never all held in memory, and their raw text is read back from the input.
"""

from __future__ import annotations

import io
import sys
import tempfile
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import polars as pl

from fpi.errors import InputError, InvalidRecordsError, display_path
from fpi.io.decode import MAX_LINE_BYTES, check_content, line_blocks
from fpi.io.files import dump_format, resolve_inputs
from fpi.io.jsonl import long_line_reject, parse_jsonl_block, to_traces
from fpi.io.parquet import Chunk, parquet_chunks, parquet_rows_ndjson
from fpi.schema import DIALOGUE_KEY, TRACE_SCHEMA, Problem, Reject
from fpi.validate import duplicate_problems

SPILL_PARTS = 64  # hash partitions per spill level
MAX_SPILL_DEPTH = 3
#: Bits of the order key given to the line: key = file index << ORDER_LINE_BITS | line.
ORDER_LINE_BITS = 40

_INVALID_HINT = (
    "\n(set invalid records aside with --rejects FILE, or list them all with `fpi validate`)"
)
_POSITION = ["_file", "source_line"]
#: Without a rejects sink, reading stops with an error after this many invalid records.
MAX_REPORTED_REJECTS = 10_000


@dataclass
class ReadStats:
    """What reading saw besides records: files read, blank lines skipped, files without records."""

    files: int = 0
    blank_lines: int = 0
    empty_files: list[str] = field(default_factory=list)


def _compact(frame: pl.DataFrame) -> pl.DataFrame:
    """The frame copied into tight buffers (via Arrow IPC).

    A frame from polars' JSON reader keeps the reader's buffers, several times the size of
    the data; a copy lets them go, so a dump in memory costs about its own size.
    """
    buffer = io.BytesIO()
    frame.write_ipc(buffer, compression="uncompressed")
    buffer.seek(0)
    return pl.read_ipc(buffer)


def _jsonl_chunks(
    path: Path, fmt: str, file_index: int, stats: ReadStats, max_line_bytes: int
) -> Iterator[Chunk]:
    file = display_path(path)
    for block in line_blocks(path, fmt, max_line_bytes):
        checked, blank = parse_jsonl_block(block, file, max_line_bytes)
        stats.blank_lines += blank
        traces = to_traces(checked.records, file, block.first_line, file_index)
        if traces.height:
            traces = _compact(traces)
        yield Chunk(traces, checked.rejects, traces.height + len(checked.rejects))


def _file_chunks(
    path: Path, file_index: int, stats: ReadStats, max_line_bytes: int
) -> Iterator[Chunk]:
    """Checked chunks of one file, in order; whole-file problems raise InputError."""
    fmt = dump_format(path)
    assert fmt is not None
    try:
        size = path.stat().st_size
    except OSError as exc:
        raise InputError(f"{path}: cannot read ({exc.strerror or exc})") from None
    stats.files += 1
    read = 0
    if size:
        check_content(path, fmt)
        if fmt == ".parquet":
            if display_path(path) != str(path):  # polars takes only UTF-8 paths
                raise InputError(f"{display_path(path)}: rename it, a Parquet name must be UTF-8")
            chunks = parquet_chunks(path, file_index)
        else:
            chunks = _jsonl_chunks(path, fmt, file_index, stats, max_line_bytes)
        for chunk in chunks:
            read += chunk.read
            yield chunk
    if read == 0:
        stats.empty_files.append(str(path))


@dataclass
class TraceBatch:
    """Traces of whole dialogues (`TRACE_SCHEMA`, sorted in input order), and the records
    read for this batch: `read == len(traces) + rejected`. The rejects themselves went to
    the sink as they were found."""

    traces: pl.DataFrame
    rejected: int
    read: int
    order: pl.Series = field(default_factory=lambda: pl.Series("_order", [], dtype=pl.Int64))
    """Each trace's place in the input (file index << 40 | line), ascending within a batch."""


#: Where rejects go as they are found: a list to append to, or a callable (e.g. `RejectsWriter`).
RejectsSink = list[Reject] | Callable[[Reject], object]


def _empty_traces() -> pl.DataFrame:
    return pl.DataFrame(schema=TRACE_SCHEMA)


class _Spill:
    """Traces hash-partitioned by `dialogue_id` into temporary Parquet files."""

    def __init__(self, directory: Path, seed: int, flush_rows: int) -> None:
        self.directory = directory
        self.seed = seed
        self.flush_rows = flush_rows
        self.files: defaultdict[int, list[Path]] = defaultdict(list)
        self.rows: Counter[int] = Counter()
        self._buffer: list[pl.DataFrame] = []
        self._buffered = 0
        self._flushes = 0
        directory.mkdir(parents=True, exist_ok=True)

    def add(self, traces: pl.DataFrame) -> None:
        self._buffer.append(traces)
        self._buffered += traces.height
        if self._buffered >= self.flush_rows:
            self.flush()

    def flush(self) -> None:
        if not self._buffer:
            return
        traces = pl.concat(self._buffer)
        self._buffer, self._buffered = [], 0
        part = (pl.col("dialogue_id").hash(self.seed) % SPILL_PARTS).alias("_part")
        for (number,), piece in (
            traces.with_columns(part).partition_by("_part", as_dict=True, include_key=False).items()
        ):
            path = self.directory / f"part{number:02d}-{self._flushes:05d}.parquet"
            piece.write_parquet(path, compression="lz4", statistics=False)
            self.files[number].append(path)
            self.rows[number] += piece.height
        self._flushes += 1

    def groups(self, batch_turns: int, depth: int = 0) -> Iterator[list[Path]]:
        """Spill files of whole partitions, each group within `batch_turns` rows unless one
        dialogue is larger. The caller reads and then deletes the files."""
        self.flush()
        group: list[int] = []
        size = 0
        for number in sorted(self.files):
            rows = self.rows[number]
            if group and size + rows > batch_turns:
                yield [p for n in group for p in self.files.pop(n)]
                group, size = [], 0
            if rows > batch_turns and depth < MAX_SPILL_DEPTH:
                finer = _Spill(self.directory / f"{depth + 1}-{number}", depth + 1, batch_turns)
                for path in self.files.pop(number):
                    finer.add(pl.read_parquet(path))
                    path.unlink()
                finer.flush()
                # one partition left means one (or a few colliding) huge dialogue(s): stop
                deeper = depth + 1 if len(finer.files) > 1 else MAX_SPILL_DEPTH
                yield from finer.groups(batch_turns, deeper)
                continue
            group.append(number)
            size += rows
        if group:
            yield [p for n in group for p in self.files.pop(n)]


def _unique_traces(traces: pl.LazyFrame, *, in_order: bool) -> tuple[pl.DataFrame, pl.DataFrame]:
    """(traces without repeated keys, in input order; the repeats as `_file`, `source_line`,
    `source_file` and their problem). Keys are checked first, from the key columns alone.
    `in_order`: the traces already are in input order (no sort needed)."""
    keys = traces.select(*_POSITION, "source_file", *DIALOGUE_KEY).collect()
    if not in_order:
        keys = keys.sort(_POSITION)
    problems = duplicate_problems(keys)
    unique = traces
    if not problems.is_empty():
        repeats = pl.concat(
            [keys[problems["row"].to_list()].select(*_POSITION, "source_file"), problems],
            how="horizontal",
        )
        unique = traces.join(repeats.lazy().select(_POSITION), on=_POSITION, how="anti")
    else:
        repeats = problems
    frame = unique.collect()
    return (frame if in_order and repeats.is_empty() else frame.sort(_POSITION)), repeats


def _raw_lines(path: Path, wanted: list[int], max_line_bytes: int) -> Iterator[tuple[int, str]]:
    """(line or row, raw text) for the sorted `wanted` lines of one file, read again."""
    if dump_format(path) == ".parquet":
        for start in range(0, len(wanted), 65_536):
            rows = wanted[start : start + 65_536]
            frame = (
                pl.scan_parquet(path)
                .with_row_index("_row")
                .filter(pl.col("_row").is_in(rows))
                .collect()
            )
            texts = parquet_rows_ndjson(frame.drop("_row"), path).decode().splitlines()
            yield from zip(frame["_row"].to_list(), texts, strict=True)
        return
    position = 0
    for block in line_blocks(path, dump_format(path) or ".jsonl", max_line_bytes):
        if block.long_line is not None:
            if position < len(wanted) and wanted[position] == block.first_line:
                yield block.first_line, long_line_reject(block, str(path), max_line_bytes).record
                position += 1
            continue
        lines = block.data.split(b"\n")
        end = block.first_line + len(lines)
        while position < len(wanted) and wanted[position] < end:
            text = lines[wanted[position] - block.first_line]
            yield wanted[position], text.decode("utf-8", "backslashreplace").removesuffix("\r")
            position += 1
        if position == len(wanted):
            return


def _repeat_rejects(
    repeats: pl.DataFrame, files: Sequence[Path], max_line_bytes: int
) -> Iterator[Reject]:
    """A reject for each repeated key, with its raw text read back from its file."""
    for (index,), rows in repeats.sort(_POSITION).group_by("_file", maintain_order=True):
        path = files[index]  # type: ignore[index]
        file = display_path(path)
        found = dict(zip(rows["source_line"].to_list(), rows["found"].to_list(), strict=True))
        expected, field_name = rows["expected"][0], rows["field"][0]
        for line, text in _raw_lines(path, sorted(found), max_line_bytes):
            problem = Problem(file, line, field_name, expected, found[line])
            yield Reject(file, line, text, (problem,))


def _order_key(traces: pl.DataFrame) -> pl.Series:
    return (
        (traces["_file"].cast(pl.Int64) * (1 << ORDER_LINE_BITS)) + traces["source_line"]
    ).alias("_order")


def _batches(
    files: Sequence[Path],
    batch_turns: int,
    sink: RejectsSink | None,
    stats: ReadStats,
    max_line_bytes: int,
) -> Iterator[TraceBatch]:
    put = sink.append if isinstance(sink, list) else sink

    def deliver(rejects: Iterable[Reject]) -> int:
        count = 0
        for reject in rejects:
            if put is None:
                raise InvalidRecordsError(list(reject.problems), hint=_INVALID_HINT)
            put(reject)
            count += 1
        return count

    def batch(traces: pl.LazyFrame, pending: int, in_order: bool) -> TraceBatch:
        unique, repeats = _unique_traces(traces, in_order=in_order)
        rejected = pending
        if not repeats.is_empty():
            rejected += deliver(_repeat_rejects(repeats, files, max_line_bytes))
        order = _order_key(unique)
        return TraceBatch(unique.drop("_file"), rejected, unique.height + rejected, order)

    pending = 0  # rejects found but not yet counted in a batch
    buffer: list[pl.DataFrame] = []
    buffered = 0
    spill: _Spill | None = None
    with tempfile.TemporaryDirectory(prefix="fpi-spill-") as scratch:
        for index, path in enumerate(files):
            for chunk in _file_chunks(path, index, stats, max_line_bytes):
                pending += deliver(chunk.rejects)
                if spill is not None:
                    spill.add(chunk.traces)
                elif chunk.traces.height:
                    buffer.append(chunk.traces)
                    buffered += chunk.traces.height
                    if buffered > batch_turns:
                        spill = _Spill(Path(scratch), seed=0, flush_rows=batch_turns)
                        for traces in buffer:
                            spill.add(traces)
                        buffer = []
                if pending >= batch_turns:
                    yield TraceBatch(_empty_traces(), pending, pending)
                    pending = 0
        if spill is None:
            if buffer:
                yield batch(pl.concat(buffer).lazy(), pending, in_order=True)
                pending = 0
        else:
            del buffer
            for paths in spill.groups(batch_turns):
                yield batch(pl.scan_parquet(paths), pending, in_order=False)
                pending = 0
                for path in paths:
                    path.unlink()
        if pending:
            yield TraceBatch(_empty_traces(), pending, pending)


def iter_trace_batches(
    paths: Sequence[str | Path],
    *,
    batch_turns: int = 200_000,
    rejects_sink: RejectsSink | None = None,
    stats: ReadStats | None = None,
    max_line_bytes: int = MAX_LINE_BYTES,
) -> Iterator[TraceBatch]:
    """Stream the dumps as batches of about `batch_turns` turns, never splitting a dialogue.

    Inputs larger than one batch are hash-partitioned by `dialogue_id` into temporary Parquet
    files, so memory stays bounded whatever the order of turns; within a batch, traces are in
    input order (`TraceBatch.order` places them in the whole input). Each batch's `read` is
    the number of records it accounts for (`len(traces) + rejected`). Without `rejects_sink`
    an invalid record raises `InvalidRecordsError`; with one (a list, or a callable such as a
    `RejectsWriter`), each reject goes there as soon as it is found and the run goes on. A
    line longer than `max_line_bytes` is a reject. `stats`, when given, is filled with blank
    lines and empty files seen.
    """
    if batch_turns < 1:
        raise ValueError("batch_turns must be at least 1")
    files = resolve_inputs(paths)
    stats = stats if stats is not None else ReadStats()
    return _batches(files, batch_turns, rejects_sink, stats, max_line_bytes)


def read_traces(
    paths: Sequence[str | Path] | str | Path,
    *,
    rejects: RejectsSink | None = None,
    max_line_bytes: int = MAX_LINE_BYTES,
) -> pl.DataFrame:
    """The whole input in memory as one `TRACE_SCHEMA` frame, in input order.

    With `rejects=None` invalid records raise `InvalidRecordsError` naming every problem (up
    to `MAX_REPORTED_REJECTS` records); with a list, invalid records are appended to it (in
    input order) and left out; a callable (e.g. a `RejectsWriter`) gets each as it is found.
    """
    if isinstance(paths, str | Path):
        paths = [paths]
    files = resolve_inputs(paths)
    if callable(rejects):
        batches = _batches(files, sys.maxsize, rejects, ReadStats(), max_line_bytes)
        frames = [b.traces for b in batches]
        return pl.concat(frames) if frames else _empty_traces()
    found: list[Reject] = []

    def collect(reject: Reject) -> None:
        found.append(reject)
        if rejects is None and len(found) >= MAX_REPORTED_REJECTS:
            hint = f" (stopped at the first {MAX_REPORTED_REJECTS:,} invalid records)"
            raise InvalidRecordsError(
                [p for r in found for p in r.problems], hint=hint + _INVALID_HINT
            )

    frames = [b.traces for b in _batches(files, sys.maxsize, collect, ReadStats(), max_line_bytes)]
    order = {str(f): i for i, f in enumerate(files)}
    found.sort(key=lambda r: (order[r.file], r.line or 0))
    if found and rejects is None:
        raise InvalidRecordsError([p for r in found for p in r.problems], hint=_INVALID_HINT)
    if rejects is not None:
        rejects.extend(found)
    return pl.concat(frames) if frames else _empty_traces()
