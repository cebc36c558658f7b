"""Home Assistant Assist pipeline runs as `fpi-trace/1` turns (one run, one turn).

Inputs: the JSON `assist_pipeline/pipeline_debug/get` returns (`{"events": [...]}`, one run
per file; the run id is its `pipeline_run_id` key, else the file name), and JSON Lines of
runs `{"pipeline_run_id", "pipeline_id"?, "events": [...]}` (what `fpi collect
homeassistant` writes). Home Assistant logs no confidence anywhere, no ASR n-best and, for
its default agent, no intent name: those stay null. A run is a turn of the conversation
named by `conversation_id` (else a one-turn dialogue of its own); turns are ordered by the
run's start, and a run after one that ended with `continue_conversation` is a `follow_up`.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass
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
    elapsed_ms,
    epoch_us,
    json_lines,
    read_document,
    rfc3339,
    system_reported_stage,
    text_or_none,
    unmapped,
    why,
)
from fpi.schema import Stage

SOURCE = "homeassistant"
SUFFIXES = (".json", ".jsonl")

RESULT_STATUS = {
    "action_done": "success",
    "query_answer": "success",
    "partial_action_done": "partial",
    "error": "error",
}
#: The stage an error code blames (`intent_output.response.data.code` or an `error` event).
ERROR_STAGES = {
    "no_intent_match": Stage.NLU,
    "no_valid_targets": Stage.ER,
    "failed_to_handle": Stage.RESULT,
    "unknown": Stage.RESULT,
    "stt-no-text-recognized": Stage.ASR,
    "stt-stream-failed": Stage.ASR,
    "intent-failed": Stage.RESULT,
}

#: Event fields the mapping below consumes; everything else goes to pass-through.
_TARGET = {"name": True, "id": True, "type": True}
MAPPED: dict[str, Any] = {
    "run-start": {"language": True, "conversation_id": True},
    "wake_word-end": {"wake_word_output": True},
    "stt-start": {"metadata": {"language": True}},
    "stt-vad-start": {"timestamp": True},
    "stt-vad-end": {"timestamp": True},
    "stt-end": {"stt_output": {"text": True}},
    "intent-start": {"engine": True, "conversation_id": True, "device_id": True},
    "intent-progress": {"chat_log_delta": {"tool_calls": [{"tool_name": True, "tool_args": True}]}},
    "intent-end": {
        "intent_output": {
            "conversation_id": True,
            "continue_conversation": True,
            "response": {
                "response_type": True,
                "speech": {"plain": {"speech": True}},
                "data": {"targets": [_TARGET], "success": [_TARGET], "failed": [_TARGET]},
            },
        }
    },
    "tts-start": {"tts_input": True},
    "run-end": True,
}


@dataclass
class Run:
    """One pipeline run read from a file: its record without dialogue position yet."""

    unit: str
    run_id: str
    conversation_id: str | None
    started: str  # RFC 3339
    record: dict
    continues: bool  # the run ended asking the user for more (`continue_conversation`)


def _events(value: Any) -> list[dict]:
    if not isinstance(value, dict):
        raise BrokenUnitError(f"expected a JSON object with events, found {type(value).__name__}")
    if "events" not in value and isinstance(value.get("result"), dict):
        value = value["result"]  # the websocket `result` message as saved from the browser
    events = value.get("events")
    if not isinstance(events, list):
        raise BrokenUnitError("no 'events' list")
    for i, event in enumerate(events):
        if not isinstance(event, dict) or not isinstance(event.get("type"), str):
            raise BrokenUnitError(f"events[{i}]: expected an object with a 'type'")
        if event.get("data") is not None and not isinstance(event["data"], dict):
            raise BrokenUnitError(f"events[{i}].data: expected an object")
    return events


def _first(events: list[dict], kind: str) -> dict | None:
    return next((e for e in events if e["type"] == kind), None)


def _data(event: dict | None) -> dict:
    return (event or {}).get("data") or {}


def _entities(response: dict, code: str | None) -> list[dict]:
    data = response.get("data") or {}
    if code == "no_valid_targets":
        return [{"status": "no_match"}]
    entities: dict[tuple, dict] = {}
    for group in ("targets", "success", "failed"):
        for target in data.get(group) or []:
            key = (target.get("type"), target.get("id"), target.get("name"))
            entities.setdefault(
                key,
                {
                    "slot": text_or_none(target.get("type")),
                    "resolved_value": text_or_none(target.get("name")),
                    "resolved_id": text_or_none(target.get("id")),
                    "status": "resolved",
                },
            )
    return list(entities.values())


def _tool_call(events: list[dict]) -> dict | None:
    for event in events:
        if event["type"] != "intent-progress":
            continue
        calls = (_data(event).get("chat_log_delta") or {}).get("tool_calls") or []
        if calls:
            return calls[0]
    return None


def convert_run(value: Any, unit: str, run_id: str | None) -> Run:
    """One pipeline run (`{"events": [...]}`) as a turn; see the module docstring."""
    events = _events(value)
    run_id = text_or_none(value.get("pipeline_run_id")) or run_id
    if not run_id:
        raise BrokenUnitError("no pipeline_run_id")
    run_start = _first(events, "run-start")
    stamps = [e.get("timestamp") for e in events if e.get("timestamp")]
    started_at = (
        (run_start or {}).get("timestamp") or value.get("timestamp") or next(iter(stamps), None)
    )
    if started_at is None:
        raise BrokenUnitError("no timestamp on run-start, the run or any event")
    started = rfc3339(started_at)

    wake_end, stt_start, stt_end = (
        _first(events, k) for k in ("wake_word-end", "stt-start", "stt-end")
    )
    intent_start, intent_end, tts_start = (
        _first(events, k) for k in ("intent-start", "intent-end", "tts-start")
    )
    error = _first(events, "error")
    error_code = text_or_none(_data(error).get("code"))
    output = _data(intent_end).get("intent_output") or {}
    response = output.get("response") or {}
    response_code = text_or_none((response.get("data") or {}).get("code"))
    code = response_code or error_code

    wake = None
    if (_data(wake_end).get("wake_word_output") or {}) != {}:
        wake = {"mode": "wake_word"}
    asr = None
    if stt_end is not None or error_code == "stt-no-text-recognized":
        vad = [_data(_first(events, k)).get("timestamp") for k in ("stt-vad-start", "stt-vad-end")]
        audio_ms = float(vad[1] - vad[0]) if all(isinstance(v, int | float) for v in vad) else None
        text = text_or_none((_data(stt_end).get("stt_output") or {}).get("text"))
        asr = compact({"text": "" if text is None else text, "audio_ms": audio_ms})
    tool = _tool_call(events)
    nlu = None
    if tool is not None:
        args = tool.get("tool_args") if isinstance(tool.get("tool_args"), dict) else {}
        nlu = {
            "intent": text_or_none(tool.get("tool_name")),
            "slots": [{"name": str(k), "value": text_or_none(v)} for k, v in args.items()],
        }
    elif code == "no_intent_match":
        nlu = {"intent": None, "slots": []}
    entities = _entities(response, code)
    result = None
    if intent_end is not None or (error is not None and intent_start is not None):
        status = RESULT_STATUS.get(response.get("response_type"))
        result = compact(
            {
                "status": "error" if status is None and error is not None else status,
                "handler": text_or_none(_data(intent_start).get("engine")),
                "action": nlu["intent"] if nlu else None,
                "response_text": text_or_none(
                    ((response.get("speech") or {}).get("plain") or {}).get("speech")
                ),
                "latency_ms": elapsed_ms(
                    (intent_start or {}).get("timestamp"), (intent_end or {}).get("timestamp")
                ),
            }
        )
    if code in ERROR_STAGES:
        reported: str | None = ERROR_STAGES[code].value
    elif result is not None and result.get("status") in ("success", "partial") and error is None:
        reported = Stage.CORRECT.value
    else:
        reported = None

    conversation_id = next(
        (
            c
            for c in (
                _data(run_start).get("conversation_id"),
                _data(intent_start).get("conversation_id"),
                output.get("conversation_id"),
            )
            if isinstance(c, str) and c
        ),
        None,
    )
    language = text_or_none(_data(run_start).get("language")) or text_or_none(
        (_data(stt_start).get("metadata") or {}).get("language")
    )
    device_id = text_or_none(_data(intent_start).get("device_id"))
    record = {
        "turn_id": run_id,
        "timestamp": started,
        "locale": language,
        "device": {"id": device_id} if device_id else None,
        "wake": wake,
        "asr": asr,
        "nlu": nlu,
        "er": {"entities": entities} if entities else None,
        "result": result,
        "tts": compact({"text": text_or_none(_data(tts_start).get("tts_input"))}),
        "reference_labels": system_reported_stage(reported),
        PASSTHROUGH: _passthrough(value, events, code),
    }
    return Run(
        unit=unit,
        run_id=run_id,
        conversation_id=conversation_id,
        started=started,
        record={k: v for k, v in record.items() if v is not None},
        continues=output.get("continue_conversation") is True,
    )


def _passthrough(value: dict, events: list[dict], code: str | None) -> dict:
    """The source system, the error code and message, and every event field not mapped."""
    rest = []
    for event in events:
        data = unmapped(event.get("data"), MAPPED.get(event["type"], {}))
        extra = {k: v for k, v in event.items() if k not in ("type", "data", "timestamp")}
        if data is not None or extra or event["type"] not in MAPPED:
            rest.append(
                {"type": event["type"], "timestamp": event.get("timestamp"), "data": data, **extra}
            )
    passthrough: dict[str, Any] = {"source": SOURCE}
    if value.get("pipeline_id") is not None:
        passthrough["pipeline_id"] = value["pipeline_id"]
    if code is not None:
        passthrough["error_code"] = code
    others = {
        k: v
        for k, v in value.items()
        if k not in ("events", "pipeline_run_id", "pipeline_id", "timestamp")
    }
    if others:
        passthrough["run"] = others
    if rest:
        passthrough["events"] = rest
    return passthrough


# ---- files to units -------------------------------------------------------------------


def _read_runs(path: Path) -> Iterator[Run | Skipped]:
    if base_suffix(path) == ".jsonl":
        for line, value in json_lines(path):
            unit = f"{path}:{line}"
            if isinstance(value, BrokenUnitError):
                yield Skipped(unit, str(value))
                continue
            try:
                yield convert_run(value, unit, None)
            except (*MALFORMED, BrokenUnitError) as exc:
                yield Skipped(unit, why(exc))
        return
    unit = str(path)
    try:
        yield convert_run(read_document(path), unit, path.name.split(".")[0])
    except (*MALFORMED, BrokenUnitError) as exc:
        yield Skipped(unit, why(exc))


def dialogue_records(runs: list[Run], dialogue_id: str) -> list[tuple[str, dict]]:
    """(unit, record) for the runs of one conversation, in the given (start) order."""
    out = []
    previous_continues = False
    for index, run in enumerate(runs):
        record = {"dialogue_id": dialogue_id, "turn_index": index, **run.record}
        if previous_continues:
            record["wake"] = {"mode": "follow_up"}
        previous_continues = run.continues
        out.append((run.unit, record))
    return out


def homeassistant_units(files: Sequence[Path]) -> Iterator[Unit]:
    """Every run in the files; the runs of a conversation are gathered across files (on disk)
    and ordered by their start."""
    seen: set[str] = set()
    with Groups() as conversations:
        for path in files:
            for run in _read_runs(path):
                if isinstance(run, Skipped):
                    yield run
                elif run.run_id in seen:
                    yield Skipped(run.unit, f"run {run.run_id!r} appears twice (first one kept)")
                else:
                    seen.add(run.run_id)
                    key = run.conversation_id or run.run_id
                    conversations.add(key, epoch_us(run.started), asdict(run))
        for dialogue_id, runs in conversations:
            for unit, record in dialogue_records([Run(**r) for r in runs], dialogue_id):
                yield Pending(unit, lambda record=record: [record])


SOURCE_SPEC = Source(SOURCE, "run", SUFFIXES, homeassistant_units)
#: Import homeassistant logs: `import_homeassistant(paths, out, *, rejects=None, progress=None)`.
import_homeassistant = SOURCE_SPEC.import_paths
