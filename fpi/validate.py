"""Checks that records follow `fpi-trace/1`: pure functions over one JSON line or a frame.

Types come from the parse: polars parses whole blocks strictly, and `check_record_json` names
the field, the expected type and what was found for the few lines it rejects (including text
damage: invalid UTF-8, NUL, lone surrogates, and keys given twice). Values (ranges, enums,
ids, timestamps, duplicate turn keys) are checked vectorised over parsed frames. Reading
files is `fpi.io`'s job; `fpi.io.validate_dumps` is the report behind `fpi validate`.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, NamedTuple

import polars as pl

from fpi.schema import (
    DEVICE_TYPES,
    DIALOGUE_KEY,
    ER_STATUSES,
    FAILURE_POINTS,
    FEEDBACK_VALUES,
    RESULT_STATUSES,
    TIMESTAMP_DTYPE,
    TRACE_JSON_SCHEMA,
    WAKE_MODES,
)

#: RFC 3339 date-time: `T` (or `t`, or a space), 0-9 fraction digits, `Z` or a `+hh:mm` offset.
RFC3339_PATTERN = r"^\d{4}-\d{2}-\d{2}[Tt ]\d{2}:\d{2}:\d{2}(\.\d{1,9})?([Zz]|[+-]\d{2}:\d{2})$"
_ISO_FORMAT = "%Y-%m-%dT%H:%M:%S%.f%:z"

NOTHING = "nothing (missing or null)"
A_PROBABILITY = "a number in 0..1"
A_DURATION = "a number >= 0"
A_COUNT = "an integer >= 0"
AN_ID = "a non-empty string"
A_TIMESTAMP = "an RFC 3339 timestamp"
A_JSON_OBJECT = "a JSON object"
A_UNIQUE_KEY = "a unique (dialogue_id, turn_index)"
A_UNIQUE_NAME = "a key given once per object"
A_TEXT = "UTF-8 text without NUL bytes or lone surrogates"
KEY_FIELD = "(dialogue_id, turn_index)"

#: A type or value problem before it is placed in a file: (field path, expected, found).
Finding = tuple[str, str, str]


def parse_rfc3339(timestamps: pl.Expr) -> pl.Expr:
    """RFC 3339 text as Datetime(us, UTC); null where the text is not a valid RFC 3339 instant."""
    iso = timestamps.str.replace(r"^(.{10})[t ]", "${1}T").str.replace(r"[Zz]$", "+00:00")
    parsed = iso.str.to_datetime(_ISO_FORMAT, time_unit="us", time_zone="UTC", strict=False)
    return pl.when(timestamps.str.contains(RFC3339_PATTERN)).then(parsed).cast(TIMESTAMP_DTYPE)


# ---- types, one line at a time ---------------------------------------------------------

_JSON_KINDS = {str: "a string", bool: "a boolean", int: "a number", float: "a number"}
_EXPECTED = {
    "string": "a string",
    "integer": "an integer",
    "number": "a number",
    "boolean": "true or false",
    "object": A_JSON_OBJECT,
}
_SCALAR_KINDS = {
    pl.String: "string",
    pl.Int64: "integer",
    pl.Float64: "number",
    pl.Boolean: "boolean",
}


def _json_shape(dtype: pl.DataType, name: str = "") -> Any:
    """The JSON shape of a dtype: a dict of field shapes, `[item shape]`, or a scalar kind."""
    if name == "reference_labels":
        return "object"
    if isinstance(dtype, pl.Struct):
        return {f.name: _json_shape(f.dtype, f.name) for f in dtype.fields}
    if isinstance(dtype, pl.List):
        return [_json_shape(dtype.inner)]
    return _SCALAR_KINDS[dtype.base_type()]


_TRACE_SHAPE = _json_shape(pl.Struct(TRACE_JSON_SCHEMA))


class RecordCheck(NamedTuple):
    """Type findings for one JSON line, and the record with every bad value set to null."""

    findings: list[Finding]
    repaired: dict | None  # None when the line is not a JSON object at all


_ESCAPED_BYTE = re.compile("[\udc80-\udcff]")


def printable(text: str, *, from_bytes: bool = False) -> str:
    """Text safe to print and to write as UTF-8: lone surrogates become `\\udxxx` escapes
    (`from_bytes`: surrogates standing for bytes that were not UTF-8 become `\\xNN`)."""
    if from_bytes:
        text = _ESCAPED_BYTE.sub(lambda m: f"\\x{ord(m.group()) - 0xDC00:02x}", text)
    return text.encode("utf-8", "backslashreplace").decode("utf-8")


def describe_json(value: Any, limit: int = 40) -> str:
    """A short rendering of a JSON value and its kind, e.g. `"0.9" (a string)`."""
    text = printable(json.dumps(value, ensure_ascii=False))
    if len(text) > limit:
        text = text[: limit - 3] + "..."
    if value is None:
        return "null"
    if isinstance(value, dict):
        return f"{text} (an object)"
    if isinstance(value, list):
        return f"{text} (a list)"
    return f"{text} ({_JSON_KINDS[type(value)]})"


def _reject_constant(name: str) -> float:
    raise ValueError(f"{name} is not valid JSON")


def _fits(value: Any, kind: str) -> bool:
    kind_of = type(value)
    if kind == "string":
        return kind_of is str
    if kind == "number":
        return kind_of is int or (kind_of is float and math.isfinite(value))
    if kind == "integer":
        return kind_of is int and -(2**63) <= value < 2**63
    if kind == "boolean":
        return kind_of is bool
    return kind_of is dict


def _check_value(value: Any, shape: Any, path: str, findings: list[Finding]) -> Any:
    """A non-null value with every part that does not fit `shape` set to None (and recorded)."""
    if type(shape) is dict:
        if type(value) is not dict:
            findings.append((path, "an object", describe_json(value)))
            return None
        fitted = {}
        for name, field_shape in shape.items():
            if name not in value:
                continue
            item = value[name]
            if item is None or (type(field_shape) is str and _fits(item, field_shape)):
                fitted[name] = item
            else:
                fitted[name] = _check_value(item, field_shape, _join(path, name), findings)
        return fitted
    if type(shape) is list:
        if type(value) is not list:
            findings.append((path, "a list", describe_json(value)))
            return None
        return [
            item if item is None else _check_value(item, shape[0], f"{path}[{i}]", findings)
            for i, item in enumerate(value)
        ]
    if _fits(value, shape):
        return value
    findings.append((path, _EXPECTED[shape], describe_json(value)))
    return None


def _join(path: str, name: str) -> str:
    return f"{path}.{name}" if path else name


_SURROGATE = re.compile("[\ud800-\udfff]")
_NUL_OR_SURROGATE = re.compile("[\x00\ud800-\udfff]")


def _damage(text: str, from_bytes: bool) -> str:
    """What is wrong with a text holding NUL or a surrogate (`from_bytes`: the line was not
    UTF-8, and surrogates stand for its bad bytes)."""
    char = _NUL_OR_SURROGATE.search(text).group()  # type: ignore[union-attr]
    if char == "\x00":
        return "a NUL byte"
    if from_bytes and "\udc80" <= char <= "\udcff":
        return f"invalid UTF-8 (byte 0x{ord(char) - 0xDC00:02x})"
    return f"a lone surrogate (\\u{ord(char):04x})"


def _text_findings(
    value: Any,
    path: str,
    repeated: dict[int, list[str]],
    from_bytes: bool,
    out: list[Finding],
    damage: re.Pattern[str] = _SURROGATE,
) -> None:
    """Every key given twice, and every key or text with a lone surrogate (or, with
    `damage=_NUL_OR_SURROGATE`, a NUL: the line held a NUL byte), anywhere."""
    if type(value) is dict:
        for key in repeated.get(id(value), ()):
            name = printable(key, from_bytes=from_bytes)
            out.append((_join(path, name), A_UNIQUE_NAME, f'"{name}" given more than once'))
        for key, item in value.items():
            where = _join(path, printable(key, from_bytes=from_bytes))
            if damage.search(key):
                out.append((where, A_TEXT, _damage(key, from_bytes) + " in the key"))
            _text_findings(item, where, repeated, from_bytes, out, damage)
    elif type(value) is list:
        for i, item in enumerate(value):
            _text_findings(item, f"{path}[{i}]", repeated, from_bytes, out, damage)
    elif type(value) is str and damage.search(value):
        out.append((path, A_TEXT, _damage(value, from_bytes)))


def _loads(text: str, *, strict: bool) -> tuple[Any, dict[int, list[str]]]:
    """The JSON value, and the keys given more than once per object (by the object's id)."""
    repeated: dict[int, list[str]] = {}

    def pairs(items: list[tuple[str, Any]]) -> dict:
        record = dict(items)
        if len(record) < len(items):
            seen: set[str] = set()
            repeated[id(record)] = [k for k, _ in items if k in seen or seen.add(k)]
        return record

    value = json.loads(
        text, parse_constant=_reject_constant, object_pairs_hook=pairs, strict=strict
    )
    return value, repeated


def _decoded(line: str | bytes) -> tuple[str, str | None]:
    """The line as text (bad bytes as surrogates), and what is wrong with its bytes."""
    if isinstance(line, str):
        return line, None
    try:
        return line.decode("utf-8"), None
    except UnicodeDecodeError as exc:
        damage = f"invalid UTF-8 (byte 0x{line[exc.start]:02x} at column {exc.start + 1})"
        return line.decode("utf-8", "surrogateescape"), damage


def check_record_json(line: str | bytes) -> RecordCheck:
    """Parse one JSONL line and name every field whose JSON type breaks `fpi-trace/1`, every
    key given twice, and every text with a NUL byte, a lone surrogate or (for bytes) invalid
    UTF-8. An escaped `\\u0000` is text like any other character."""
    text, bad_bytes = _decoded(line)
    try:
        try:
            record, repeated = _loads(text, strict=True)
        except ValueError:
            if "\x00" not in text:
                raise
            record, repeated = _loads(text, strict=False)  # to name the field with the NUL
    except RecursionError:
        return RecordCheck([("", A_JSON_OBJECT, "JSON nested too deeply")], None)
    except ValueError as exc:
        if bad_bytes is not None:
            return RecordCheck([("", A_TEXT, bad_bytes)], None)
        reason = exc.msg if isinstance(exc, json.JSONDecodeError) else str(exc)
        column = f" at column {exc.colno}" if isinstance(exc, json.JSONDecodeError) else ""
        return RecordCheck([("", A_JSON_OBJECT, f"malformed JSON ({reason}{column})")], None)
    if not isinstance(record, dict):
        return RecordCheck([("", A_JSON_OBJECT, describe_json(record))], None)
    findings: list[Finding] = []
    try:
        damage = _NUL_OR_SURROGATE if "\x00" in text else _SURROGATE
        _text_findings(record, "", repeated, bad_bytes is not None, findings, damage)
    except RecursionError:
        return RecordCheck([("", A_JSON_OBJECT, "JSON nested too deeply")], None)
    repaired = _check_value(record, _TRACE_SHAPE, "", findings)
    return RecordCheck(findings, repaired)


# ---- values, vectorised ------------------------------------------------------------------


def _outside_probability(x: pl.Expr) -> pl.Expr:
    return ~(x.is_finite() & x.is_between(0.0, 1.0))


def _negative(x: pl.Expr) -> pl.Expr:
    return ~(x.is_finite() & (x >= 0))


def _negative_count(x: pl.Expr) -> pl.Expr:
    return x < 0


def _not_finite(x: pl.Expr) -> pl.Expr:
    return ~x.is_finite()


def _not_one_of(values: Sequence[str]) -> Callable[[pl.Expr], pl.Expr]:
    return lambda x: ~x.is_in(list(values))


@dataclass(frozen=True, slots=True)
class ValueRule:
    """A value check on one field path; `[]` marks a list whose every element is checked."""

    path: str
    expected: str
    is_bad: Callable[[pl.Expr], pl.Expr]
    quoted: bool = False  # render what was found as a JSON string


def _one_of(path: str, values: Sequence[str]) -> ValueRule:
    return ValueRule(path, "one of " + ", ".join(values), _not_one_of(values), quoted=True)


VALUE_RULES: tuple[ValueRule, ...] = (
    ValueRule("turn_index", A_COUNT, _negative_count),
    _one_of("device.type", DEVICE_TYPES),
    _one_of("wake.mode", WAKE_MODES),
    ValueRule("wake.confidence", A_PROBABILITY, _outside_probability),
    ValueRule("wake.verifier_confidence", A_PROBABILITY, _outside_probability),
    ValueRule("asr.confidence", A_PROBABILITY, _outside_probability),
    ValueRule("asr.nbest[].confidence", A_PROBABILITY, _outside_probability),
    ValueRule("asr.audio_ms", A_DURATION, _negative),
    ValueRule("asr.snr_db", "a finite number", _not_finite),
    ValueRule("nlu.confidence", A_PROBABILITY, _outside_probability),
    ValueRule("nlu.nbest[].confidence", A_PROBABILITY, _outside_probability),
    ValueRule("nlu.slots[].confidence", A_PROBABILITY, _outside_probability),
    ValueRule("er.entities[].score", A_PROBABILITY, _outside_probability),
    ValueRule("er.entities[].candidates", A_COUNT, _negative_count),
    _one_of("er.entities[].status", ER_STATUSES),
    _one_of("result.status", RESULT_STATUSES),
    ValueRule("result.latency_ms", A_DURATION, _negative),
    ValueRule("tts.duration_ms", A_DURATION, _negative),
    ValueRule("signals.barge_in_ms", A_DURATION, _negative),
    _one_of("signals.explicit_feedback", FEEDBACK_VALUES),
    _one_of("label.failure_point", FAILURE_POINTS),
)


def _field_expr(path: str, root: pl.Expr | None = None) -> pl.Expr:
    names = path.split(".")
    expr = pl.col(names[0]) if root is None else root.struct.field(names[0])
    for name in names[1:]:
        expr = expr.struct.field(name)
    return expr


def _found(value: pl.Expr, quoted: bool) -> pl.Expr:
    text = value.cast(pl.String)
    return pl.concat_str(pl.lit('"'), text, pl.lit('"')) if quoted else text


def _rule_problems(records: pl.LazyFrame, rule: ValueRule, row: str) -> pl.LazyFrame:
    """Rows breaking one rule as (row, field, expected, found)."""
    if "[]" not in rule.path:
        value = _field_expr(rule.path)
        return records.filter(value.is_not_null() & rule.is_bad(value)).select(
            pl.col(row),
            pl.lit(rule.path).alias("field"),
            pl.lit(rule.expected).alias("expected"),
            _found(value, rule.quoted).alias("found"),
        )
    outer, inner = rule.path.split("[].")
    items = _field_expr(outer)
    element_bad = rule.is_bad(_field_expr(inner, pl.element())).fill_null(False)
    item = pl.col("_item")
    value = _field_expr(inner, item)
    return (
        records.filter(items.list.eval(element_bad).list.any())
        .select(pl.col(row), items.alias("_item"), pl.int_ranges(items.list.len()).alias("_i"))
        .explode("_item", "_i")
        .filter(value.is_not_null() & rule.is_bad(value))
        .select(
            pl.col(row),
            pl.format(f"{outer}[{{}}].{inner}", pl.col("_i")).alias("field"),
            pl.lit(rule.expected).alias("expected"),
            _found(value, rule.quoted).alias("found"),
        )
    )


def _required_problems(records: pl.LazyFrame, row: str) -> list[pl.LazyFrame]:
    def problems(condition: pl.Expr, name: str, expected: str, found: pl.Expr) -> pl.LazyFrame:
        return records.filter(condition).select(
            pl.col(row),
            pl.lit(name).alias("field"),
            pl.lit(expected).alias("expected"),
            found.alias("found"),
        )

    def blank(name: str) -> pl.Expr:
        return pl.col(name).str.strip_chars().str.len_bytes() == 0

    def quoted(name: str) -> pl.Expr:
        return _found(pl.col(name), quoted=True)

    timestamp = pl.col("timestamp")
    return [
        problems(pl.col("dialogue_id").is_null(), "dialogue_id", AN_ID, pl.lit(NOTHING)),
        problems(blank("dialogue_id"), "dialogue_id", AN_ID, quoted("dialogue_id")),
        problems(blank("turn_id"), "turn_id", AN_ID + " or null", quoted("turn_id")),
        problems(pl.col("turn_index").is_null(), "turn_index", A_COUNT, pl.lit(NOTHING)),
        problems(timestamp.is_null(), "timestamp", A_TIMESTAMP, pl.lit(NOTHING)),
        problems(
            timestamp.is_not_null() & parse_rfc3339(timestamp).is_null(),
            "timestamp",
            A_TIMESTAMP,
            quoted("timestamp"),
        ),
    ]


def value_problems(records: pl.DataFrame, row: str = "_row") -> pl.DataFrame:
    """Every range, enum, id and timestamp problem in a `TRACE_JSON_SCHEMA` frame.

    `records` carries a `row` column naming each record; the result has one row per problem:
    (`row`, `field`, `expected`, `found`), ordered by `row`.
    """
    lazy = records.lazy()
    parts = _required_problems(lazy, row) + [_rule_problems(lazy, r, row) for r in VALUE_RULES]
    return pl.concat(parts).collect().sort(row, maintain_order=True)


def duplicate_problems(traces: pl.DataFrame) -> pl.DataFrame:
    """Later records repeating a `(dialogue_id, turn_index)`, in input order (first one wins).

    `traces` is in input order with `source_file` and `source_line`; the result has one row per
    repeat: (`row`, `field`, `expected`, `found`), where `row` is the position in `traces`.
    """
    key = pl.struct(DIALOGUE_KEY)
    keyed = traces.select(
        pl.int_range(pl.len(), dtype=pl.Int64).alias("row"),
        *DIALOGUE_KEY,
        key.is_first_distinct().alias("_first"),
        "source_file",
        "source_line",
    )
    repeats = keyed.filter(~pl.col("_first"))
    if repeats.is_empty():
        return pl.DataFrame(
            schema={"row": pl.Int64, "field": pl.String, "expected": pl.String, "found": pl.String}
        )
    firsts = keyed.filter(pl.col("_first")).join(
        repeats.select(DIALOGUE_KEY).unique(), on=list(DIALOGUE_KEY)
    )
    return (
        repeats.join(firsts, on=list(DIALOGUE_KEY), suffix="_first", maintain_order="left")
        .select(
            "row",
            pl.lit(KEY_FIELD).alias("field"),
            pl.lit(A_UNIQUE_KEY).alias("expected"),
            pl.format(
                '("{}", {}), first seen at {}:{}',
                *DIALOGUE_KEY,
                "source_file_first",
                "source_line_first",
            ).alias("found"),
        )
        .sort("row")
    )
