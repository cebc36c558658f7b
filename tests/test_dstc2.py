"""The DSTC2 importer: label rules, field mapping, broken calls and `fpi import dstc2`."""

from __future__ import annotations

import gzip
import json
import math
from pathlib import Path

import polars as pl
import pytest
import zstandard
from typer.testing import CliRunner

from fpi.cli import app
from fpi.errors import InputError
from fpi.importers.dstc2 import (
    BrokenCallError,
    content_words,
    convert_call,
    derive_failure_point,
    import_dstc2,
    load_ontology,
    normalise_words,
    semantics_triples,
)
from fpi.schema import TRACE_JSON_SCHEMA

ROOT = Path(__file__).parent / "fixtures" / "dstc2"
CALLS = ROOT / "data" / "Mar13_S0A0"
CALL_A = CALLS / "voip-aaaa-20130327_010416"
CALL_B = CALLS / "voip-bbbb-20130328_235959"

INFORM_CHEAP = ("inform", "pricerange", "cheap")
REQUEST_PHONE = ("request", "phone", "")


def acts(*pairs: tuple[str, list[tuple[str, str]]]) -> list[dict]:
    return [{"act": a, "slots": [list(s) for s in slots]} for a, slots in pairs]


def load(call_dir: Path) -> tuple[dict, dict]:
    return (
        json.loads((call_dir / "log.json").read_text()),
        json.loads((call_dir / "label.json").read_text()),
    )


@pytest.fixture(scope="module")
def ontology():
    return load_ontology(ROOT / "scripts" / "config" / "ontology_dstc2.json")


@pytest.fixture(scope="module")
def call_a(ontology) -> list[dict]:
    return convert_call(*load(CALL_A), ontology)


@pytest.fixture(scope="module")
def call_b(ontology) -> list[dict]:
    return convert_call(*load(CALL_B), ontology)


def labels(records: list[dict]) -> list[str]:
    return [r["label"]["failure_point"] for r in records]


# ---- text and semantics ----------------------------------------------------------------


def test_normalise_words_drops_apostrophes_punctuation_and_fillers():
    assert normalise_words("Uh, I'd like CHEAP food -- erm... thanks!") == [
        "id",
        "like",
        "cheap",
        "food",
        "thanks",
    ]
    assert normalise_words("um hmm") == []


def test_content_words_drop_stop_words_and_count_repeats():
    assert content_words("I'm looking for the cheap, cheap restaurant please") == {
        "looking": 1,
        "cheap": 2,
        "restaurant": 1,
    }
    assert content_words("cheap cheap food") != content_words("cheap food")


def test_semantics_triples_lower_case_acts_without_slots_and_requests():
    triples = semantics_triples(
        acts(
            ("Inform", [("food", "Indian")]),
            ("request", [("slot", "phone")]),
            ("inform", [("this", "dontcare")]),
            ("bye", []),
        )
    )
    assert triples == {
        ("inform", "food", "indian"),
        REQUEST_PHONE,
        ("inform", "this", "dontcare"),
        ("bye", "", ""),
    }


# ---- the five label rules --------------------------------------------------------------

BYE = {("bye", "", "")}


@pytest.mark.parametrize("transcript", ["noise", "sil", "unintelligible", "Noise", "uh um", ""])
def test_false_wake_when_nobody_spoke_and_the_system_acted(transcript):
    assert derive_failure_point("bye", BYE, set(), transcript, None) == "false_wake"


@pytest.mark.parametrize("transcript", ["noise", "sil", "unintelligible", "uh um"])
def test_no_speech_and_no_prediction_is_correct(transcript):
    assert derive_failure_point("uh", set(), set(), transcript, acts(("repeat", []))) == "correct"


def test_correct_when_prediction_equals_gold_despite_asr_slips():
    gold = {INFORM_CHEAP}
    assert derive_failure_point("a cheap one", gold, gold, "cheap restaurant", None) == "correct"


def test_result_when_a_request_is_not_answered():
    next_output = acts(("offer", [("name", "mahal")]), ("inform", [("addr", "mill lane")]))
    gold = {REQUEST_PHONE}
    assert derive_failure_point("phone", gold, gold, "phone", next_output) == "result"


