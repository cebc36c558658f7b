"""Hypothesis strategies for valid `fpi-trace/1` records and frames (shared by property tests).

`trace_records()` draws one record as a plain dict, exactly as it would be written in a JSONL
dump: every optional field may be absent or null, blocks may be missing, floats may be written as
JSON integers, timestamps use `Z` or `+hh:mm` offsets with 0-9 fraction digits, and an unknown
extra field appears now and then. `trace_frames()` draws a `TRACE_JSON_SCHEMA` frame of 1..20
turns over 1..5 dialogues with unique `(dialogue_id, turn_index)` keys, in scrambled order;
`fpi.io.from_trace_records(frame)` turns it into a `TRACE_SCHEMA` frame.
"""

from __future__ import annotations

import io
import json
from datetime import UTC, datetime, timedelta

import polars as pl
from hypothesis import strategies as st

from fpi.schema import (
    DEVICE_TYPES,
    ER_STATUSES,
    FAILURE_POINTS,
    FEEDBACK_VALUES,
    RESULT_STATUSES,
    TRACE_JSON_SCHEMA,
    WAKE_MODES,
)

_TEXT = st.text(st.characters(exclude_categories=("Cs",)), max_size=24)
_ID = st.text(st.characters(exclude_categories=("Cs", "Cc")), min_size=1, max_size=16).filter(
    str.strip
)  # ids must not be blank
_NAME = st.sampled_from(["SmartHome", "Music", "Weather", "OpenIntent", "PlayIntent", "device"])
_PROBABILITY = st.floats(0.0, 1.0)
_DURATION = st.one_of(st.floats(0.0, 1e7), st.integers(0, 10_000_000))
_FIRST = datetime(2001, 1, 1, tzinfo=UTC)


def _optional(**fields: st.SearchStrategy) -> st.SearchStrategy[dict]:
    """A JSON object whose every field may be absent, null or a drawn value."""
    return st.fixed_dictionaries({}, optional={k: st.none() | v for k, v in fields.items()})


def _block(**fields: st.SearchStrategy) -> st.SearchStrategy[dict | None]:
    return st.none() | _optional(**fields)


@st.composite
def rfc3339_timestamps(draw: st.DrawFn) -> str:
    """An RFC 3339 timestamp: `Z` or a `+hh:mm`/`-hh:mm` offset and 0-9 fraction digits."""
    instant = _FIRST + timedelta(microseconds=draw(st.integers(0, 90 * 365 * 86_400 * 10**6)))
    offset_minutes = draw(st.sampled_from([0, 0, 60, -300, 330, 345, -720, 840]))
    local = instant + timedelta(minutes=offset_minutes)
    digits = draw(st.integers(0, 9))
    fraction = f"{local.microsecond:06d}000"[:digits]
    if digits > 6:
        fraction = fraction[:6] + "".join(draw(st.sampled_from("0123456789")) for _ in fraction[6:])
    if offset_minutes == 0 and draw(st.booleans()):
        zone = "Z"
    else:
        sign = "+" if offset_minutes >= 0 else "-"
        zone = f"{sign}{abs(offset_minutes) // 60:02d}:{abs(offset_minutes) % 60:02d}"
    return local.strftime("%Y-%m-%dT%H:%M:%S") + (f".{fraction}" if digits else "") + zone


