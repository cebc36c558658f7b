"""The importer contract: a source turns its logs into `fpi-trace/1` records, unit by unit.

A *unit* is what a source can lose without losing the rest: a DSTC2 call, a Home Assistant
pipeline run, a Rasa conversation, a Lex utterance. A source yields, per unit, either the
records it converts to (`Pending`, converted lazily) or why it cannot be read (`Skipped`).
`run_import` converts, checks every record with the project's validator (types, values,
unique `(dialogue_id, turn_index)`), writes the units that pass and skips, counts and reports
the others with their reason, so `read == imported + skipped` and no record the validator
rejects is ever written. Nothing raised while converting one unit escapes as a traceback.

Records are plain dicts in `fpi-trace/1` JSON form. What a source logs but the trace format
has no field for goes, verbatim, under the record's `passthrough` object (`PASSTHROUGH`),
which readers ignore; a stage the source does not log stays null.
"""

from __future__ import annotations

import contextlib
import json
import math
import sqlite3
import sys
import tempfile
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import IO, Any, NamedTuple

import polars as pl

from fpi.errors import InputError
from fpi.io import DUMP_SUFFIXES, atomic_output, check_outputs, dump_format, jsonl_stream
from fpi.io import MAX_LINE_BYTES as DEFAULT_MAX_LINE_BYTES
from fpi.io.decode import content_kind, decompressed, line_blocks
from fpi.io.files import COMPRESSION_SUFFIXES, expand_inputs
from fpi.schema import DIALOGUE_KEY, FAILURE_POINTS, TRACE_JSON_SCHEMA
from fpi.validate import check_record_json, value_problems

#: The top-level record key holding what the source logged beyond `fpi-trace/1`.
PASSTHROUGH = "passthrough"
#: The `reference_labels` key naming the stage the source itself reported as failing.
SYSTEM_REPORTED = "system_reported"
#: Records checked together in one vectorised value check.
CHECK_RECORDS = 5_000
#: A JSON document (one file) larger than this is skipped rather than read into memory.
MAX_DOCUMENT_BYTES = 256 << 20
#: A JSON Lines line longer than this (bytes) is one skipped unit, never held whole.
MAX_LINE_BYTES = DEFAULT_MAX_LINE_BYTES
#: Skipped units whose reasons are kept in memory for the summary (all go to `--rejects`).
KEEP_REASONS = 1_000

#: What converting a malformed unit raises (a missing key, a wrong type, deep nesting...).
MALFORMED = (
    KeyError,
    IndexError,
    TypeError,
    ValueError,
    AttributeError,
    OverflowError,
    RecursionError,
    UnicodeError,
)


class BrokenUnitError(InputError):
    """One unit of a source that cannot be converted, and why."""


@dataclass(frozen=True, slots=True)
class Pending:
    """A unit whose records `convert()` builds; any `MALFORMED` error skips the unit."""

    unit: str
    convert: Callable[[], list[dict]]


@dataclass(frozen=True, slots=True)
class Skipped:
    """A unit the source could not read at all, with the reason."""

    unit: str
    reason: str


Unit = Pending | Skipped
Progress = Callable[[int, int | None], None]


@dataclass
class ImportSummary:
    """What an import read, wrote and left out; `read == imported + skipped`."""

    source: str
    unit_kind: str  # "call", "run", "conversation", "utterance"
    out: Path
    read: int = 0
    imported: int = 0
    skipped: int = 0
    turns: int = 0
    reasons: list[tuple[str, str]] = field(default_factory=list)  # the first KEEP_REASONS
    label_counts: Counter[str] = field(default_factory=Counter)
    system_reported: Counter[str] = field(default_factory=Counter)

    def skip(self, unit: str, reason: str) -> None:
        self.read += 1
        self.skipped += 1
        if len(self.reasons) < KEEP_REASONS:
            self.reasons.append((unit, reason))


# ---- helpers every source uses --------------------------------------------------------


def why(exc: BaseException) -> str:
    """A one-line reason for a conversion error."""
    if isinstance(exc, BrokenUnitError):
        return str(exc)
    if isinstance(exc, KeyError):
        return f"missing key {exc.args[0]!r}"
    if isinstance(exc, RecursionError):
        return "JSON nested too deeply"
    if isinstance(exc, json.JSONDecodeError):
        return f"bad JSON at line {exc.lineno} column {exc.colno}: {exc.msg}"
    return f"unexpected content ({type(exc).__name__}: {exc})"