def test_request_answered_is_correct():
    next_output = acts(("offer", [("name", "mahal")]), ("inform", [("phone", "01223 000000")]))
    gold = {REQUEST_PHONE}
    assert derive_failure_point("phone", gold, gold, "phone", next_output) == "correct"


def test_request_on_the_last_turn_is_correct():
    gold = {REQUEST_PHONE}
    assert derive_failure_point("phone", gold, gold, "phone", None) == "correct"


def test_asr_when_content_words_differ():
    pred, gold = {("inform", "food", "indian")}, {("inform", "food", "italian")}
    assert derive_failure_point("indian food", pred, gold, "italian food", None) == "asr"


def test_asr_ignores_fillers_and_stop_words_but_counts_repeats():
    pred, gold = {("inform", "food", "indian")}, {("inform", "food", "italian")}
    # same content words: the SLU is to blame, not the ASR
    assert derive_failure_point("uh the italian food please", pred, gold, "italian food", None) == (
        "er"
    )
    # one "italian" more is a different multiset
    assert derive_failure_point("italian italian food", pred, gold, "italian food", None) == "asr"


def test_missing_asr_hypothesis_counts_as_no_words():
    assert derive_failure_point(None, set(), BYE, "bye", None) == "asr"


def test_er_when_only_a_value_differs():
    pred = {("inform", "food", "asian oriental"), ("inform", "area", "south")}
    gold = {("inform", "food", "thai"), ("inform", "area", "south")}
    assert derive_failure_point("thai food south", pred, gold, "thai food south", None) == "er"


def test_nlu_when_acts_or_slots_differ_on_the_right_text():
    gold = {("reqalts", "", ""), ("inform", "food", "indian")}
    assert (
        derive_failure_point(
            "what about indian", {("reqalts", "", "")}, gold, "what about indian", None
        )
        == "nlu"
    )
    assert (
        derive_failure_point("type of food", set(), {("request", "food", "")}, "type of food", None)
        == "nlu"
    )


# ---- field mapping ---------------------------------------------------------------------


def test_call_labels_follow_the_rules(call_a, call_b):
    assert labels(call_a) == ["correct", "correct", "result", "correct", "false_wake", "correct"]
    assert labels(call_b) == ["asr", "er", "nlu", "asr"]
    assert {r["label"]["source"] for r in call_a + call_b} == {"dstc2-derived"}


def test_ids_context_and_fixed_fields(call_a):
    first = call_a[0]
    assert (first["dialogue_id"], first["turn_index"]) == ("voip-aaaa-20130327_010416", 0)
    assert (first["locale"], first["user_id"]) == ("en-GB", "aaaa")
    assert first["device"] == {"type": "phone"}
    assert first["wake"] == {"mode": "follow_up"}
    assert [r["turn_index"] for r in call_a] == list(range(6))


def test_timestamps_and_durations(call_a, call_b):
    assert call_a[0]["timestamp"] == "2013-03-27T01:04:18.500Z"  # 01:04:16 + 2.5 s
    assert call_a[1]["asr"]["audio_ms"] == pytest.approx(400.0)  # 7.3 - 6.9 s
    assert call_a[0]["asr"]["audio_ms"] == pytest.approx(2260.0)
    assert call_a[0]["result"]["latency_ms"] == pytest.approx(340.0)  # 5.1 - 4.76 s
    # the session started one second before midnight: the date rolls over
    assert call_b[1]["timestamp"] == "2013-03-29T00:00:04.000Z"


def test_asr_confidence_is_exp_of_score(call_a):
    asr = call_a[0]["asr"]
    assert asr["text"] == "cheap restaurant in the south"
    assert asr["confidence"] == pytest.approx(math.exp(-0.1))
    assert [h["text"] for h in asr["nbest"]] == [
        "cheap restaurant in the south",
        "cheap restaurant",
    ]
    assert asr["nbest"][1]["confidence"] == pytest.approx(math.exp(-2.3))


def test_nlu_intent_slots_and_nbest(call_a, call_b):
    nlu = call_a[0]["nlu"]
    assert (nlu["domain"], nlu["intent"], nlu["confidence"]) == ("restaurant", "inform", 0.9)
    assert nlu["slots"] == [
        {"name": "pricerange", "value": "cheap"},
        {"name": "area", "value": "south"},
    ]
    assert [h["confidence"] for h in nlu["nbest"]] == [0.9, 0.1]
    assert call_b[2]["nlu"]["intent"] == "inform+reqalts"  # sorted, unique


