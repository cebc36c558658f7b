"""JSON Lines: a block of lines to checked records (`TRACE_JSON_SCHEMA`) and rejects.

polars parses a whole block at once against `TRACE_JSON_SCHEMA`; a block that fails is split
down to its bad lines. Lines polars would read wrongly are checked one by one in Python
(`fpi.validate.check_record_json`): lines that are not UTF-8, longer than the cap, or flagged
by `fpi.io.scan` (keys given twice, raw NUL bytes, lone surrogate escapes) or by a pattern
(a string field holding another JSON type). Damage stays on its line: that line is a reject
naming the field, the rest of the block is read as usual.
"""

from __future__ import annotations

import json
import re
from collections import defaultdict
from collections.abc import Callable, Sequence
from typing import NamedTuple

import polars as pl

from fpi.errors import InvalidRecordsError
from fpi.io.decode import LONG_LINE_HEAD, MAX_LINE_BYTES, Block, is_blank
from fpi.io.write import ndjson_bytes, to_trace_records
from fpi.schema import TRACE_JSON_SCHEMA, Problem, Reject
from fpi.validate import (
    Finding,
    RecordCheck,
    check_record_json,
    parse_rfc3339,
    value_problems,
)

_BISECT_WAYS = 8
_LEAF_LINES = 16
PARSE_ERRORS = (pl.exceptions.PolarsError, pl.exceptions.PanicException)


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


class Parsed(NamedTuple):
    """A parsed block: frames of well-typed records (with `_idx`), and the lines that are not."""

    frames: list[pl.DataFrame]
    failed: dict[int, RecordCheck]


def _read_ndjson(payload: bytes, idx: Sequence[int]) -> pl.DataFrame | None:
    try:
        frame = pl.read_ndjson(payload, schema=TRACE_JSON_SCHEMA)
    except PARSE_ERRORS:
        return None
    if frame.height != len(idx):
        return None
    return frame.with_columns(pl.Series("_idx", idx, dtype=pl.Int64))


def _parse_part(lines: list[bytes], part: list[int]) -> pl.DataFrame | None:
    return _read_ndjson(b"\n".join(lines[i] for i in part), part)


def _parse_one_by_one(lines: list[bytes], part: list[int], parsed: Parsed) -> None:
    """Check each line in Python; parse the lines it finds no fault with."""
    typed = []
    for i in part:
        check = check_record_json(lines[i])
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


def _parse_lines(lines: list[bytes], idx: list[int], payload: bytes | None = None) -> Parsed:
    """Parse the lines `idx` with polars, splitting a part that fails down to its bad lines.

    Small parts, and parts whose every sub-part fails (bad lines everywhere), are checked
    line by line in Python instead.
    """
    parsed = Parsed([], {})
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
    except PARSE_ERRORS as exc:
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


class Checked(NamedTuple):
    records: pl.DataFrame  # accepted, TRACE_JSON_SCHEMA + `_idx`
    rejects: list[Reject]


def check_records(parsed: Parsed, *, file: str, base: int, raw: Callable[[int], str]) -> Checked:
    """Value-check parsed records; a record's line is `base + _idx`; rejects carry every problem."""
    frames = [f for f in parsed.frames if f.height]
    if not frames:
        good = _no_records()
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
    return Checked(good, rejects)


def _line_cap(max_line_bytes: int) -> str:
    return f"a line of at most {max_line_bytes:,} bytes"


def long_line_reject(block: Block, file: str, max_line_bytes: int) -> Reject:
    """The reject for a line over the cap: its first bytes stand for the record."""
    long = block.long_line
    assert long is not None
    found = f"a line of {long.length:,} bytes"
    problem = Problem(file, block.first_line, "", _line_cap(max_line_bytes), found)
    return Reject(file, block.first_line, _head_text(long.head), (problem,))


def _head_text(head: bytes) -> str:
    return head.decode("utf-8", "backslashreplace") + f"... (first {LONG_LINE_HEAD} bytes)"