def rfc3339(value: Any) -> str:
    """A source timestamp (ISO 8601 text with a zone, or Unix seconds) as RFC 3339 UTC text."""
    if isinstance(value, bool) or value is None:
        raise BrokenUnitError(f"timestamp: expected a time, found {value!r}")
    if isinstance(value, int | float):
        if not math.isfinite(value):
            raise BrokenUnitError(f"timestamp: expected a time, found {value!r}")
        moment = datetime.fromtimestamp(value, UTC)
    elif isinstance(value, str):
        try:
            moment = datetime.fromisoformat(value.replace("Z", "+00:00").replace("z", "+00:00"))
        except ValueError:
            raise BrokenUnitError(f"timestamp: not an ISO 8601 time ({value!r})") from None
        if moment.tzinfo is None:
            raise BrokenUnitError(f"timestamp: no time zone ({value!r})")
        moment = moment.astimezone(UTC)
    else:
        raise BrokenUnitError(f"timestamp: expected a time, found {type(value).__name__}")
    text = moment.strftime("%Y-%m-%dT%H:%M:%S")
    micros = moment.microsecond
    return f"{text}.{micros // 1000:03d}Z" if micros % 1000 == 0 else f"{text}.{micros:06d}Z"


def elapsed_ms(start: str | None, end: str | None) -> float | None:
    """Milliseconds between two ISO 8601 times, or None when either is missing or unreadable."""
    if not start or not end:
        return None
    try:
        a = datetime.fromisoformat(start.replace("Z", "+00:00"))
        b = datetime.fromisoformat(end.replace("Z", "+00:00"))
        return round((b - a).total_seconds() * 1000, 3)
    except (ValueError, TypeError, AttributeError):
        return None


def number(value: Any) -> float | None:
    """A JSON number or numeric text (Lex logs confidences as "0.93") as a float; else None."""
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, int | float):
        return float(value)
    if isinstance(value, str):
        try:
            return float(value)
        except ValueError:
            return None
    return None


def text_or_none(value: Any) -> str | None:
    """Text as given; numbers and booleans as their JSON text; anything else None."""
    if value is None or isinstance(value, dict | list):
        return None
    if isinstance(value, str):
        return value
    return json.dumps(value)


def unmapped(value: Any, mapped: Any) -> Any:
    """What of `value` the mapping `mapped` did not consume (None when nothing is left).

    `mapped` mirrors the value: `True` consumes a whole field, a dict maps an object's fields,
    a one-element list applies its element to every item of a list. A field the mapping does
    not name is kept as it is, nulls included.
    """
    left = _left(value, mapped)
    return None if left is _CONSUMED else left


_CONSUMED = object()


def _left(value: Any, mapped: Any) -> Any:
    if mapped is True:
        return _CONSUMED
    if isinstance(value, dict) and isinstance(mapped, dict):
        rest = {}
        for key, item in value.items():
            left = _left(item, mapped[key]) if key in mapped else item
            if left is not _CONSUMED:
                rest[key] = left
        return rest or _CONSUMED
    if isinstance(value, list) and isinstance(mapped, list):
        items = [_left(item, mapped[0]) for item in value]
        if all(i is _CONSUMED for i in items):
            return _CONSUMED
        return [None if i is _CONSUMED else i for i in items]
    return value


def compact(block: dict) -> dict | None:
    """A stage block with null fields left out; None when nothing is left."""
    kept = {k: v for k, v in block.items() if v is not None}
    return kept or None


# ---- reading source files -------------------------------------------------------------


def find_files(paths: Sequence[str | Path], suffixes: Sequence[str]) -> list[Path]:
    """The files to import: files as given, directories searched recursively for `suffixes`
    (optionally compressed: `.gz`, `.zst`), globs expanded, sorted; a missing path is an
    InputError (`fpi.io.expand_inputs`, the one path resolution)."""
    return expand_inputs(
        paths,
        any_file=True,
        wanted=lambda path: _wanted(path, suffixes),
        what=f"files ending {', '.join(suffixes)}",
    )


def _wanted(path: Path, suffixes: Sequence[str]) -> bool:
    name = path.name.lower()
    for compressed in COMPRESSION_SUFFIXES:
        name = name.removesuffix(compressed)
    return name.endswith(tuple(suffixes))


