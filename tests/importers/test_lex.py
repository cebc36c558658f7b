"""Amazon Lex V2 conversation logs."""

from __future__ import annotations

import json

from fpi.importers.lex import import_lex
from tests.importers.helpers import FIXTURES, invoke, read_records

LEX = FIXTURES / "lex"


def turns(tmp_path, *paths) -> dict[str, dict]:
    out = tmp_path / "lex.parquet"
    summary = import_lex(list(paths) or [LEX], out)
    assert summary.read == summary.imported + summary.skipped
    return {r["turn_id"]: r for r in read_records(out)}


def test_real_text_entry(tmp_path):
    turn = turns(tmp_path, LEX / "cloudwatch_entry.json")["6181aaac-5ea3-4f86-a283-6b38084577c6"]
    assert turn["dialogue_id"] == "455980081820937"
    assert turn["timestamp"] == "2022-03-25T02:06:07.382Z"
    assert turn["locale"] == "en-US"
    assert turn["asr"] is None  # inputMode Text
    assert turn["nlu"]["intent"] == "MakeAppointment"
    assert turn["nlu"]["confidence"] == 1.0  # "1.00" in the log
    assert [h["confidence"] for h in turn["nlu"]["nbest"]] == [1.0, None]  # FallbackIntent: none
    assert turn["nlu"]["slots"][2] == {"name": "Date", "value": "Tomorrow", "confidence": None}
    date = turn["er"]["entities"][2]
    assert (date["mention"], date["resolved_value"], date["candidates"], date["status"]) == (
        "Tomorrow",
        "2022-03-25",
        1,
        "resolved",
    )
    assert turn["result"]["status"] == "success"  # ReadyForFulfillment
    assert turn["result"]["action"] == "Close"
    assert turn["reference_labels"] == {"system_reported": "correct"}
    assert turn["passthrough"]["sessionState"]["originatingRequestId"].startswith("e9c7")


def test_real_fallback_entry_from_connect(tmp_path):
    found = turns(tmp_path, LEX / "connect_fallback_entry.json")
    turn = found["11b32b09-ec7b-4ceb-a4e5-a92cf2c283ac"]
    assert turn["dialogue_id"] == "929e9aa7-155b-471b-b68d-45c8da484292"
    # inputMode Text: Lex logs `transcriptions` anyway, but no speech was recognised
    assert turn["asr"] is None
    assert turn["passthrough"]["transcriptions"][0]["transcription"] == "hello"
    assert turn["nlu"]["intent"] == "FallbackIntent"
    assert turn["nlu"]["confidence"] is None  # Lex gives FallbackIntent no confidence
    assert [(h["intent"], h["confidence"]) for h in turn["nlu"]["nbest"]] == [
        ("FallbackIntent", None),
        ("NewIntent", 0.63),
    ]
    assert turn["nlu"]["slots"] == []
    assert turn["er"] is None  # no slots: no entity stage
    assert turn["reference_labels"] == {"system_reported": "nlu"}  # missedUtterance
    assert turn["passthrough"]["dialogEventLogs"][0]["dialogStepLabel"].startswith("Intent/")


def test_speech_session_order_asr_and_states(tmp_path):
    found = turns(tmp_path, LEX / "speech_session.jsonl")
    assert [found[f"req-{i}"]["turn_index"] for i in range(1, 5)] == [0, 1, 2, 3]  # by time
    first = found["req-1"]
    assert first["asr"]["text"] == "i would like to order some flowers"
    assert first["asr"]["confidence"] == 0.94
    assert [h["confidence"] for h in first["asr"]["nbest"]] == [0.94, 0.41]
    assert first["result"]["status"] == "clarification"  # ElicitSlot
    roses = found["req-2"]["er"]["entities"][0]
    assert (roses["status"], roses["candidates"]) == ("ambiguous", 2)
    missed = found["req-3"]
    assert missed["nlu"]["confidence"] is None
    assert missed["nlu"]["nbest"][1]["confidence"] == 0.21  # "0.21" in the log
    assert missed["reference_labels"] == {"system_reported": "nlu"}
    failed = found["req-4"]
    assert failed["result"]["status"] == "error"
    assert failed["er"]["entities"][0]["status"] == "no_match"
    assert failed["reference_labels"] == {"system_reported": "result"}


def test_json_array_and_broken_entries(tmp_path):
    good = json.loads((LEX / "cloudwatch_entry.json").read_text())
    path = tmp_path / "export.json"
    path.write_text(json.dumps([good, {"timestamp": "x", "sessionId": "s"}, {"sessionId": ""}]))
    lines = tmp_path / "log.jsonl"
    lines.write_text(
        json.dumps({**good, "requestId": "r2", "interpretations": [{"nluConfidence": "1.5"}]})
        + "\n{\n"
    )
    summary = import_lex([path, lines], tmp_path / "out.jsonl")
    assert (summary.read, summary.imported, summary.skipped) == (5, 1, 4)
    reasons = dict(summary.reasons)
    assert reasons[f"{path}[1]"] == "timestamp: not an ISO 8601 time ('x')"
    assert reasons[f"{path}[2]"] == "no sessionId"
    assert "nlu.confidence: expected a number in 0..1, found 1.5" in reasons[f"{lines}:1"]
    assert reasons[f"{lines}:2"].startswith("bad JSON")


def test_cli_import_lex(tmp_path):
    code, output = invoke("import", "lex", str(LEX), "--out", str(tmp_path / "l.jsonl"))
    assert code == 0, output
    assert "utterances read 6 = 6 imported + 0 skipped; turns written 6" in output
