"""Rasa conversations as `fpi-trace/1` turns: a `user` event and what follows, up to the next.

Inputs: a tracker (`{"sender_id", "events": [...]}`, as `GET /conversations/{id}/tracker`
returns), a JSON list of trackers, the file event broker's JSON Lines (`rasa_event.log`, one
event a line with its `sender_id`), and a SQL tracker store in SQLite (table `events`, the
event JSON in `data`). One conversation (a sender) is one unit. Text channels have no `asr`
block; the NLU `FallbackClassifier`'s `nlu_fallback` stays the intent (the real ranking
follows it), core fallback actions make the result a `clarification`,
`action_execution_rejected` an `error`; a `rewind` (the fallback undoing the user message)
is kept in pass-through.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterator, Sequence
from functools import partial
from pathlib import Path
from typing import Any

from fpi.importers.base import (
    MALFORMED,
    PASSTHROUGH,
    BrokenUnitError,
    Groups,
    Pending,
    Skipped,
    Source,
    Unit,
    base_suffix,
    compact,
    json_lines,
    number,
    read_document,
    rfc3339,
    system_reported_stage,
    text_or_none,
    unmapped,
    why,
)
from fpi.schema import Stage

SOURCE = "rasa"
SUFFIXES = (".json", ".jsonl", ".log", ".db", ".sqlite", ".sqlite3")
SQLITE_SUFFIXES = (".db", ".sqlite", ".sqlite3")

NLU_FALLBACK = "nlu_fallback"
CORE_FALLBACKS = frozenset(
    {
        "action_default_fallback",
        "action_two_stage_fallback",
        "action_default_ask_rephrase",
        "action_default_ask_affirmation",
    }
)
LISTEN = "action_listen"
#: Input channels that carry speech (their text is an ASR transcript).
VOICE_CHANNELS = frozenset({"twilio_voice", "audiocodes", "jambonz", "vier_cvg", "genesys"})

_ENTITY = {"entity": True, "value": True, "start": True, "end": True, "confidence_entity": True}
MAPPED: dict[str, Any] = {
    "user": {
        "event": True,
        "timestamp": True,
        "text": True,
        "input_channel": True,
        "parse_data": {
            "text": True,
            "intent": {"name": True, "confidence": True},
            "intent_ranking": [{"name": True, "confidence": True}],
            "entities": [_ENTITY],
        },
    },
    "bot": {"event": True, "text": True},
    "action": {"event": True, "policy": True},  # the name stays: it says which action
}


def _events(tracker: Any) -> tuple[str, list[dict]]:
    if not isinstance(tracker, dict):
        raise BrokenUnitError(f"expected a tracker object, found {type(tracker).__name__}")
    sender = tracker.get("sender_id")
    if not isinstance(sender, str) or not sender.strip():
        raise BrokenUnitError("no sender_id")
    events = tracker.get("events")
    if not isinstance(events, list):
        raise BrokenUnitError("no 'events' list")
    return sender, events


def _check_event(event: Any, i: int) -> dict:
    if not isinstance(event, dict) or not isinstance(event.get("event"), str):
        raise BrokenUnitError(f"events[{i}]: expected an object with an 'event' type")
    return event


def _nlu(user: dict) -> tuple[dict | None, list[dict]]:
    """The nlu block and the raw entities of a user event."""
    parse = user.get("parse_data") or {}
    intent = parse.get("intent") or {}
    name = text_or_none(intent.get("name"))
    ranking = [r for r in parse.get("intent_ranking") or [] if isinstance(r, dict)]
    if name == NLU_FALLBACK and ranking and ranking[0].get("name") == NLU_FALLBACK:
        ranking = ranking[1:]  # the classifier prepends itself: the rest is the real n-best
    text = user.get("text") if isinstance(user.get("text"), str) else ""
    entities = [e for e in parse.get("entities") or [] if isinstance(e, dict)]
    slots = []
    for entity in entities:
        start, end = entity.get("start"), entity.get("end")
        spans = isinstance(start, int) and isinstance(end, int) and 0 <= start <= end <= len(text)
        slots.append(
            {
                "name": text_or_none(entity.get("entity")),
                "value": text[start:end] if spans else text_or_none(entity.get("value")),
                "confidence": number(entity.get("confidence_entity")),
            }
        )
    if not intent and not ranking and not entities:
        return None, entities
    nbest = [
        {
            "domain": None,
            "intent": text_or_none(r.get("name")),
            "confidence": number(r.get("confidence")),
        }
        for r in ranking
    ]
    block = {
        "intent": name,
        "confidence": number(intent.get("confidence")),
        "nbest": nbest,
        "slots": slots,
    }
    return block, entities


def _er(user: dict, entities: list[dict], following: list[dict]) -> dict | None:
    if not entities:
        return None
    text = user.get("text") if isinstance(user.get("text"), str) else ""
    emptied = {e.get("name") for e in following if e["event"] == "slot" and e.get("value") is None}
    out = []
    for entity in entities:
        start, end = entity.get("start"), entity.get("end")
        spans = isinstance(start, int) and isinstance(end, int) and 0 <= start <= end <= len(text)
        slot = text_or_none(entity.get("entity"))
        out.append(
            {
                "slot": slot,
                "mention": text[start:end] if spans else None,
                "resolved_value": text_or_none(entity.get("value")),
                "status": "no_match" if slot in emptied else "resolved",
            }
        )
    return {"entities": out}


def _turn(user: dict, following: list[dict]) -> tuple[dict, str | None]:
    """A turn's stage blocks (no ids yet) and the stage Rasa itself blamed."""
    nlu, entities = _nlu(user)
    actions = [e for e in following if e["event"] == "action" and e.get("name") != LISTEN]
    rejected = [e for e in following if e["event"] == "action_execution_rejected"]
    bots = [e for e in following if e["event"] == "bot" and isinstance(e.get("text"), str)]
    first = actions[0] if actions else rejected[0] if rejected else None
    names = {a.get("name") for a in actions}
    if rejected:
        status, reported = "error", Stage.RESULT.value
    elif names & CORE_FALLBACKS:
        status, reported = "clarification", Stage.RESULT.value
    elif actions or bots:
        status, reported = "success", Stage.CORRECT.value
    else:
        status, reported = None, None
    if nlu is not None and nlu["intent"] == NLU_FALLBACK:
        reported = Stage.NLU.value
    result = None
    if status is not None:
        latency = None
        if bots and isinstance(bots[-1].get("timestamp"), int | float):
            gap = (bots[-1]["timestamp"] - user["timestamp"]) * 1000
            latency = round(gap, 3) if gap >= 0 else None  # clocks out of order: unknown
        result = compact(
            {
                "status": status,
                "handler": text_or_none(first.get("policy")) if first else None,
                "action": text_or_none(first.get("name")) if first else None,
                "response_text": " ".join(b["text"] for b in bots) or None,
                "latency_ms": latency,
            }
        )
    channel = user.get("input_channel")
    asr = {"text": user.get("text") or ""} if channel in VOICE_CHANNELS else None
    blocks = {"asr": asr, "nlu": nlu, "er": _er(user, entities, following), "result": result}
    return blocks, reported