def base_suffix(path: Path) -> str:
    """The file's suffix without a compression suffix: `runs.jsonl.gz` -> `.jsonl`."""
    name = path.name.lower()
    for compressed in COMPRESSION_SUFFIXES:
        name = name.removesuffix(compressed)
    return Path(name).suffix


#: The JSONL dump format `fpi.io.decode.line_blocks` reads a file of each content kind as.
_LINE_FORMATS = {
    kind: next(f for f in DUMP_SUFFIXES if f.startswith(".jsonl") and f.endswith(end))
    for kind, end in (("gzip", ".gz"), ("zstd", ".zst"), ("text", ".jsonl"))
}


def _content(path: Path) -> str:
    """ "gzip", "zstd" or "text" by the file's first bytes (`fpi.io.decode.content_kind`)."""
    kind = content_kind(path)
    if kind not in _LINE_FORMATS:
        raise BrokenUnitError(f"{kind} data, not JSON")
    return kind


def read_document(path: Path) -> Any:
    """A whole JSON file (gzip or zstd decompressed by `fpi.io.decode`); a problem reading or
    parsing it is a `BrokenUnitError`."""
    try:
        if path.stat().st_size > MAX_DOCUMENT_BYTES:
            raise BrokenUnitError(f"larger than {MAX_DOCUMENT_BYTES >> 20} MB")
        pieces, size = [], 0
        for piece in decompressed(path, _content(path)):
            size += len(piece)
            if size > MAX_DOCUMENT_BYTES:
                raise BrokenUnitError(f"larger than {MAX_DOCUMENT_BYTES >> 20} MB decompressed")
            pieces.append(piece)
        return json.loads(b"".join(pieces).decode("utf-8-sig"))
    except BrokenUnitError:
        raise
    except InputError as exc:
        raise BrokenUnitError(str(exc)) from None
    except OSError as exc:
        raise BrokenUnitError(f"cannot read ({exc.strerror or exc})") from None
    except MALFORMED as exc:
        raise BrokenUnitError(why(exc)) from None


def _long_line(length: int) -> BrokenUnitError:
    return BrokenUnitError(f"a line of {length:,} bytes (the cap is {MAX_LINE_BYTES:,})")


def json_lines(path: Path) -> Iterator[tuple[int, Any | BrokenUnitError]]:
    """(1-based line, parsed value or the error) for every non-blank line of a JSONL file,
    read in bounded blocks by `fpi.io.decode.line_blocks`.

    A line longer than `MAX_LINE_BYTES` is an error for that line only, never held whole; a
    file that cannot be read or decompressed yields one error where it stopped.
    """
    line_no = 0
    try:
        fmt = _LINE_FORMATS[_content(path)]
        for block in line_blocks(path, fmt, MAX_LINE_BYTES):
            line_no = block.first_line
            if block.long_line is not None:
                yield line_no, _long_line(block.long_line.length)
                continue
            for offset, raw in enumerate(block.data.split(b"\n")):
                line_no = block.first_line + offset
                if not raw.strip():
                    continue
                if len(raw) > MAX_LINE_BYTES:
                    yield line_no, _long_line(len(raw))
                    continue
                try:
                    yield line_no, json.loads(raw.decode("utf-8"))
                except MALFORMED as exc:
                    yield line_no, BrokenUnitError(why(exc))
    except BrokenUnitError as exc:
        yield line_no, exc
    except InputError as exc:
        yield line_no, BrokenUnitError(str(exc))


def epoch_us(timestamp: str) -> int:
    """Microseconds since 1970 of an RFC 3339 text from `rfc3339`: a key that sorts in time."""
    moment = datetime.fromisoformat(timestamp.replace("Z", "+00:00"))
    return (moment - _EPOCH) // timedelta(microseconds=1)


_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


