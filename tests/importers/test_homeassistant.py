"""Home Assistant: every mapping rule on the real-file fixtures, broken runs, `fpi import`."""

from __future__ import annotations

import copy
import json
from pathlib import Path

import pytest

from fpi.importers.homeassistant import convert_run, import_homeassistant
from tests.importers.helpers import FIXTURES, invoke, read_records

HA = FIXTURES / "homeassistant"
WAKE = HA / "01HX0WAKEWORDNOMATCH.json"


def runs() -> list[dict]:
    return [json.loads(line) for line in (HA / "runs.jsonl").read_text().splitlines()]


def imported(tmp_path: Path, *paths: Path) -> dict[str, dict]:
    out = tmp_path / "ha.jsonl"
    summary = import_homeassistant(list(paths) or [HA], out)
    assert summary.read == summary.imported + summary.skipped
    return {r["turn_id"]: r for r in read_records(out)}


def test_every_fixture_run_is_imported(tmp_path):
    out = tmp_path / "ha.jsonl"
    summary = import_homeassistant([HA], out)
    assert (summary.read, summary.imported, summary.skipped, summary.turns) == (6, 6, 0, 6)
    assert summary.system_reported == {"correct": 3, "nlu": 1, "result": 1}


def test_debug_get_file_run_id_is_the_file_name_and_stages_map(tmp_path):
    turn = imported(tmp_path, WAKE)["01HX0WAKEWORDNOMATCH"]
    assert turn["dialogue_id"] == "01HX0WAKEWORDNOMATCH"  # no conversation id: its own dialogue
    assert turn["timestamp"] == "2024-05-02T18:00:00.100Z"
    assert turn["locale"] == "en"
    assert turn["wake"] == {"mode": "wake_word"}  # no score: confidence stays null
    assert turn["asr"] == {"text": "test transcript"}
    assert turn["nlu"] == {"intent": None, "slots": []}
    assert turn["result"] == {
        "status": "error",
        "handler": "conversation.home_assistant",
        "response_text": "Sorry, I couldn't understand that",
        "latency_ms": 240.0,
    }
    assert turn["tts"] == {"text": "Sorry, I couldn't understand that"}
    assert turn["reference_labels"] == {"system_reported": "nlu"}
    passthrough = turn["passthrough"]
    assert passthrough["error_code"] == "no_intent_match"
    kinds = [e["type"] for e in passthrough["events"]]
    assert "tts-end" in kinds and "wake_word-start" in kinds  # unmapped fields are kept
    start = next(e for e in passthrough["events"] if e["type"] == "intent-start")
    assert start["data"] == {"intent_input": "test transcript", "language": "en"}


def test_pipeline_run_id_key_wins_over_the_file_name(tmp_path):
    turns = imported(tmp_path, HA / "wake_word_aborted.json")
    turn = turns["01HX0WAKEABORTED"]
    assert "wake" not in turn and "asr" not in turn and "result" not in turn
    assert "reference_labels" not in turn  # an aborted wake word blames no stage
    assert turn["passthrough"]["error_code"] == "wake_word_detection_aborted"


def test_continue_conversation_makes_the_next_run_a_follow_up(tmp_path):
    turns = imported(tmp_path, HA / "runs.jsonl")
    first, second = turns["01HX1LLMCONTINUE"], turns["01HX1FOLLOWUP"]
    assert first["dialogue_id"] == second["dialogue_id"] == "mock-ulid"
    assert (first["turn_index"], second["turn_index"]) == (0, 1)  # by run-start, not file order
    assert "wake" not in first
    assert second["wake"] == {"mode": "follow_up"}


def test_success_targets_are_resolved_entities(tmp_path):
    turn = imported(tmp_path, HA / "runs.jsonl")["01HX2TURNEDON"]
    assert turn["device"] == {"id": "satellite-kitchen"}
    assert turn["er"] == {
        "entities": [
            {
                "slot": "entity",
                "resolved_value": "kitchen",
                "resolved_id": "light.kitchen",
                "status": "resolved",
            }
        ]
    }
    assert turn["result"]["status"] == "success"
    assert turn["reference_labels"] == {"system_reported": "correct"}
    assert "asr" not in turn and "wake" not in turn  # a typed request has no speech stages


def test_failed_to_handle_blames_the_result(tmp_path):
    turn = imported(tmp_path, HA / "runs.jsonl")["01HX2HANDLEFAIL"]
    assert turn["result"]["status"] == "error"
    assert turn["reference_labels"] == {"system_reported": "result"}


def _with_response(response: dict) -> dict:
    run = copy.deepcopy(runs()[2])
    run["events"][2]["data"]["intent_output"]["response"].update(response)
    return run


