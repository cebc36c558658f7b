"""Reading and writing `fpi-trace/1` dumps (JSONL, .jsonl.gz, .jsonl.zst, Parquet).

Reading streams each file in blocks of whole lines (or Parquet row batches), parses a block at
once with polars against `TRACE_JSON_SCHEMA`, bisects a block that fails to parse down to the bad
lines, checks values vectorised (`fpi.validate`), and hands out frames in `TRACE_SCHEMA`.
"""

from __future__ import annotations

import glob
import gzip
import io
import json
import re
import sys
import tempfile
import zlib
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import BinaryIO, NamedTuple

import polars as pl
import zstandard

from fpi.errors import InputError, InvalidRecordsError, display_path
from fpi.schema import TRACE_JSON_SCHEMA, TRACE_SCHEMA, Problem, Reject
from fpi.validate import (
    Finding,
    RecordCheck,
    check_record_json,
    duplicate_problems,
    parse_rfc3339,
    value_problems,
)

RFC3339_FORMAT = "%Y-%m-%dT%H:%M:%S%.3fZ"
RFC3339_US_FORMAT = "%Y-%m-%dT%H:%M:%S%.6fZ"
DUMP_SUFFIXES = (".jsonl", ".jsonl.gz", ".jsonl.zst", ".parquet")

BLOCK_BYTES = 32 << 20  # decompressed JSONL parsed at once
MAX_LINE_BYTES = 512 << 20
PARQUET_BATCH_ROWS = 65_536
SPILL_PARTS = 64  # hash partitions per spill level
MAX_SPILL_DEPTH = 3
_BISECT_WAYS = 8
_LEAF_LINES = 16

_PARSE_ERRORS = (pl.exceptions.PolarsError, pl.exceptions.PanicException)
_MAGIC = {b"\x1f\x8b": "gzip", b"\x28\xb5\x2f\xfd": "zstd", b"PAR1": "Parquet"}
_CONTENT = {".jsonl": "text", ".jsonl.gz": "gzip", ".jsonl.zst": "zstd", ".parquet": "Parquet"}
_INVALID_HINT = (
    "\n(set invalid records aside with --rejects FILE, or list them all with `fpi validate`)"
)


# ---- writing ---------------------------------------------------------------------------------


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


def _ndjson_bytes(records: pl.DataFrame) -> bytes:
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
        raise ValueError(
            f"{path}: unknown trace format (use .jsonl, .jsonl.gz, .jsonl.zst, .parquet)"
        )
    return path


class RejectsWriter:
    """Streams rejects to a JSONL file (`Reject.to_json()` per line) as they are found.

    A context manager and a `rejects_sink`; without a path it only counts.
    """

    def __init__(self, path: Path | str | None) -> None:
        self.path = Path(path) if path is not None else None
        self.count = 0
        self._fh = None

    def __enter__(self) -> RejectsWriter:
        if self.path is not None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._fh = self.path.open("w", encoding="utf-8")
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


def write_rejects(rejects: Iterable[Reject], path: Path | str) -> Path:
    """Write rejects as JSONL: the verbatim raw record and every reason, one line per record."""
    with RejectsWriter(path) as writer:
        for reject in rejects:
            writer(reject)
    return Path(path)


# ---- finding the files -------------------------------------------------------------------------


def dump_format(path: Path | str) -> str | None:
    """The dump suffix of a file name (one of `DUMP_SUFFIXES`), or None."""
    name = Path(path).name.lower()
    return next((s for s in sorted(DUMP_SUFFIXES, key=len, reverse=True) if name.endswith(s)), None)


def _dumps_under(directory: Path) -> list[Path]:
    return sorted(p for p in directory.rglob("*") if p.is_file() and dump_format(p))


def resolve_inputs(paths: Sequence[str | Path]) -> list[Path]:
    """Files to read: files as given, directories searched recursively, globs expanded (sorted)."""
    found: dict[Path, Path] = {}  # resolved path -> path as given
    for given in paths:
        path = Path(given)
        if path.is_dir():
            files = _dumps_under(path)
            if not files:
                raise InputError(f"{path}: no trace dumps in this directory ({_suffix_list()})")
        elif path.exists():
            if dump_format(path) is None:
                raise InputError(f"{path}: not a trace dump (expected {_suffix_list()})")
            files = [path]
        elif glob.has_magic(str(given)):
            matches = sorted(Path(p) for p in glob.glob(str(given), recursive=True))
            files = [f for m in matches for f in (_dumps_under(m) if m.is_dir() else [m])]
            files = [f for f in files if dump_format(f)]
            if not files:
                raise InputError(f"{given}: no trace dumps match this pattern")
        else:
            raise InputError(f"{path}: no such file or directory")
        for file in files:
            found.setdefault(file.resolve(), file)
    if not found:
        raise InputError("no trace dumps given")
    return list(found.values())