def test_request_and_this_pairs_are_kept_as_slots(call_a):
    assert call_a[1]["nlu"]["slots"] == [{"name": "this", "value": "dontcare"}]
    assert call_a[2]["nlu"]["slots"] == [{"name": "slot", "value": "phone"}]
    assert call_a[1]["er"] is None and call_a[2]["er"] is None


def test_empty_slu_hypothesis_has_null_intent(call_a):
    nlu = call_a[3]["nlu"]
    assert nlu["intent"] is None
    assert nlu["slots"] == []
    assert [h["intent"] for h in nlu["nbest"]] == [None, "affirm"]
    assert call_a[3]["er"] is None


def test_turn_without_any_hypothesis(call_b):
    last = call_b[3]
    assert last["asr"]["text"] == "" and last["asr"]["nbest"] == []
    assert last["asr"]["confidence"] is None
    assert last["nlu"]["intent"] is None and last["nlu"]["nbest"] == []


def test_entities_resolve_against_the_ontology(call_a, call_b):
    assert call_a[0]["er"] == {
        "entities": [
            {"slot": s, "mention": v, "resolved_value": v, "status": "resolved"}
            for s, v in [("pricerange", "cheap"), ("area", "south")]
        ]
    }
    statuses = {e["mention"]: e["status"] for e in call_b[2]["er"]["entities"]}
    assert statuses == {"the curry queen": "no_match", "dontcare": "resolved"}


def test_result_is_the_next_system_output(call_a, call_b):
    result = call_a[1]["result"]
    assert result["action"] == "offer+inform+inform"
    assert result["response_text"].startswith("mahal of cambridge is a nice restaurant")
    assert result["status"] == "success"
    assert [r["result"]["status"] for r in call_a[2:5]] == [
        "success",
        "clarification",
        "no_content",
    ]
    assert call_b[1]["result"]["status"] == "no_content"  # canthelp.exception
    assert call_b[2]["result"]["status"] == "clarification"  # reqmore


def test_barge_in_is_the_next_output_aborted(call_a):
    assert [r["signals"]["barge_in"] for r in call_a[:5]] == [False, False, True, False, False]


def test_last_turn_has_no_result_or_signals(call_a):
    assert call_a[-1]["result"] is None and call_a[-1]["signals"] is None


def test_previous_prompt_is_the_previous_result(call_a):
    log, _ = load(CALL_A)
    for i in range(1, len(call_a)):
        assert call_a[i - 1]["result"]["response_text"] == log["turns"][i]["output"]["transcript"]


@pytest.mark.parametrize(
    ("which", "change", "file", "why"),
    [
        ("log", lambda d: d.pop("caller-id"), "log.json", "missing key 'caller-id'"),
        ("log", lambda d: d["turns"][1]["input"].pop("live"), "log.json", "missing key 'live'"),
        ("log", lambda d: d.update({"session-date": "soon"}), "log.json", "unexpected content"),
        ("label", lambda d: d["turns"][0].pop("semantics"), "label.json", "'semantics'"),
        ("label", lambda d: d["turns"].pop(), "log.json, label.json", "turn counts differ"),
    ],
)
def test_broken_call_names_the_file_and_the_reason(ontology, which, change, file, why):
    log, label = load(CALL_A)
    change(log if which == "log" else label)
    with pytest.raises(BrokenCallError) as caught:
        convert_call(log, label, ontology)
    assert caught.value.file == file
    assert why in caught.value.why


# ---- import_dstc2 ----------------------------------------------------------------------


def read_jsonl(path: Path) -> pl.DataFrame:
    raw = path.read_bytes()
    if path.name.endswith(".gz"):
        raw = gzip.decompress(raw)
    elif path.name.endswith(".zst"):
        raw = zstandard.ZstdDecompressor().stream_reader(raw).read()
    return pl.read_ndjson(raw, schema=TRACE_JSON_SCHEMA)