class Groups:
    """Items gathered by key in a temporary SQLite file, handed back one group at a time.

    Sources whose units must be seen together (the runs of a conversation, the events of a
    sender) gather them here, so memory holds one group, whatever the input's size or order.
    Groups come back by key; items within a group by `order`, then as added.
    """

    def __init__(self) -> None:
        self._dir = tempfile.TemporaryDirectory(prefix="fpi-import-")
        self._db = sqlite3.connect(Path(self._dir.name) / "groups.sqlite")
        self._db.execute(
            "CREATE TABLE items (seq INTEGER PRIMARY KEY, key TEXT, ord INTEGER, payload TEXT)"
        )
        self._rows: list[tuple[str, int, str]] = []

    def add(self, key: str, order: int, payload: Any) -> None:
        self._rows.append((key, order, json.dumps(payload, ensure_ascii=False)))
        if len(self._rows) >= 10_000:
            self._flush()

    def _flush(self) -> None:
        self._db.executemany("INSERT INTO items (key, ord, payload) VALUES (?, ?, ?)", self._rows)
        self._rows.clear()

    def __iter__(self) -> Iterator[tuple[str, list[Any]]]:
        self._flush()
        self._db.execute("CREATE INDEX by_key ON items (key, ord, seq)")
        key, items = None, []
        for row_key, payload in self._db.execute(
            "SELECT key, payload FROM items ORDER BY key, ord, seq"
        ):
            if row_key != key and items:
                yield key, items
                items = []
            key = row_key
            items.append(json.loads(payload))
        if items:
            yield key, items

    def close(self) -> None:
        self._db.close()
        self._dir.cleanup()

    def __enter__(self) -> Groups:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


# ---- checking records -----------------------------------------------------------------


def _non_finite(value: Any, path: str = "") -> str | None:
    """The path of the first NaN or infinite number in a record, if any."""
    if isinstance(value, float) and not math.isfinite(value):
        return path or "(record)"
    if isinstance(value, dict):
        for key, item in value.items():
            found = _non_finite(item, f"{path}.{key}" if path else key)
            if found:
                return found
    elif isinstance(value, list):
        for i, item in enumerate(value):
            found = _non_finite(item, f"{path}[{i}]")
            if found:
                return found
    return None


class CheckedRecord(NamedTuple):
    """A record as it will be written, or the reason the project's reader would reject it."""

    record: dict
    line: str | None  # the trace fields (no pass-through) as JSON, when they check out
    output: str | None  # the whole record as its output line (pass-through included)
    problem: str | None


def check_record(record: dict) -> CheckedRecord:
    """Check a record with the validator (`fpi.validate.check_record_json`) as it will be
    written: trace types, and text the reader accepts (no NUL, no lone surrogate) anywhere,
    pass-through included. The first problem is the reason."""
    trace = {k: v for k, v in record.items() if k != PASSTHROUGH}
    try:
        line = json.dumps(trace, ensure_ascii=False, allow_nan=False)
    except ValueError:
        bad = _non_finite(trace) or "(record)"
        found = _record_value(trace, bad) if bad != "(record)" else "a non-finite number"
        problem = f"field {bad}: expected a finite number, found {found}"
        return CheckedRecord(record, None, None, problem)
    output = _output_line(line, record.get(PASSTHROUGH))
    findings = check_record_json(output).findings
    if findings:
        name, expected, found = findings[0]
        where = f"field {name}: " if name else ""
        return CheckedRecord(record, None, None, f"{where}expected {expected}, found {found}")
    return CheckedRecord(record, line, output, None)


def _record_value(record: dict, path: str) -> Any:
    value: Any = record
    for part in path.replace("[", ".").replace("]", "").split("."):
        value = value[int(part)] if isinstance(value, list) else value[part]
    return value


def _finite(value: Any) -> Any:
    """The value with NaN and infinities as text ("nan", "inf"): JSON has no such numbers."""
    if isinstance(value, float) and not math.isfinite(value):
        return repr(value)
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_finite(v) for v in value]
    return value


def passthrough_json(passthrough: Any) -> str:
    """The pass-through object as JSON (a NaN the source logged is kept as the text "nan")."""
    try:
        return json.dumps(passthrough, ensure_ascii=False, allow_nan=False)
    except ValueError:
        return json.dumps(_finite(passthrough), ensure_ascii=False)


def _output_line(line: str, passthrough: Any) -> str:
    """The trace fields' JSON line with the pass-through object spliced in."""
    if passthrough is None:
        return line
    rest = passthrough_json(passthrough)
    if line == "{}":
        return f'{{"{PASSTHROUGH}": {rest}}}'
    return f'{line[:-1]}, "{PASSTHROUGH}": {rest}}}'


def _turn_name(record: dict) -> str:
    return f"turn {record.get('dialogue_id')!r}/{record.get('turn_index')!r}"


# ---- writing --------------------------------------------------------------------------


