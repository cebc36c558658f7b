"""Imported real-file fixtures go through `fpi triage`, `fpi report` and `fpi evaluate`.

Home Assistant runs have no NLU block and no confidence anywhere, typed requests have no
wake or ASR block, Rasa text turns no ASR: whole stages missing must work downstream.
"""

from __future__ import annotations

import json

import polars as pl
import pytest

from tests.importers.helpers import FIXTURES, invoke, read_records

SOURCES = [
    ("homeassistant", "homeassistant", 6, "2024-W18"),
    ("rasa", "rasa", 8, "2019-W10"),
    ("lex", "lex", 6, "2024-W05"),
]


@pytest.mark.parametrize(("source", "folder", "turns", "week"), SOURCES)
def test_triage_and_report_on_imported_fixtures(tmp_path, source, folder, turns, week):
    dump = tmp_path / f"{source}.jsonl"
    code, output = invoke("import", source, str(FIXTURES / folder), "--out", str(dump))
    assert code == 0, output
    triaged = tmp_path / "triage.parquet"
    code, output = invoke("triage", str(dump), "--out", str(triaged))
    assert code == 0, output
    assert f"read {turns} turns = {turns} triaged + 0 rejected" in output
    frame = pl.read_parquet(triaged)
    assert frame.height == turns
    assert frame["failure_point"].null_count() == 0
    code, output = invoke("report", str(triaged), "--week", week, "--out", str(tmp_path / "r"))
    assert code == 0, output
    assert (tmp_path / "r" / "report.html").exists()


def test_evaluate_compares_the_systems_own_error_codes(tmp_path):
    dump = tmp_path / "ha.jsonl"
    invoke("import", "homeassistant", str(FIXTURES / "homeassistant"), "--out", str(dump))
    gold = {"01HX0WAKEWORDNOMATCH": "asr", "01HX2HANDLEFAIL": "result"}  # as a person judged
    labelled = tmp_path / "labelled.jsonl"
    with labelled.open("w") as fh:
        for record in read_records(dump):
            record["label"] = {"failure_point": gold.get(record["turn_id"], "correct")}
            fh.write(json.dumps(record) + "\n")
    metrics = tmp_path / "m.json"
    code, output = invoke("evaluate", str(labelled), "--json", str(metrics))
    assert code == 0, output
    reported = json.loads(metrics.read_text())["references"]["system_reported"]
    assert reported["n"] == 5  # the aborted wake word names no stage
    assert reported["accuracy"] == pytest.approx(4 / 5)  # no_intent_match blamed NLU, not ASR