def test_import_skips_and_counts_broken_calls(tmp_path):
    progress: list[tuple[int, int]] = []
    summary = import_dstc2(
        ROOT, "train", tmp_path / "train.jsonl", progress=lambda d, t: progress.append((d, t))
    )
    assert (summary.read, summary.imported, summary.skipped) == (6, 1, 5)
    assert dict(summary.reasons) == {
        "Mar13_S0A0/no-label": "label.json: missing",
        "Mar13_S0A0/bad-json": (
            "log.json: bad JSON at line 14 column 1: Expecting property name enclosed in double "
            "quotes"
        ),
        "Mar13_S0A0/missing-key": "log.json: missing key 'session-date'",
        "Mar13_S0A0/turn-mismatch": (
            "log.json, label.json: turn counts differ (6 in log.json, 5 in label.json)"
        ),
        "Mar13_S0A0/not-there": "log.json: missing",
    }
    assert summary.turns == 6
    assert summary.label_counts == {"correct": 4, "false_wake": 1, "result": 1}
    assert progress == [(i, 6) for i in range(1, 7)]


@pytest.mark.parametrize("suffix", [".jsonl", ".jsonl.gz", ".jsonl.zst", ".parquet"])
def test_written_dump_reads_back_and_validates(tmp_path, monkeypatch, ontology, suffix):
    monkeypatch.setattr("fpi.importers.base.CHECK_RECORDS", 1)  # one check and write per call
    out = tmp_path / f"both{suffix}"
    summary = import_dstc2(ROOT, ROOT / "both.flist", out)
    if suffix == ".parquet":
        frame = pl.read_parquet(out).select(TRACE_JSON_SCHEMA.names())
    else:
        frame = read_jsonl(out)
    assert frame.schema == TRACE_JSON_SCHEMA
    expected = pl.DataFrame(
        convert_call(*load(CALL_A), ontology) + convert_call(*load(CALL_B), ontology),
        schema=TRACE_JSON_SCHEMA,
    )
    assert frame.equals(expected)
    assert summary.turns == frame.height == 10
    ts = frame["timestamp"].str.to_datetime("%Y-%m-%dT%H:%M:%S%.3fZ", time_zone="UTC")
    assert ts.null_count() == 0


def test_import_rejects_a_bad_root_flist_or_output(tmp_path):
    with pytest.raises(InputError, match="not a DSTC2 root"):
        import_dstc2(tmp_path, "train", tmp_path / "x.jsonl")
    with pytest.raises(InputError, match="cannot read the call list"):
        import_dstc2(ROOT, tmp_path / "none.flist", tmp_path / "x.jsonl")
    with pytest.raises(InputError, match="unknown trace format"):
        import_dstc2(ROOT, "dev", tmp_path / "x.csv")
    (tmp_path / "taken.jsonl").mkdir()
    with pytest.raises(InputError, match="names a directory"):
        import_dstc2(ROOT, "dev", tmp_path / "taken.jsonl")


def test_import_with_no_calls_writes_an_empty_dump(tmp_path):
    (tmp_path / "empty.flist").write_text("\n")
    out = tmp_path / "none.parquet"
    assert import_dstc2(ROOT, tmp_path / "empty.flist", out).turns == 0
    assert pl.read_parquet(out).select(TRACE_JSON_SCHEMA.names()).schema == TRACE_JSON_SCHEMA


# ---- CLI -------------------------------------------------------------------------------

runner = CliRunner()


def invoke(*args: str) -> tuple[int, str]:
    """Exit code and output with rich's line wrapping undone."""
    result = runner.invoke(app, list(args))
    return result.exit_code, " ".join(result.output.split())


@pytest.mark.parametrize(
    ("flist", "calls", "turns"),
    [
        ("train", "calls read 6 = 1 imported + 5 skipped", 6),
        ("dev", "calls read 1 = 1 imported + 0 skipped", 4),
    ],
)
def test_cli_imports_the_official_lists(tmp_path, flist, calls, turns):
    out = tmp_path / f"{flist}.jsonl"
    code, output = invoke("import", "dstc2", str(ROOT), "--flist", flist, "--out", str(out))
    assert code == 0, output
    assert calls in output
    assert f"turns written {turns}" in output
    assert read_jsonl(out).height == turns


def test_cli_reports_skipped_calls_and_the_label_mix(tmp_path):
    code, output = invoke("import", "dstc2", str(ROOT), "--out", str(tmp_path / "train.parquet"))
    assert code == 0, output
    assert "skipped Mar13_S0A0/no-label: label.json: missing" in output
    assert "skipped Mar13_S0A0/turn-mismatch: log.json, label.json: turn counts differ" in output
    assert "│ false_wake │ 1 │ 16.7% │" in output