def convert_conversation(sender: str, events: list[Any]) -> list[dict]:
    """The turns of one conversation (see the module docstring)."""
    events = [_check_event(e, i) for i, e in enumerate(events)]
    starts = [i for i, e in enumerate(events) if e["event"] == "user"]
    records = []
    for index, start in enumerate(starts):
        user = events[start]
        stop = starts[index + 1] if index + 1 < len(starts) else len(events)
        following = events[start + 1 : stop]
        blocks, reported = _turn(user, following)
        kept = []
        for event in following:
            left = unmapped(event, MAPPED.get(event["event"], {}))
            if left is not None:
                kept.append({"event": event["event"], **left})
        passthrough: dict[str, Any] = {"source": SOURCE}
        user_rest = unmapped(user, MAPPED["user"])
        if user_rest:
            passthrough["user"] = user_rest
        if kept:
            passthrough["events"] = kept
        if any(e["event"] == "rewind" for e in following):
            passthrough["rewound"] = True
        if index == 0 and start > 0:
            passthrough["before_first_user"] = events[:start]
        record = {
            "dialogue_id": sender,
            "turn_index": index,
            "timestamp": rfc3339(user.get("timestamp")),
            **{k: v for k, v in blocks.items() if v is not None},
            "reference_labels": system_reported_stage(reported),
            PASSTHROUGH: passthrough,
        }
        records.append({k: v for k, v in record.items() if v is not None})
    return records


