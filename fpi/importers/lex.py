"""Amazon Lex V2 conversation text logs as `fpi-trace/1` turns (one log entry, one turn).

Input: the entries Lex writes to CloudWatch Logs, one JSON object per utterance, as JSON
Lines or a JSON array. One entry is one unit; the entries of a `sessionId` form a dialogue,
ordered by `timestamp`. Only `inputMode` Speech has an `asr` block (`inputTranscript`,
`transcriptions`); `nluConfidence` may be text ("0.93") or a number and is null where Lex
gives none (FallbackIntent); slots give `nlu.slots` and `er.entities`;
`sessionState.intent.state` and `dialogAction` give the result. `missedUtterance` is Lex
saying NLU failed.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
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
    epoch_us,
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

SOURCE = "lex"
SUFFIXES = (".json", ".jsonl", ".log")
FALLBACK_INTENT = "FallbackIntent"

SUCCESS_STATES = frozenset({"Fulfilled", "ReadyForFulfillment", "FulfillmentInProgress"})
CLARIFYING_ACTIONS = frozenset({"ElicitSlot", "ConfirmIntent", "ElicitIntent"})

_VALUE = {"originalValue": True, "interpretedValue": True, "resolvedValues": True}
_SLOT = {"value": _VALUE, "values": [{"value": _VALUE}]}
MAPPED: dict[str, Any] = {
    "timestamp": True,
    "sessionId": True,
    "requestId": True,
    "inputMode": True,
    "inputTranscript": True,
    "missedUtterance": True,
    "bot": {"localeId": True, "name": True},
    "messages": [{"content": True}],
    "interpretations": [{"nluConfidence": True, "intent": {"name": True, "slots": True}}],
    "sessionState": {
        "intent": {"name": True, "state": True, "slots": True},
        "dialogAction": {"type": True},
    },
}
#: What a Speech-mode entry maps besides: its transcriptions become the ASR block (Text-mode
#: entries may carry them too, e.g. from Amazon Connect chats; they stay in pass-through there).
MAPPED_SPEECH: dict[str, Any] = {
    **MAPPED,
    "transcriptions": [{"transcription": True, "transcriptionConfidence": True}],
}


@dataclass
class Entry:
    """One log entry read from a file, before its dialogue position is known."""

    unit: str
    session: str
    started: str
    value: dict


def _slot_values(slot: Any) -> list[dict]:
    """The filled values of a slot (a List-shaped slot has several)."""
    if not isinstance(slot, dict):
        return []
    if isinstance(slot.get("values"), list) and slot["values"]:
        return [v["value"] for v in slot["values"] if isinstance(v, dict) and v.get("value")]
    return [slot["value"]] if isinstance(slot.get("value"), dict) else []


def _slots(entry: dict) -> list[tuple[str, dict]]:
    top = (entry.get("interpretations") or [{}])[0] or {}
    slots = (top.get("intent") or {}).get("slots")
    if not isinstance(slots, dict) or not slots:
        slots = ((entry.get("sessionState") or {}).get("intent") or {}).get("slots") or {}
    return [(str(name), value) for name, slot in slots.items() for value in _slot_values(slot)]


def _entity(name: str, value: dict) -> dict:
    resolved = value.get("resolvedValues")
    interpreted = text_or_none(value.get("interpretedValue"))
    if isinstance(resolved, list):
        candidates: int | None = len(resolved)
        if not resolved and interpreted is None:
            status = "no_match"
        else:
            status = "ambiguous" if len(resolved) > 1 else "resolved"
        first = text_or_none(resolved[0]) if resolved else None
    else:
        candidates, first = None, None
        status = "resolved" if interpreted is not None else "no_match"
    return {
        "slot": name,
        "mention": text_or_none(value.get("originalValue")),
        "resolved_value": interpreted if interpreted is not None else first,
        "candidates": candidates,
        "status": status,
    }


def _result(entry: dict) -> tuple[dict | None, str | None]:
    state_block = entry.get("sessionState") or {}
    intent = state_block.get("intent") or {}
    action = text_or_none((state_block.get("dialogAction") or {}).get("type"))
    state = intent.get("state")
    if state == "Failed":
        status: str | None = "error"
    elif state in SUCCESS_STATES:
        status = "success"
    elif action in CLARIFYING_ACTIONS:
        status = "clarification"
    else:
        status = None
    messages = [m.get("content") for m in entry.get("messages") or [] if isinstance(m, dict)]
    text = " ".join(m for m in messages if isinstance(m, str)) or None
    result = compact(
        {
            "status": status,
            "handler": text_or_none((entry.get("bot") or {}).get("name")),
            "action": action,
            "response_text": text,
        }
    )
    return result, state


def _locale(locale_id: Any) -> str | None:
    """Lex's `en_US` as the BCP 47 tag `en-US`."""
    text = text_or_none(locale_id)
    return text.replace("_", "-") if text else None