def _suffix_list() -> str:
    return ", ".join(DUMP_SUFFIXES)


# ---- reading bytes -------------------------------------------------------------------------------


def _check_content(path: Path, fmt: str) -> None:
    """Refuse a file whose first bytes say it is something other than its name says."""
    with path.open("rb") as fh:
        head = fh.read(4)
    actual = next((kind for magic, kind in _MAGIC.items() if head.startswith(magic)), "text")
    expected = _CONTENT[fmt]
    if actual != expected:
        what = f"{actual} data" if expected == "text" else f"not {expected} data"
        raise InputError(f"{path}: {what}, but the name says {fmt}")


def _decompressed(path: Path, fmt: str) -> Iterator[bytes]:
    """The decompressed bytes in pieces; corrupt or truncated data is an InputError."""
    done = 0
    try:
        with path.open("rb") as raw:
            if fmt == ".jsonl.gz":
                with gzip.GzipFile(fileobj=raw) as fh:
                    while piece := fh.read(BLOCK_BYTES):
                        done += len(piece)
                        yield piece
            elif fmt == ".jsonl.zst":
                for piece in _zstd_pieces(raw):
                    done += len(piece)
                    yield piece
            else:
                while piece := raw.read(BLOCK_BYTES):
                    yield piece
    except (EOFError, gzip.BadGzipFile, zlib.error, zstandard.ZstdError) as exc:
        kind = "gzip" if fmt == ".jsonl.gz" else "zstd"
        raise InputError(
            f"{path}: truncated or corrupt {kind} data after {done:,} decompressed bytes ({exc})"
        ) from None
    except OSError as exc:
        raise InputError(f"{path}: cannot read ({exc.strerror or exc})") from None


def _zstd_pieces(raw: BinaryIO) -> Iterator[bytes]:
    """Decompress every zstd frame of a file object, refusing a frame cut short."""
    context = zstandard.ZstdDecompressor()
    frame = context.decompressobj()
    in_frame = False
    while compressed := raw.read(1 << 20):
        while compressed:
            piece = frame.decompress(compressed)
            in_frame = True
            if piece:
                yield piece
            if frame.eof:
                compressed, frame, in_frame = frame.unused_data, context.decompressobj(), False
            else:
                compressed = b""
    if in_frame:
        raise zstandard.ZstdError("the last frame ends early")


def _line_blocks(path: Path, fmt: str) -> Iterator[tuple[bytes, int]]:
    """(block of whole lines, 1-based number of its first line), about `BLOCK_BYTES` each."""
    pieces: list[bytes] = []
    size = 0
    line = 1
    first = True
    for piece in _decompressed(path, fmt):
        if first:
            piece = piece.removeprefix(b"\xef\xbb\xbf")
            first = False
        pieces.append(piece)
        size += len(piece)
        if size < BLOCK_BYTES:
            continue
        data = b"".join(pieces)
        cut = data.rfind(b"\n") + 1
        if cut == 0:
            if size > MAX_LINE_BYTES:
                raise InputError(f"{path}:{line}: a line longer than {MAX_LINE_BYTES >> 20} MB")
            pieces = [data]
            continue
        block, rest = data[:cut], data[cut:]
        pieces, size = ([rest], len(rest)) if rest else ([], 0)
        _check_text(block, line, path)
        yield block, line
        line += block.count(b"\n")
    if pieces:
        block = b"".join(pieces)
        _check_text(block, line, path)
        yield block, line


def _check_text(block: bytes, first_line: int, path: Path) -> None:
    """Refuse binary data (a NUL byte) and text that is not UTF-8, naming the line."""
    nul = block.find(b"\x00")
    if nul >= 0:
        line = first_line + block.count(b"\n", 0, nul)
        raise InputError(f"{path}:{line}: binary data (a NUL byte); not a JSONL trace dump")
    try:
        block.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = first_line + block.count(b"\n", 0, exc.start)
        raise InputError(
            f"{path}:{line}: invalid UTF-8 (byte 0x{block[exc.start]:02x}); dumps must be UTF-8"
        ) from None