# ---- inputs to units --------------------------------------------------------------------


def _tracker_units(path: Path) -> Iterator[Unit]:
    try:
        document = read_document(path)
    except BrokenUnitError as exc:
        yield Skipped(str(path), str(exc))
        return
    trackers = document if isinstance(document, list) else [document]
    for i, tracker in enumerate(trackers):
        unit = f"{path}[{i}]" if isinstance(document, list) else str(path)
        try:
            sender, events = _events(tracker)
        except BrokenUnitError as exc:
            yield Skipped(unit, str(exc))
            continue
        yield Pending(f"{unit} ({sender})", partial(convert_conversation, sender, events))


def _event_log_units(path: Path) -> Iterator[Unit]:
    """The file broker's events, gathered per sender (on disk) in file order."""
    with Groups() as senders:
        for line, value in json_lines(path):
            unit = f"{path}:{line}"
            if isinstance(value, BrokenUnitError):
                yield Skipped(unit, str(value))
            elif not isinstance(value, dict) or not isinstance(value.get("sender_id"), str):
                yield Skipped(unit, "expected an event object with a sender_id")
            else:
                senders.add(value["sender_id"], 0, value)
        for sender, events in senders:
            yield Pending(f"{path} ({sender})", partial(convert_conversation, sender, events))


def _sqlite_units(path: Path) -> Iterator[Unit]:
    """Conversations of a SQL tracker store, streamed sender by sender (rows in id order)."""
    try:
        connection = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    except sqlite3.Error as exc:
        yield Skipped(str(path), f"not a readable SQLite database ({exc})")
        return
    try:
        rows = connection.execute("SELECT id, sender_id, data FROM events ORDER BY sender_id, id")
        sender, events = None, []
        for row_id, row_sender, data in rows:
            if row_sender != sender:
                if sender is not None:
                    yield _sqlite_unit(path, sender, events)
                sender, events = row_sender, []
            events.append((row_id, data))
        if sender is not None:
            yield _sqlite_unit(path, sender, events)
    except sqlite3.Error as exc:
        yield Skipped(str(path), f"cannot read the events table ({exc})")
    finally:
        connection.close()


def _sqlite_unit(path: Path, sender: Any, rows: list[tuple[int, Any]]) -> Unit:
    unit = f"{path} ({sender})"
    if not isinstance(sender, str) or not sender.strip():
        return Skipped(unit, "no sender_id")

    def convert() -> list[dict]:
        events = []
        for row_id, data in rows:
            try:
                events.append(json.loads(data))
            except (*MALFORMED,) as exc:
                raise BrokenUnitError(f"events row {row_id}: {why(exc)}") from None
        return convert_conversation(sender, events)

    return Pending(unit, convert)


def rasa_units(files: Sequence[Path]) -> Iterator[Unit]:
    for path in files:
        suffix = base_suffix(path)
        if suffix in SQLITE_SUFFIXES:
            yield from _sqlite_units(path)
        elif suffix in (".jsonl", ".log"):
            yield from _event_log_units(path)
        else:
            yield from _tracker_units(path)


SOURCE_SPEC = Source(SOURCE, "conversation", SUFFIXES, rasa_units)
#: Import rasa logs: `import_rasa(paths, out, *, rejects=None, progress=None)`.
import_rasa = SOURCE_SPEC.import_paths