def test_cli_with_an_flist_path(tmp_path):
    out = tmp_path / "both.jsonl.gz"
    flist = str(ROOT / "both.flist")
    code, output = invoke("import", "dstc2", str(ROOT), "--flist", flist, "--out", str(out))
    assert code == 0, output
    assert "calls read 2 = 2 imported + 0 skipped" in output
    assert read_jsonl(out)["label"].struct.field("failure_point").value_counts().height == 6


def test_cli_bad_root_is_an_error_without_traceback(tmp_path):
    code, output = invoke("import", "dstc2", str(tmp_path), "--out", str(tmp_path / "x.jsonl"))
    assert code == 2
    assert "not a DSTC2 root" in output
    assert "Traceback" not in output


def test_features_and_model_work_on_imported_telephone_traces(tmp_path, small_bundle):
    from fpi.featurize import extract_features, feature_schema
    from fpi.io import read_traces

    out = tmp_path / "dstc2.parquet"
    import_dstc2(ROOT, ROOT / "both.flist", out)
    traces = read_traces([out])
    assert len(traces) > 0
    features = extract_features(traces)
    assert features.schema == feature_schema()
    # no wake word on the telephone: detector scores are missing, never invented
    assert features["wake__detector_score"].is_null().all()
    # the DSTC2 domain never occurs in simulated training data: it is encoded as missing
    matrix = small_bundle.matrix(features)
    domain = small_bundle.feature_names.index("nlu__domain")
    assert set(features["nlu__domain"].drop_nulls()) == {"restaurant"}
    assert all(value != value for value in matrix[:, domain])
    proba = small_bundle.predict_proba(matrix)
    assert proba.shape == (len(traces), 6)


# ---- hardening: a call that would write an invalid turn is skipped, never written ----------


def _set(path: list, value):
    def change(log: dict) -> None:
        target = log
        for key in path[:-1]:
            target = target[key]
        target[path[-1]] = value

    return change


def _duplicate_index(log: dict) -> None:
    log["turns"][1]["turn-index"] = log["turns"][0]["turn-index"]


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        (
            _set(["turns", 0, "input", "live", "slu-hyps", 0, "score"], 148),
            "field nlu.confidence: expected a number in 0..1, found 148.0",
        ),
        (_set(["session-id"], ""), 'field dialogue_id: expected a non-empty string, found ""'),
        (_set(["turns", 1, "turn-index"], -1), "field turn_index: expected an integer >= 0"),
        (_duplicate_index, "repeats an earlier turn"),
        (
            _set(["turns", 0, "input", "live", "asr-hyps", 0, "score"], float("nan")),
            "field asr.confidence: expected a finite number, found nan",
        ),
    ],
)
@pytest.mark.parametrize("suffix", [".jsonl", ".parquet"])
def test_a_call_the_validator_would_reject_is_skipped(tmp_path, change, reason, suffix):
    import shutil

    root = tmp_path / "dstc2"
    shutil.copytree(ROOT, root)
    log_path = root / "data" / "Mar13_S0A0" / CALL_A.name / "log.json"
    log = json.loads(log_path.read_text())
    change(log)
    log_path.write_text(json.dumps(log))
    out = tmp_path / f"out{suffix}"
    summary = import_dstc2(root, root / "both.flist", out)
    assert (summary.read, summary.imported, summary.skipped) == (2, 1, 1)
    ((call, why),) = summary.reasons
    assert call == f"Mar13_S0A0/{CALL_A.name}" and reason in why
    from fpi.io import read_traces

    assert read_traces(out).height == summary.turns == 4  # what was written validates


def test_a_deeply_nested_log_skips_that_call_only(tmp_path):
    import shutil

    root = tmp_path / "dstc2"
    shutil.copytree(ROOT, root)
    (root / "data" / "Mar13_S0A0" / CALL_A.name / "log.json").write_text(
        '{"turns": ' + "[" * 200_000 + "]" * 200_000 + "}"
    )
    summary = import_dstc2(root, root / "both.flist", tmp_path / "out.jsonl")
    assert (summary.imported, summary.skipped) == (1, 1)
    assert summary.reasons[0][1] == "log.json: JSON nested too deeply"