def trace_records() -> st.SearchStrategy[dict]:
    """One valid `fpi-trace/1` record as a dict, in JSON form (ready for `json.dumps`)."""
    asr_hypothesis = _optional(text=_TEXT, confidence=_PROBABILITY)
    nlu_hypothesis = _optional(domain=_NAME, intent=_NAME, confidence=_PROBABILITY)
    slot = _optional(name=_NAME, value=_TEXT, confidence=_PROBABILITY)
    entity = _optional(
        slot=_NAME,
        mention=_TEXT,
        resolved_value=_TEXT,
        resolved_id=_ID,
        score=_PROBABILITY,
        candidates=st.integers(0, 1000),
        status=st.sampled_from(ER_STATUSES),
    )
    optional = {
        "turn_id": st.none() | _ID,
        "locale": st.none() | st.sampled_from(["en-US", "de-DE", "ja-JP", "pt-BR"]),
        "user_id": st.none() | _ID,
        "device": _block(id=_ID, type=st.sampled_from(DEVICE_TYPES), has_screen=st.booleans()),
        "wake": _block(
            mode=st.sampled_from(WAKE_MODES),
            confidence=_PROBABILITY,
            verifier_confidence=_PROBABILITY,
        ),
        "asr": _block(
            text=_TEXT,
            confidence=_PROBABILITY,
            nbest=st.lists(asr_hypothesis, max_size=3),
            audio_ms=_DURATION,
            snr_db=st.floats(-30.0, 80.0),
        ),
        "nlu": _block(
            domain=_NAME,
            intent=_NAME,
            confidence=_PROBABILITY,
            nbest=st.lists(nlu_hypothesis, max_size=3),
            slots=st.lists(slot, max_size=3),
        ),
        "er": _block(entities=st.lists(entity, max_size=3)),
        "result": _block(
            status=st.sampled_from(RESULT_STATUSES),
            handler=_NAME,
            action=_NAME,
            response_text=_TEXT,
            latency_ms=_DURATION,
        ),
        "tts": _block(text=_TEXT, duration_ms=_DURATION),
        "signals": _block(
            barge_in=st.booleans(),
            barge_in_ms=_DURATION,
            explicit_feedback=st.sampled_from(FEEDBACK_VALUES),
        ),
        "label": _block(failure_point=st.sampled_from(FAILURE_POINTS), source=_TEXT),
        "reference_labels": st.none()
        | st.dictionaries(_ID, st.none() | st.sampled_from(FAILURE_POINTS), max_size=3),
        "x_unknown_extra": st.integers(-(2**63), 2**63 - 1)
        | _TEXT
        | st.lists(st.booleans(), max_size=2),
    }
    required = {
        "dialogue_id": _ID,
        "turn_index": st.integers(0, 2**40),
        "timestamp": rfc3339_timestamps(),
    }
    return st.fixed_dictionaries(required, optional=optional)


def records_to_frame(records: list[dict]) -> pl.DataFrame:
    """Records as a `TRACE_JSON_SCHEMA` frame, as `fpi.io` reads them from a JSONL dump.

    `reference_labels` is the object's JSON text (`json.dumps`, not ASCII-escaped).
    """
    ndjson = "\n".join(json.dumps(r, ensure_ascii=False) for r in records).encode()
    labels = [r.get("reference_labels") for r in records]
    texts = [None if v is None else json.dumps(v, ensure_ascii=False) for v in labels]
    frame = pl.read_ndjson(io.BytesIO(ndjson), schema=TRACE_JSON_SCHEMA)
    return frame.with_columns(pl.Series("reference_labels", texts, dtype=pl.String))


@st.composite
def trace_frames(draw: st.DrawFn) -> pl.DataFrame:
    """A `TRACE_JSON_SCHEMA` frame of 1..20 turns over 1..5 dialogues, rows in any order.

    Keys `(dialogue_id, turn_index)` are unique; a dialogue's turn indices start anywhere and may
    have gaps. Timestamps are RFC 3339 text as drawn by `rfc3339_timestamps()`.
    """
    dialogue_ids = draw(st.lists(_ID, min_size=1, max_size=5, unique=True))
    turns = draw(st.lists(trace_records(), min_size=1, max_size=20))
    next_index = {d: draw(st.integers(0, 5)) for d in dialogue_ids}
    for turn in turns:
        dialogue = draw(st.sampled_from(dialogue_ids))
        turn["dialogue_id"] = dialogue
        turn["turn_index"] = next_index[dialogue]
        next_index[dialogue] += draw(st.integers(1, 3))
    order = draw(st.permutations(range(len(turns))))
    return records_to_frame([turns[i] for i in order])