class RecordWriter:
    """Streams records to an `fpi-trace/1` dump, atomically (`fpi.io.atomic_output`): a
    failed import leaves what was there untouched. JSONL (`.jsonl`, `.jsonl.gz`, `.jsonl.zst`)
    keeps the records verbatim; Parquet has the trace columns plus `passthrough` as JSON text."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self.format = dump_format(self.path)
        if self.format is None:
            raise InputError(f"{self.path}: unknown trace format (use {', '.join(DUMP_SUFFIXES)})")
        self._stack = contextlib.ExitStack()
        self._stream: Any = None
        self._parts: list[Path] = []
        self._tmp: Path | None = None

    def __enter__(self) -> RecordWriter:
        self._tmp = self._stack.enter_context(atomic_output(self.path))
        if self.format != ".parquet":
            try:
                self._stream = self._stack.enter_context(jsonl_stream(self._tmp, self.format))
            except OSError as exc:
                self._stack.__exit__(*sys.exc_info())
                raise InputError(f"{self.path}: cannot write ({exc.strerror or exc})") from None
        return self

    def write(self, records: list[CheckedRecord]) -> None:
        if not records:
            return
        if self.format == ".parquet":
            part = self._tmp.with_name(f"{self._tmp.name}.{len(self._parts):06d}")
            self._parts.append(part)
            _records_frame([r.record for r in records]).write_parquet(part)
        else:
            self._stream.write("".join(r.output + "\n" for r in records).encode())

    def __exit__(self, exc_type, exc, tb) -> None:
        try:
            if exc_type is None and self.format == ".parquet":
                if self._parts:
                    pl.scan_parquet(self._parts).sink_parquet(self._tmp, compression="zstd")
                else:
                    _records_frame([]).write_parquet(self._tmp, compression="zstd")
        except BaseException:
            self._close(*sys.exc_info())
            raise
        self._close(exc_type, exc, tb)

    def _close(self, exc_type, exc, tb) -> None:
        """Close the streams; on success rename the output into place, else remove it."""
        for part in self._parts:
            part.unlink(missing_ok=True)
        try:
            self._stack.__exit__(exc_type, exc, tb)
        except OSError as err:
            if exc_type is not None:
                raise
            raise InputError(f"{self.path}: cannot write ({err.strerror or err})") from None


_FRAME_SCHEMA = pl.Schema({**TRACE_JSON_SCHEMA, PASSTHROUGH: pl.String})


def _records_frame(records: list[dict]) -> pl.DataFrame:
    rows = []
    for record in records:
        row = {name: record.get(name) for name in TRACE_JSON_SCHEMA.names()}
        if record.get("reference_labels") is not None:
            row["reference_labels"] = json.dumps(record["reference_labels"], ensure_ascii=False)
        if record.get(PASSTHROUGH) is not None:
            row[PASSTHROUGH] = passthrough_json(record[PASSTHROUGH])
        rows.append(row)
    return pl.DataFrame(rows, schema=_FRAME_SCHEMA)


class _RejectsFile:
    """Skipped units as JSONL `{"unit", "reason"}`, streamed (no file without a path)."""

    def __init__(self, path: Path | None) -> None:
        self.path = path
        self._fh: IO[str] | None = None

    def __enter__(self) -> _RejectsFile:
        if self.path is not None:
            try:
                self.path.parent.mkdir(parents=True, exist_ok=True)
                self._fh = self.path.open("w", encoding="utf-8")
            except OSError as exc:
                raise InputError(f"{self.path}: cannot write ({exc.strerror or exc})") from None
        return self

    def __call__(self, unit: str, reason: str) -> None:
        if self._fh is not None:
            self._fh.write(json.dumps({"unit": unit, "reason": reason}, ensure_ascii=False) + "\n")

    def __exit__(self, *exc: object) -> None:
        if self._fh is not None:
            self._fh.close()


# ---- the import loop ------------------------------------------------------------------


class _Checker:
    """Buffers converted units, checks them together, writes the ones that pass."""

    def __init__(self, summary: ImportSummary, writer: RecordWriter, reject) -> None:
        self.summary = summary
        self.writer = writer
        self.reject = reject
        self.seen: set[tuple[str, int]] = set()
        self.pending: list[tuple[str, list[CheckedRecord]]] = []
        self.buffered = 0

    def skip(self, unit: str, reason: str) -> None:
        self.summary.skip(unit, reason)
        self.reject(unit, reason)

    def add(self, unit: str, records: list[dict]) -> None:
        keys = []
        checked = []
        for record in records:
            result = check_record(record)
            problem = result.problem
            checked.append(result)
            if problem is None:
                key = (record["dialogue_id"], record["turn_index"])
                if key in self.seen or key in keys:
                    problem = f"{DIALOGUE_KEY} {key!r} repeats an earlier turn"
                keys.append(key)
            if problem is not None:
                self.skip(unit, f"{_turn_name(record)}: {problem}")
                return
        self.seen.update(keys)
        self.pending.append((unit, checked))
        self.buffered += len(records)
        if self.buffered >= CHECK_RECORDS:
            self.flush()

    def flush(self) -> None:
        if not self.pending:
            return
        owners = [u for u, (_, records) in enumerate(self.pending) for _ in records]
        records = [r for _, rs in self.pending for r in rs]
        problems = _value_problems([r.line for r in records])
        bad: dict[int, str] = {}
        for row, field_path, expected, found in problems.iter_rows():
            bad.setdefault(
                owners[row],
                f"{_turn_name(records[row].record)}: field {field_path}: "
                f"expected {expected}, found {found}",
            )
        out = []
        for u, (unit, unit_records) in enumerate(self.pending):
            if u in bad:
                self.seen.difference_update(
                    (r.record["dialogue_id"], r.record["turn_index"]) for r in unit_records
                )
                self.skip(unit, bad[u])
                continue
            self._count(unit_records)
            out.extend(unit_records)
        self.writer.write(out)
        self.pending.clear()
        self.buffered = 0

    def _count(self, records: list[CheckedRecord]) -> None:
        s = self.summary
        s.read += 1
        s.imported += 1
        s.turns += len(records)
        for record in (r.record for r in records):
            label = (record.get("label") or {}).get("failure_point")
            if label is not None:
                s.label_counts[label] += 1
            reported = (record.get("reference_labels") or {}).get(SYSTEM_REPORTED)
            if reported is not None:
                s.system_reported[reported] += 1


def _value_problems(lines: list[str]) -> pl.DataFrame:
    payload = "\n".join(lines)
    frame = pl.read_ndjson(payload.encode(), schema=TRACE_JSON_SCHEMA)
    frame = frame.with_columns(pl.int_range(pl.len(), dtype=pl.Int64).alias("_row"))
    return value_problems(frame, row="_row")


def run_import(
    source: str,
    unit_kind: str,
    units: Iterable[Unit],
    out: Path | str,
    *,
    rejects: Path | str | None = None,
    progress: Progress | None = None,
    total: int | None = None,
    inputs: Sequence[Path] = (),
) -> ImportSummary:
    """Convert, check and write every unit; see the module docstring for the contract.

    An output or rejects path that is one of `inputs`, a directory or the other output is
    refused before anything is read (`fpi.io.check_outputs`).
    """
    out = Path(out)
    check_outputs(inputs, out=out, rejects=rejects)
    summary = ImportSummary(source=source, unit_kind=unit_kind, out=out)
    rejects_path = Path(rejects) if rejects is not None else None
    with RecordWriter(out) as writer, _RejectsFile(rejects_path) as reject:
        checker = _Checker(summary, writer, reject)
        for done, unit in enumerate(units, start=1):
            if isinstance(unit, Skipped):
                checker.skip(unit.unit, unit.reason)
            else:
                try:
                    records = unit.convert()
                except (*MALFORMED, BrokenUnitError) as exc:
                    checker.skip(unit.unit, why(exc))
                else:
                    checker.add(unit.unit, records)
            if progress is not None:
                progress(done, total)
        checker.flush()
    return summary


@dataclass(frozen=True)
class Source:
    """A log source: its name, what one unit is, the files it reads and how they split up."""

    name: str
    unit_kind: str
    suffixes: tuple[str, ...]
    units: Callable[[Sequence[Path]], Iterable[Unit]]

    def import_paths(
        self,
        paths: Sequence[str | Path],
        out: Path | str,
        *,
        rejects: Path | str | None = None,
        progress: Progress | None = None,
    ) -> ImportSummary:
        """Import every unit of the files under `paths` into `out` (see `run_import`)."""
        files = find_files(paths, self.suffixes)
        return run_import(
            self.name,
            self.unit_kind,
            self.units(files),
            out,
            rejects=rejects,
            progress=progress,
            inputs=files,
        )


def system_reported_stage(stage: str | None) -> dict | None:
    """`reference_labels` naming the stage the source blamed (None when it named none)."""
    if stage is None:
        return None
    if stage not in FAILURE_POINTS:  # a programming error in a source's table
        raise AssertionError(f"{stage!r} is not a failure point")
    return {SYSTEM_REPORTED: stage}