def _damaged(data: bytes, lines: list[bytes], max_line_bytes: int) -> dict[int, RecordCheck]:
    """Lines over the cap or not UTF-8, which polars must not see, with their findings."""
    damaged: dict[int, RecordCheck] = {}
    if lines and max(map(len, lines)) > max_line_bytes:
        for i, line in enumerate(lines):
            if len(line) > max_line_bytes and not is_blank(line):
                found = f"a line of {len(line):,} bytes"
                damaged[i] = RecordCheck([("", _line_cap(max_line_bytes), found)], None)
    try:
        data.decode("utf-8")
    except UnicodeDecodeError:
        for i, line in enumerate(lines):
            if i not in damaged and not line.isascii():
                try:
                    line.decode("utf-8")
                except UnicodeDecodeError:
                    damaged[i] = check_record_json(line)
    return damaged


def parse_jsonl_block(
    block: Block, file: str, max_line_bytes: int = MAX_LINE_BYTES
) -> tuple[Checked, int]:
    """Check one block of whole lines: (accepted records and rejects, blank lines)."""
    if block.long_line is not None:
        if block.long_line.blank:
            return Checked(_no_records(), []), 1
        return Checked(_no_records(), [long_line_reject(block, file, max_line_bytes)]), 0
    data = block.data
    if is_blank(data):
        return Checked(_no_records(), []), data.count(b"\n") + (not data.endswith(b"\n"))
    lines = data.split(b"\n")
    if lines[-1] == b"":
        lines.pop()
    damaged = _damaged(data, lines, max_line_bytes)
    idx = [i for i, line in enumerate(lines) if i not in damaged and line.strip(b" \t\r")]
    blank = len(lines) - len(idx) - len(damaged)
    parsed = _parse_lines(lines, idx, data if blank == 0 and not damaged else None)
    parsed.failed.update(damaged)
    texts = pl.Series(
        [b"" if i in damaged else line for i, line in enumerate(lines)] if damaged else lines,
        dtype=pl.Binary,
    ).cast(pl.String)
    from fpi.io.scan import suspect_lines

    suspects = set(texts.str.contains(_COERCION_PATTERN).arg_true().to_list())
    suspects.update(suspect_lines(data, len(lines)).tolist())
    for i in sorted(suspects):
        if i not in parsed.failed and i < len(lines) and lines[i].strip(b" \t\r"):
            check = check_record_json(lines[i])
            if check.findings:
                parsed.failed[i] = check
    escaped = texts.str.contains("\\", literal=True)
    frames = [_exact_reference_labels(f, lines, escaped) for f in parsed.frames]
    if parsed.failed:
        bad = list(parsed.failed)
        frames = [f.filter(~pl.col("_idx").is_in(bad)) for f in frames]
    parsed = Parsed(frames, parsed.failed)

    def raw(i: int) -> str:
        if len(lines[i]) > max_line_bytes:
            return _head_text(lines[i][:LONG_LINE_HEAD])
        return lines[i].decode("utf-8", "backslashreplace").removesuffix("\r")

    return check_records(parsed, file=file, base=block.first_line, raw=raw), blank


def _no_records() -> pl.DataFrame:
    return pl.DataFrame(schema={**TRACE_JSON_SCHEMA, "_idx": pl.Int64})


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


def to_traces(records: pl.DataFrame, file: str, base: int, file_index: int) -> pl.DataFrame:
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
    json_records = conform(to_trace_records(records))
    checked = check_records(
        Parsed([json_records.with_row_index("_idx").cast({"_idx": pl.Int64})], {}),
        file=source_file,
        base=0,
        raw=lambda i: ndjson_bytes(json_records[i : i + 1]).decode().strip(),
    )
    if checked.rejects:
        raise InvalidRecordsError([p for r in checked.rejects for p in r.problems])
    return to_traces(checked.records, source_file, 0, 0).drop("_file")


def conform(records: pl.DataFrame) -> pl.DataFrame:
    """TRACE_JSON_SCHEMA columns in order, absent ones null; dtypes must already match."""
    return records.select(
        pl.col(name) if name in records.columns else pl.lit(None, dtype).alias(name)
        for name, dtype in TRACE_JSON_SCHEMA.items()
    ).cast(dict(TRACE_JSON_SCHEMA))