# ---- parsing and checking ------------------------------------------------------------------------


def _string_fields(dtype: pl.DataType) -> set[str]:
    if isinstance(dtype, pl.Struct):
        return {
            name
            for f in dtype.fields
            for name in ({f.name} if f.dtype == pl.String else set()) | _string_fields(f.dtype)
        }
    if isinstance(dtype, pl.List):
        return _string_fields(dtype.inner)
    return set()


def _coercion_pattern() -> str:
    """Lines where a string field (or `reference_labels`) may hold another JSON type.

    polars turns any JSON value into text for a String column, so such lines are checked one
    by one; the pattern over-approximates (an unknown field of the same name is checked too).
    """
    names = sorted(_string_fields(pl.Struct(TRACE_JSON_SCHEMA)) - {"reference_labels"})
    keys = "|".join(re.escape(n) for n in names)
    return rf'"(?:{keys})"\s*:\s*[-0-9tf\[{{]|"reference_labels"\s*:\s*[-0-9tf\["]'


_COERCION_PATTERN = _coercion_pattern()


class _Parsed(NamedTuple):
    """A parsed block: frames of well-typed records (with `_idx`), and the lines that are not."""

    frames: list[pl.DataFrame]
    failed: dict[int, RecordCheck]


def _read_ndjson(payload: bytes, idx: Sequence[int]) -> pl.DataFrame | None:
    try:
        frame = pl.read_ndjson(payload, schema=TRACE_JSON_SCHEMA)
    except _PARSE_ERRORS:
        return None
    if frame.height != len(idx):
        return None
    return frame.with_columns(pl.Series("_idx", idx, dtype=pl.Int64))


def _parse_part(lines: list[bytes], part: list[int]) -> pl.DataFrame | None:
    return _read_ndjson(b"\n".join(lines[i] for i in part), part)


def _parse_one_by_one(lines: list[bytes], part: list[int], parsed: _Parsed) -> None:
    """Check each line in Python; parse the lines it finds no fault with."""
    typed = []
    for i in part:
        check = check_record_json(lines[i].decode())
        if check.findings:
            parsed.failed[i] = check
        else:
            typed.append(i)
    frame = _parse_part(lines, typed) if typed else None
    if frame is not None:
        parsed.frames.append(frame)
        return
    for i in typed:  # Python found no fault, polars did: polars has the last word
        frame = _read_ndjson(lines[i], [i])
        if frame is None:
            parsed.failed[i] = RecordCheck([_parser_finding(lines[i])], None)
        else:
            parsed.frames.append(frame)