@pytest.mark.parametrize(
    ("response", "status", "reported", "entities"),
    [
        (
            {"response_type": "error", "data": {"code": "no_valid_targets"}},
            "error",
            "er",
            [{"status": "no_match"}],
        ),
        ({"response_type": "partial_action_done"}, "partial", "correct", 1),
        ({"response_type": "query_answer"}, "success", "correct", 1),
        ({"response_type": "error", "data": {"code": "unknown"}}, "error", "result", None),
    ],
)
def test_response_types_and_error_codes(response, status, reported, entities):
    record = convert_run(_with_response(response), "u", None).record
    assert record["result"]["status"] == status
    assert record["reference_labels"] == {"system_reported": reported}
    if entities is None:
        assert "er" not in record
    elif isinstance(entities, int):
        assert len(record["er"]["entities"]) == entities
    else:
        assert record["er"]["entities"] == entities


def test_stt_no_text_recognized_is_empty_asr_text_and_blames_asr():
    run = json.loads(WAKE.read_text())
    events = [
        *run["events"][:4],
        {
            "type": "error",
            "timestamp": "2024-05-02T18:00:05+00:00",
            "data": {"code": "stt-no-text-recognized", "message": "No text recognized"},
        },
        {"type": "run-end", "timestamp": "2024-05-02T18:00:05+00:00", "data": None},
    ]
    record = convert_run({"events": events}, "u", "r1").record
    assert record["asr"] == {"text": ""}
    assert record["reference_labels"] == {"system_reported": "asr"}
    assert "result" not in record


def test_vad_gives_the_audio_duration_and_tool_calls_the_intent():
    run = copy.deepcopy(runs()[1])
    run["events"][1:1] = [
        {"type": "stt-vad-start", "timestamp": None, "data": {"timestamp": 400}},
        {"type": "stt-vad-end", "timestamp": None, "data": {"timestamp": 2150}},
        {"type": "stt-end", "timestamp": None, "data": {"stt_output": {"text": "set a timer"}}},
        {
            "type": "intent-progress",
            "timestamp": None,
            "data": {
                "chat_log_delta": {
                    "tool_calls": [
                        {"id": "c1", "tool_name": "HassStartTimer", "tool_args": {"minutes": 5}}
                    ]
                }
            },
        },
    ]
    record = convert_run(run, "u", None).record
    assert record["asr"] == {"text": "set a timer", "audio_ms": 1750.0}
    assert record["nlu"] == {
        "intent": "HassStartTimer",
        "slots": [{"name": "minutes", "value": "5"}],
    }
    assert record["result"]["action"] == "HassStartTimer"


def test_broken_runs_are_skipped_with_their_reason(tmp_path):
    good = runs()
    bad_time = copy.deepcopy(good[2])
    bad_time["pipeline_run_id"] = "naive"
    for event in bad_time["events"]:
        event["timestamp"] = "2024-05-03T10:00:00"
    lines = [
        json.dumps(good[0]),
        "{not json",
        json.dumps({"pipeline_run_id": "x", "events": "none"}),
        json.dumps(bad_time),
        json.dumps(good[0]),  # the same run twice
        json.dumps([1, 2]),
    ]
    path = tmp_path / "runs.jsonl"
    path.write_text("\n".join(lines) + "\n")
    rejects = tmp_path / "skipped.jsonl"
    summary = import_homeassistant([path], tmp_path / "out.jsonl", rejects=rejects)
    assert (summary.read, summary.imported, summary.skipped) == (6, 1, 5)
    reasons = dict(summary.reasons)
    assert reasons[f"{path}:2"].startswith("bad JSON")
    assert reasons[f"{path}:3"] == "no 'events' list"
    assert reasons[f"{path}:4"] == "timestamp: no time zone ('2024-05-03T10:00:00')"
    assert "appears twice" in reasons[f"{path}:5"]
    assert "expected a JSON object" in reasons[f"{path}:6"]
    assert len(rejects.read_text().splitlines()) == 5


def test_cli_import_homeassistant(tmp_path):
    out = tmp_path / "ha.parquet"
    code, output = invoke("import", "homeassistant", str(HA), "--out", str(out))
    assert code == 0, output
    assert "runs read 6 = 6 imported + 0 skipped; turns written 6" in output
    assert "failures the system reported" in output


def test_compressed_runs_and_the_websocket_result_message(tmp_path):
    import gzip

    import zstandard

    raw = (HA / "runs.jsonl").read_bytes()
    (tmp_path / "runs.jsonl.gz").write_bytes(gzip.compress(raw))
    wrapped = {"id": 7, "type": "result", "success": True, "result": json.loads(WAKE.read_text())}
    (tmp_path / "01HXWRAPPED.json.zst").write_bytes(
        zstandard.ZstdCompressor().compress(json.dumps(wrapped).encode())
    )
    found = imported(tmp_path, tmp_path)
    assert len(found) == 5
    assert found["01HXWRAPPED"]["asr"] == {"text": "test transcript"}