def convert_entry(entry: dict, dialogue_id: str, turn_index: int) -> dict:
    """One Lex log entry as a turn (see the module docstring)."""
    interpretations = [i for i in entry.get("interpretations") or [] if isinstance(i, dict)]
    top = interpretations[0] if interpretations else {}
    intent_name = text_or_none((top.get("intent") or {}).get("name"))
    slots = _slots(entry)
    asr = None
    speech = entry.get("inputMode") == "Speech"
    if speech:
        transcriptions = [t for t in entry.get("transcriptions") or [] if isinstance(t, dict)]
        nbest = [
            {
                "text": text_or_none(t.get("transcription")),
                "confidence": number(t.get("transcriptionConfidence")),
            }
            for t in transcriptions
        ]
        asr = {
            "text": text_or_none(entry.get("inputTranscript")) or "",
            "confidence": nbest[0]["confidence"] if nbest else None,
            "nbest": nbest,
        }
    nlu = None
    if interpretations:
        nlu = {
            "intent": intent_name,
            "confidence": number(top.get("nluConfidence")),
            "nbest": [
                {
                    "intent": text_or_none((i.get("intent") or {}).get("name")),
                    "confidence": number(i.get("nluConfidence")),
                }
                for i in interpretations
            ],
            "slots": [
                {"name": name, "value": text_or_none(value.get("originalValue"))}
                for name, value in slots
            ],
        }
    entities = [_entity(name, value) for name, value in slots]
    result, state = _result(entry)
    if entry.get("missedUtterance") is True or intent_name == FALLBACK_INTENT:
        reported: str | None = Stage.NLU.value
    elif state == "Failed":
        reported = Stage.RESULT.value
    elif result is not None and result.get("status") in ("success", "clarification"):
        reported = Stage.CORRECT.value
    else:
        reported = None
    passthrough = {"source": SOURCE, **(unmapped(entry, MAPPED_SPEECH if speech else MAPPED) or {})}
    record = {
        "dialogue_id": dialogue_id,
        "turn_index": turn_index,
        "timestamp": rfc3339(entry.get("timestamp")),
        "turn_id": text_or_none(entry.get("requestId")),
        "locale": _locale((entry.get("bot") or {}).get("localeId")),
        "asr": asr,
        "nlu": nlu,
        "er": {"entities": entities} if entities else None,
        "result": result,
        "reference_labels": system_reported_stage(reported),
        PASSTHROUGH: passthrough,
    }
    return {k: v for k, v in record.items() if v is not None}


# ---- files to units -----------------------------------------------------------------------


def _entry(value: Any, unit: str) -> Entry:
    if not isinstance(value, dict):
        raise BrokenUnitError(f"expected a log entry object, found {type(value).__name__}")
    session = value.get("sessionId")
    if not isinstance(session, str) or not session.strip():
        raise BrokenUnitError("no sessionId")
    return Entry(unit, session, rfc3339(value.get("timestamp")), value)


def _file_entries(path: Path) -> Iterator[Entry | Skipped]:
    if base_suffix(path) == ".json":
        try:
            document = read_document(path)
        except BrokenUnitError as exc:
            yield Skipped(str(path), str(exc))
            return
        values = document if isinstance(document, list) else [document]
        located = [(f"{path}[{i}]", v) for i, v in enumerate(values)]
    else:
        located = []
        for line, value in json_lines(path):
            if isinstance(value, BrokenUnitError):
                yield Skipped(f"{path}:{line}", str(value))
            else:
                located.append((f"{path}:{line}", value))
    for unit, value in located:
        try:
            yield _entry(value, unit)
        except (*MALFORMED, BrokenUnitError) as exc:
            yield Skipped(unit, why(exc))


def lex_units(files: Sequence[Path]) -> Iterator[Unit]:
    """Every entry of the files; a session's entries are gathered across files (on disk),
    then ordered by time."""
    with Groups() as sessions:
        for path in files:
            for entry in _file_entries(path):
                if isinstance(entry, Skipped):
                    yield entry
                else:
                    sessions.add(entry.session, epoch_us(entry.started), [entry.unit, entry.value])
        for session, entries in sessions:
            for index, (unit, value) in enumerate(entries):
                yield Pending(unit, partial(_as_list, value, session, index))


def _as_list(entry: dict, session: str, index: int) -> list[dict]:
    return [convert_entry(entry, session, index)]


SOURCE_SPEC = Source(SOURCE, "utterance", SUFFIXES, lex_units)
#: Import lex logs: `import_lex(paths, out, *, rejects=None, progress=None)`.
import_lex = SOURCE_SPEC.import_paths
