"""Rasa: trackers, tracker lists, the file event broker and the SQLite tracker store."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import pytest

from fpi.importers.rasa import convert_conversation, import_rasa
from tests.importers.helpers import FIXTURES, invoke, read_records

RASA = FIXTURES / "rasa"
MOODBOT = RASA / "tracker_moodbot.json"


def by_dialogue(tmp_path: Path, *paths: Path) -> dict[str, list[dict]]:
    out = tmp_path / "rasa.jsonl"
    summary = import_rasa(list(paths), out)
    assert summary.read == summary.imported + summary.skipped
    turns: dict[str, list[dict]] = {}
    for record in read_records(out):
        turns.setdefault(record["dialogue_id"], []).append(record)
    return turns


def test_tracker_user_event_to_next_user_event_is_a_turn(tmp_path):
    turns = by_dialogue(tmp_path, MOODBOT)["mysender"]
    assert [t["turn_index"] for t in turns] == [0, 1]
    first, second = turns
    assert first["timestamp"] == "2018-02-05T09:08:46.200036Z"
    assert first["nlu"] == {
        "intent": "greet",
        "confidence": 0.54,
        "nbest": [
            {"domain": None, "intent": "greet", "confidence": 0.54},
            {"domain": None, "intent": "goodbye", "confidence": 0.31},
            {"domain": None, "intent": "default", "confidence": 0.15},
        ],
        "slots": [],
    }
    assert "asr" not in first  # a text channel: ASR cannot fail
    assert first["result"] == {"status": "success", "action": "utter_greet"}
    assert second["result"]["handler"] == "policy_1_TEDPolicy"
    assert first["reference_labels"] == {"system_reported": "correct"}
    # what came before the first user message is kept, not dropped
    assert first["passthrough"]["before_first_user"][0]["name"] == "action_listen"


def test_event_log_entities_synonyms_and_bot_text(tmp_path):
    turns = by_dialogue(tmp_path, RASA / "rasa_event.log")["restaurantbot"]
    assert len(turns) == 3
    inform = turns[1]
    assert inform["nlu"]["slots"] == [
        {"name": "cuisine", "value": "italian", "confidence": None},
        {"name": "location", "value": "paris", "confidence": None},
    ]
    assert inform["result"]["response_text"] == "I'm on it for how many people?"
    assert inform["result"]["latency_ms"] == pytest.approx(6276.554)
    cheap = turns[2]
    assert cheap["nlu"]["slots"] == [
        {"name": "price", "value": "cheap", "confidence": 0.839291340764181}
    ]
    assert cheap["er"] == {
        "entities": [
            {"slot": "price", "mention": "cheap", "resolved_value": "lo", "status": "resolved"}
        ]
    }
    assert cheap["passthrough"]["user"]["parse_data"]["entities"] == [
        {"extractor": "CRFEntityExtractor", "processors": ["EntitySynonymMapper"]}
    ]


def test_fallbacks_rejection_rewind_and_voice_channels(tmp_path):
    turns = by_dialogue(tmp_path, RASA / "fallbacks.json")
    (core,) = turns["botfront-fallback"]
    assert core["result"]["status"] == "clarification"
    assert core["result"]["action"] == "action_default_fallback"
    assert core["reference_labels"] == {"system_reported": "result"}
    assert core["passthrough"]["rewound"] is True
    nlu, rejected = turns["nlu-fallback-voice"]
    assert nlu["asr"] == {"text": "book a table at the spicy place"}  # a voice channel
    assert nlu["nlu"]["intent"] == "nlu_fallback"
    assert [h["intent"] for h in nlu["nlu"]["nbest"]] == ["book_table", "inform"]
    assert nlu["er"]["entities"][0]["status"] == "no_match"  # slot set back to null
    assert nlu["reference_labels"] == {"system_reported": "nlu"}
    assert rejected["result"]["status"] == "error"
    assert rejected["result"]["action"] == "action_book_table"
    assert rejected["reference_labels"] == {"system_reported": "result"}


def _sqlite(path: Path, rows: list[tuple[str, object]]) -> Path:
    with sqlite3.connect(path) as db:
        db.execute(
            "CREATE TABLE events (id INTEGER PRIMARY KEY, sender_id VARCHAR(255), "
            "type_name VARCHAR(255), timestamp FLOAT, intent_name VARCHAR(255), "
            "action_name VARCHAR(255), data TEXT)"
        )
        for sender, data in rows:
            text = data if isinstance(data, str) else json.dumps(data)
            db.execute("INSERT INTO events (sender_id, data) VALUES (?, ?)", (sender, text))
    return path


def test_sqlite_tracker_store_one_conversation_per_sender(tmp_path):
    events = json.loads(MOODBOT.read_text())["events"]
    other = json.loads((RASA / "fallbacks.json").read_text())[0]["events"]
    rows = [("mysender", e) for e in events] + [("b", e) for e in other] + [("c", "{broken")]
    db = _sqlite(tmp_path / "tracker.db", rows)
    summary = import_rasa([db], tmp_path / "out.jsonl")
    assert (summary.read, summary.imported, summary.skipped, summary.turns) == (3, 2, 1, 3)
    assert summary.reasons[0][1].startswith("events row 14: bad JSON")
    from_db = [r for r in read_records(tmp_path / "out.jsonl") if r["dialogue_id"] == "mysender"]
    assert from_db == by_dialogue(tmp_path, MOODBOT)["mysender"]  # same turns as the tracker


def test_broken_conversations_are_skipped_with_reasons(tmp_path):
    trackers = [
        json.loads(MOODBOT.read_text()),
        {"events": []},
        {"sender_id": "x", "events": [{"event": "user", "text": "hi"}]},
        {"sender_id": "y", "events": ["nope"]},
        "not a tracker",
    ]
    path = tmp_path / "trackers.json"
    path.write_text(json.dumps(trackers))
    (tmp_path / "empty.db").write_bytes(b"not sqlite at all")
    summary = import_rasa([path, tmp_path / "empty.db"], tmp_path / "out.jsonl")
    assert (summary.read, summary.imported, summary.skipped) == (6, 1, 5)
    reasons = [r for _, r in summary.reasons]
    assert "no sender_id" in reasons
    assert "timestamp: expected a time, found None" in reasons
    assert "events[0]: expected an object with an 'event' type" in reasons
    assert any(r.startswith("cannot read the events table") for r in reasons)


def test_negative_latency_from_out_of_order_clocks_stays_unknown():
    events = [
        {"event": "user", "timestamp": 10.0, "text": "hi", "parse_data": {}},
        {"event": "bot", "timestamp": 9.0, "text": "hello"},
    ]
    (turn,) = convert_conversation("s", events)
    assert "latency_ms" not in turn["result"]


def test_cli_import_rasa(tmp_path):
    code, output = invoke("import", "rasa", str(RASA), "--out", str(tmp_path / "r.jsonl.gz"))
    assert code == 0, output
    assert "conversations read 4 = 4 imported + 0 skipped; turns written 8" in output