def _parse_lines(lines: list[bytes], idx: list[int], payload: bytes | None = None) -> _Parsed:
    """Parse the lines `idx` with polars, splitting a part that fails down to its bad lines.

    Small parts, and parts whose every sub-part fails (bad lines everywhere), are checked
    line by line in Python instead.
    """
    parsed = _Parsed([], {})
    if not idx:
        return parsed
    frame = _read_ndjson(payload, idx) if payload is not None else _parse_part(lines, idx)
    if frame is not None:
        parsed.frames.append(frame)
        return parsed
    failing = [idx]
    while failing:
        part = failing.pop()
        if len(part) <= _LEAF_LINES:
            _parse_one_by_one(lines, part, parsed)
            continue
        step = -(-len(part) // _BISECT_WAYS)
        children = [part[start : start + step] for start in range(0, len(part), step)]
        frames = [_parse_part(lines, child) for child in children]
        if all(frame is None for frame in frames):
            _parse_one_by_one(lines, part, parsed)
            continue
        parsed.frames.extend(frame for frame in frames if frame is not None)
        failing.extend(c for c, frame in zip(children, frames, strict=True) if frame is None)
    return parsed


def _parser_finding(line: bytes) -> Finding:
    try:
        pl.read_ndjson(line, schema=TRACE_JSON_SCHEMA)
    except _PARSE_ERRORS as exc:
        reason = str(exc).splitlines()[0]
    else:
        reason = "a record polars reads differently"
    return ("", "a valid fpi-trace/1 record", f"unreadable ({reason})")


def _repaired_frame(failed: dict[int, RecordCheck]) -> pl.DataFrame | None:
    """The failed records with bad values nulled, so their values can be checked too."""
    rows = [(i, check.repaired) for i, check in failed.items() if check.repaired is not None]
    if not rows:
        return None
    texts = [json.dumps(record).encode() for _, record in rows]
    frame = _read_ndjson(b"\n".join(texts), [i for i, _ in rows])
    if frame is not None:
        return frame
    frames = [_read_ndjson(text, [i]) for (i, _), text in zip(rows, texts, strict=True)]
    frames = [f for f in frames if f is not None]
    return pl.concat(frames) if frames else None


class _Checked(NamedTuple):
    records: pl.DataFrame  # accepted, TRACE_JSON_SCHEMA + `_idx`
    rejects: list[Reject]


def _check_records(parsed: _Parsed, *, file: str, base: int, raw: Callable[[int], str]) -> _Checked:
    """Value-check parsed records; a record's line is `base + _idx`; rejects carry every problem."""
    frames = [f for f in parsed.frames if f.height]
    if not frames:
        good = pl.DataFrame(schema={**TRACE_JSON_SCHEMA, "_idx": pl.Int64})
    else:
        good = frames[0] if len(frames) == 1 else pl.concat(frames).sort("_idx")
    problems: defaultdict[int, list[Finding]] = defaultdict(list)
    for i, check in parsed.failed.items():
        problems[i].extend(check.findings)
    repaired = _repaired_frame(parsed.failed)
    checked = good if repaired is None else pl.concat([good, repaired])
    for i, field_path, expected, found in value_problems(checked, row="_idx").iter_rows():
        typed = [f for f, _, _ in parsed.failed[i].findings] if i in parsed.failed else []
        if not any(field_path == t or field_path.startswith(t + ".") for t in typed):
            problems[i].append((field_path, expected, found))
    rejects = []
    for i in sorted(problems):
        line = base + i
        reasons = tuple(Problem(file, line, *finding) for finding in problems[i])
        rejects.append(Reject(file, line, raw(i), reasons))
    if problems:
        good = good.filter(~pl.col("_idx").is_in(list(problems)))
    return _Checked(good, rejects)


def _parse_jsonl_block(block: bytes, first_line: int, file: str) -> tuple[_Checked, int]:
    """Check one block of whole lines: (accepted records and rejects, blank lines)."""
    lines = block.split(b"\n")
    if lines[-1] == b"":
        lines.pop()
    idx = [i for i, line in enumerate(lines) if line.strip(b" \t\r")]
    blank = len(lines) - len(idx)
    parsed = _parse_lines(lines, idx, block if blank == 0 else None)
    texts = pl.Series(lines, dtype=pl.Binary).cast(pl.String)
    for i in texts.str.contains(_COERCION_PATTERN).arg_true().to_list():
        if i not in parsed.failed:
            check = check_record_json(texts[i])
            if check.findings:
                parsed.failed[i] = check
    escaped = texts.str.contains("\\", literal=True)
    frames = [_exact_reference_labels(f, lines, escaped) for f in parsed.frames]
    if parsed.failed:
        bad = list(parsed.failed)
        frames = [f.filter(~pl.col("_idx").is_in(bad)) for f in frames]
    parsed = _Parsed(frames, parsed.failed)

    def raw(i: int) -> str:
        return lines[i].decode().removesuffix("\r")

    return _check_records(parsed, file=file, base=first_line, raw=raw), blank


def _exact_reference_labels(
    frame: pl.DataFrame, lines: list[bytes], escaped: pl.Series
) -> pl.DataFrame:
    """`reference_labels` as exact JSON text where the line holds escapes.

    polars renders a nested JSON value as text without re-escaping (backslashes, quotes in
    keys, control characters), so for lines with any backslash (`escaped`, per line) the
    object is read again and written by `json.dumps`.
    """
    labels = frame["reference_labels"]
    suspect = labels.is_not_null() & escaped.gather(frame["_idx"])
    positions = suspect.arg_true()
    if positions.is_empty():
        return frame
    rows = frame["_idx"].gather(positions).to_list()
    texts = [_labels_text(lines[i]) for i in rows]
    exact = labels.scatter(positions, texts)
    return frame.with_columns(pl.coalesce(exact, labels).alias("reference_labels"))


def _labels_text(line: bytes) -> str | None:
    try:
        return json.dumps(json.loads(line)["reference_labels"], ensure_ascii=False)
    except (ValueError, KeyError, TypeError):
        return None


def _to_traces(records: pl.DataFrame, file: str, base: int, file_index: int) -> pl.DataFrame:
    """Checked records as `TRACE_SCHEMA` (plus `_file`, the input's position, for ordering)."""
    turn_id = pl.format("{}/{}", "dialogue_id", "turn_index")
    return records.select(
        *[
            parse_rfc3339(pl.col(name)).alias(name)
            if name == "timestamp"
            else pl.coalesce(pl.col(name), turn_id).alias(name)
            if name == "turn_id"
            else pl.col(name)
            for name in TRACE_JSON_SCHEMA.names()
        ],
        pl.lit(file, pl.String).alias("source_file"),
        (pl.col("_idx") + base).alias("source_line"),
        pl.lit(file_index, pl.UInt32).alias("_file"),
    )


def from_trace_records(records: pl.DataFrame, *, source_file: str = "<memory>") -> pl.DataFrame:
    """A frame of `fpi-trace/1` records (JSON form, e.g. from tests) as `TRACE_SCHEMA`.

    Missing columns are null; `source_line` is the 0-based row. Invalid values raise
    `InvalidRecordsError` (types must already match `TRACE_JSON_SCHEMA`).
    """
    json_records = _conform(to_trace_records(records))
    checked = _check_records(
        _Parsed([json_records.with_row_index("_idx").cast({"_idx": pl.Int64})], {}),
        file=source_file,
        base=0,
        raw=lambda i: _ndjson_bytes(json_records[i : i + 1]).decode().strip(),
    )
    if checked.rejects:
        raise InvalidRecordsError([p for r in checked.rejects for p in r.problems])
    return _to_traces(checked.records, source_file, 0, 0).drop("_file")


def _conform(records: pl.DataFrame) -> pl.DataFrame:
    """TRACE_JSON_SCHEMA columns in order, absent ones null; dtypes must already match."""
    return records.select(
        pl.col(name) if name in records.columns else pl.lit(None, dtype).alias(name)
        for name, dtype in TRACE_JSON_SCHEMA.items()
    ).cast(dict(TRACE_JSON_SCHEMA))


# ---- Parquet -------------------------------------------------------------------------------------


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
    except _PARSE_ERRORS:
        return False
    return True


def _parquet_rows_ndjson(batch: pl.DataFrame, path: Path) -> bytes:
    """Parquet rows as JSON lines of their trace fields (`{}` for a row without any)."""
    columns = _parquet_json_columns(batch)
    if not columns.columns:
        return b"{}\n" * batch.height
    try:
        return _ndjson_bytes(columns)
    except _PARSE_ERRORS as exc:
        raise InputError(f"{path}: Parquet columns that cannot be read as JSON ({exc})") from None


def _parquet_chunk(
    batch: pl.DataFrame, offset: int, path: Path, file_index: int, typed: bool
) -> _Chunk:
    file = display_path(path)
    columns = _parquet_json_columns(batch)
    labels = columns.get_column("reference_labels", default=None)
    if typed and columns.columns and (labels is None or _texts_are_objects(labels)):
        records = _conform(columns).with_columns(
            pl.int_range(pl.len(), dtype=pl.Int64).alias("_idx")
        )

        def raw(i: int) -> str:
            return _parquet_rows_ndjson(batch[i : i + 1], path).decode().strip()

        checked = _check_records(_Parsed([records], {}), file=file, base=offset, raw=raw)
    else:
        checked, _ = _parse_jsonl_block(_parquet_rows_ndjson(batch, path), offset, file)
    return _Chunk(
        _to_traces(checked.records, file, offset, file_index), checked.rejects, batch.height
    )


def _parquet_batches(path: Path) -> Iterator[pl.DataFrame]:
    """Row batches of a Parquet file; an unreadable file is an InputError."""
    try:
        batches = iter(pl.scan_parquet(path).collect_batches(chunk_size=PARQUET_BATCH_ROWS))
        while True:
            try:
                batch = next(batches)
            except StopIteration:
                return
            yield batch
    except (*_PARSE_ERRORS, OSError) as exc:
        reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise InputError(f"{path}: unreadable Parquet ({reason})") from None


def _parquet_chunks(path: Path, file_index: int) -> Iterator[_Chunk]:
    try:
        typed = _parquet_is_typed(pl.read_parquet_schema(path))
    except (*_PARSE_ERRORS, OSError) as exc:
        raise InputError(f"{path}: unreadable Parquet ({str(exc).splitlines()[0]})") from None
    offset = 0
    for batch in _parquet_batches(path):
        yield _parquet_chunk(batch, offset, path, file_index, typed)
        offset += batch.height


# ---- files to checked chunks ---------------------------------------------------------------------


class _Chunk(NamedTuple):
    traces: pl.DataFrame  # accepted, TRACE_SCHEMA + `_file`
    rejects: list[Reject]
    read: int


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


def _jsonl_chunks(path: Path, fmt: str, file_index: int, stats: ReadStats) -> Iterator[_Chunk]:
    file = display_path(path)
    for block, first_line in _line_blocks(path, fmt):
        checked, blank = _parse_jsonl_block(block, first_line, file)
        stats.blank_lines += blank
        traces = _compact(_to_traces(checked.records, file, first_line, file_index))
        yield _Chunk(traces, checked.rejects, traces.height + len(checked.rejects))


def _file_chunks(path: Path, file_index: int, stats: ReadStats) -> Iterator[_Chunk]:
    """Checked chunks of one file, in order; whole-file problems raise InputError."""
    fmt = dump_format(path)
    try:
        size = path.stat().st_size
    except OSError as exc:
        raise InputError(f"{path}: cannot read ({exc.strerror or exc})") from None
    stats.files += 1
    read = 0
    if size:
        _check_content(path, fmt)
        if fmt == ".parquet":
            if display_path(path) != str(path):  # polars takes only UTF-8 paths
                raise InputError(f"{display_path(path)}: rename it, a Parquet name must be UTF-8")
            chunks = _parquet_chunks(path, file_index)
        else:
            chunks = _jsonl_chunks(path, fmt, file_index, stats)
        for chunk in chunks:
            read += chunk.read
            yield chunk
    if read == 0:
        stats.empty_files.append(str(path))


# ---- batches -------------------------------------------------------------------------------------


@dataclass
class TraceBatch:
    """Traces of whole dialogues (`TRACE_SCHEMA`), the rejects, and the records both account for."""

    traces: pl.DataFrame
    rejects: list[Reject]
    read: int


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

    def groups(self, batch_turns: int, depth: int = 0) -> Iterator[pl.DataFrame]:
        """Frames of whole partitions, each within `batch_turns` unless one dialogue is larger."""
        self.flush()
        group: list[int] = []
        size = 0
        for number in sorted(self.files):
            rows = self.rows[number]
            if group and size + rows > batch_turns:
                yield self._read(group)
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
            yield self._read(group)

    def _read(self, numbers: list[int]) -> pl.DataFrame:
        paths = [p for n in numbers for p in self.files.pop(n)]
        traces = pl.read_parquet(paths).sort("_file", "source_line")
        for path in paths:
            path.unlink()
        return traces


def _raw_records(files: Sequence[Path], wanted: Iterable[tuple[int, int]]) -> dict:
    """The raw text of records by (file index, line or row), read again from the files."""
    by_file: defaultdict[int, set[int]] = defaultdict(set)
    for file_index, line in wanted:
        by_file[file_index].add(line)
    found: dict[tuple[int, int], str] = {}
    for file_index, lines in by_file.items():
        path = files[file_index]
        fmt = dump_format(path)
        if fmt == ".parquet":
            rows = (
                pl.scan_parquet(path)
                .with_row_index("_row")
                .filter(pl.col("_row").is_in(sorted(lines)))
                .collect()
            )
            texts = _parquet_rows_ndjson(rows.drop("_row"), path).decode().splitlines()
            found.update(((file_index, r), t) for r, t in zip(rows["_row"], texts, strict=True))
            continue
        last = max(lines)
        for block, first_line in _line_blocks(path, fmt):
            block_lines = block.split(b"\n")
            for line in lines:
                if first_line <= line < first_line + len(block_lines):
                    text = block_lines[line - first_line].decode().removesuffix("\r")
                    found[(file_index, line)] = text
            if first_line + len(block_lines) > last:
                break
    return found


def _drop_duplicates(
    traces: pl.DataFrame, files: Sequence[Path]
) -> tuple[pl.DataFrame, list[Reject]]:
    """Traces (input order) without repeated keys, and a reject for each repeat."""
    problems = duplicate_problems(traces)
    if problems.is_empty():
        return traces.drop("_file"), []
    where = traces[problems["row"].to_list()].select("_file", "source_file", "source_line")
    raw = _raw_records(files, where.select("_file", "source_line").iter_rows())
    rejects = [
        Reject(file, line, raw[(index, line)], (Problem(file, line, field_path, expected, found),))
        for (index, file, line), (_, field_path, expected, found) in zip(
            where.iter_rows(), problems.iter_rows(), strict=True
        )
    ]
    unique = (
        traces.with_row_index("_row")
        .filter(~pl.col("_row").is_in(problems["row"].to_list()))
        .drop("_row", "_file")
    )
    return unique, rejects


def _batches(
    files: Sequence[Path], batch_turns: int, sink: RejectsSink | None, stats: ReadStats
) -> Iterator[TraceBatch]:
    put = sink.append if isinstance(sink, list) else sink

    def deliver(rejects: list[Reject]) -> None:
        if rejects and put is None:
            problems = [p for r in rejects for p in r.problems]
            raise InvalidRecordsError(problems, hint=_INVALID_HINT)
        for reject in rejects:
            put(reject)  # type: ignore[misc]

    pending: list[Reject] = []  # read but not yet handed out in a batch
    buffer: list[pl.DataFrame] = []
    buffered = 0
    spill: _Spill | None = None
    with tempfile.TemporaryDirectory(prefix="fpi-spill-") as scratch:
        for index, path in enumerate(files):
            for chunk in _file_chunks(path, index, stats):
                deliver(chunk.rejects)
                pending.extend(chunk.rejects)
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
                if len(pending) >= batch_turns:
                    yield TraceBatch(_empty_traces(), pending, len(pending))
                    pending = []
        if spill is not None:
            groups: Iterable[pl.DataFrame] = spill.groups(batch_turns)
        else:
            groups = [pl.concat(buffer)] if buffer else []
        for traces in groups:
            unique, repeats = _drop_duplicates(traces, files)
            deliver(repeats)
            yield TraceBatch(unique, pending + repeats, traces.height + len(pending))
            pending = []
        if pending:
            yield TraceBatch(_empty_traces(), pending, len(pending))


def iter_trace_batches(
    paths: Sequence[str | Path],
    *,
    batch_turns: int = 200_000,
    rejects_sink: RejectsSink | None = None,
    stats: ReadStats | None = None,
) -> Iterator[TraceBatch]:
    """Stream the dumps as batches of about `batch_turns` turns, never splitting a dialogue.

    Inputs larger than one batch are hash-partitioned by `dialogue_id` into temporary Parquet
    files, so memory stays bounded whatever the order of turns. Each batch's `read` is the
    number of records it accounts for (`len(traces) + len(rejects)`). Without `rejects_sink`
    an invalid record raises `InvalidRecordsError`; with one (a list, or a callable such as a
    `RejectsWriter`), each reject goes there as soon as it is found and the run goes on.
    `stats`, when given, is filled with blank lines and empty files seen.
    """
    files = resolve_inputs(paths)
    return _batches(files, batch_turns, rejects_sink, stats if stats is not None else ReadStats())


def read_traces(
    paths: Sequence[str | Path] | str | Path, *, rejects: list[Reject] | None = None
) -> pl.DataFrame:
    """The whole input in memory as one `TRACE_SCHEMA` frame, in input order.

    With `rejects=None` an invalid record raises `InvalidRecordsError` naming every problem;
    with a list, invalid records are appended to it (in input order) and left out.
    """
    if isinstance(paths, str | Path):
        paths = [paths]
    files = resolve_inputs(paths)
    found: list[Reject] = []
    frames = [b.traces for b in _batches(files, sys.maxsize, found, ReadStats())]
    order = {str(f): i for i, f in enumerate(files)}
    found.sort(key=lambda r: (order[r.file], r.line or 0))
    if found and rejects is None:
        raise InvalidRecordsError([p for r in found for p in r.problems], hint=_INVALID_HINT)
    if rejects is not None:
        rejects.extend(found)
    return pl.concat(frames) if frames else _empty_traces()
