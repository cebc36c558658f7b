import numpy as np
import polars as pl
import pytest

from fpi.errors import FpiError
from fpi.evaluate import (
    classification_metrics,
    coverage_curve,
    evaluation_report,
    reference_names,
    rule_baseline,
)
from fpi.schema import FAILURE_POINTS, TRACE_JSON_SCHEMA


def test_metrics_on_a_known_confusion():
    gold = ["correct", "correct", "asr", "asr", "nlu", "er"]
    pred = ["correct", "asr", "asr", "asr", "er", "er"]
    m = classification_metrics(gold, pred)
    assert m["n"] == 6
    assert m["accuracy"] == pytest.approx(4 / 6)
    assert m["per_class"]["asr"] == {"precision": 2 / 3, "recall": 1.0, "f1": 0.8, "support": 2}
    assert m["per_class"]["nlu"]["f1"] == 0.0
    assert m["per_class"]["correct"]["recall"] == 0.5
    # macro over the four classes that occur (correct, asr, nlu, er), not the absent two
    expected = np.mean([2 / 3, 0.8, 0.0, 2 / 3])
    assert m["macro_f1"] == pytest.approx(expected)
    labels = m["confusion"]["labels"]
    matrix = np.array(m["confusion"]["matrix"])
    assert labels == list(FAILURE_POINTS)
    assert matrix[labels.index("correct"), labels.index("asr")] == 1
    assert matrix.sum() == 6


def test_integer_codes_and_outside_labels():
    m = classification_metrics(np.array([0, 2]), np.array(["correct", "uncertain"]))
    assert m["accuracy"] == 0.5
    assert m["confusion"]["labels"][-1] == "uncertain"
    assert m["confusion"]["matrix"][2][-1] == 1


def test_coverage_curve_keeps_confident_turns():
    gold = np.array(["asr", "asr", "nlu", "er"])
    pred = np.array(["asr", "nlu", "nlu", "correct"])
    conf = np.array([0.95, 0.35, 0.8, 0.2])
    curve = {p["threshold"]: p for p in coverage_curve(gold, pred, conf)}
    assert curve[0.0] == {"threshold": 0.0, "coverage": 1.0, "accuracy": 0.5}
    assert curve[0.5]["coverage"] == 0.5 and curve[0.5]["accuracy"] == 1.0
    assert curve[0.99]["coverage"] == 0.0


def _traces(rows):
    return pl.DataFrame(rows, schema=TRACE_JSON_SCHEMA)


def test_rule_baseline_names_the_earliest_bad_stage():
    base = {"dialogue_id": "d", "turn_index": 0, "timestamp": "2026-11-02T10:00:00Z"}
    good_asr = {"text": "play jazz", "confidence": 0.9}
    rows = [
        {**base, "wake": {"mode": "wake_word", "confidence": 0.3}, "asr": {"confidence": 0.2}},
        {**base, "asr": {"text": "", "confidence": 0.9}},
        {**base, "asr": good_asr, "nlu": {"confidence": 0.4}},
        {
            **base,
            "asr": good_asr,
            "nlu": {"confidence": 0.9},
            "er": {"entities": [{"status": "no_match", "score": 0.9}]},
        },
        {**base, "asr": good_asr, "result": {"status": "error"}},
        {**base, "asr": good_asr, "result": {"status": "unsupported"}},
        {**base},
    ]
    assert rule_baseline(_traces(rows)).to_list() == [
        "false_wake",
        "asr",
        "nlu",
        "er",
        "result",
        "correct",
        "correct",
    ]


def test_reference_names_and_report():
    rows = [
        {"dialogue_id": "d", "turn_index": 0, "timestamp": "t", "reference_labels": '{"b": "x"}'},
        {"dialogue_id": "d", "turn_index": 1, "timestamp": "t", "reference_labels": '{"a": "y"}'},
        {"dialogue_id": "d", "turn_index": 2, "timestamp": "t"},
    ]
    assert reference_names(_traces(rows)) == ["a", "b"]
    scored = pl.DataFrame(
        {
            "gold": ["asr", "correct", None],
            "model": ["asr", "asr", "nlu"],
            "confidence": [0.9, 0.6, 0.5],
            "model_uncalibrated": ["asr", "asr", "nlu"],
            "confidence_uncalibrated": [0.99, 0.9, 0.5],
            "rule_baseline": ["correct", "correct", "correct"],
            "reference:annotator": ["asr", None, "nlu"],
        }
    )
    report = evaluation_report([scored.head(1), scored.tail(2)])
    assert report["n"] == 2 and report["accuracy"] == 0.5
    assert report["references"]["annotator"]["n"] == 1
    assert report["rule_baseline"]["accuracy"] == 0.5
    assert set(report) == {
        "n", "accuracy", "macro_f1", "per_class", "confusion", "references", "rule_baseline",
        "coverage", "ece", "ece_uncalibrated", "reliability", "reliability_uncalibrated",
    }  # fmt: skip
    # one right at 0.9, one wrong at 0.6: bins 13 and 9, |1 - 0.9| and |0 - 0.6| halved
    assert report["ece"] == pytest.approx((0.1 + 0.6) / 2)
    assert report["ece_uncalibrated"] == pytest.approx((0.01 + 0.9) / 2)
    filled = [row for row in report["reliability"] if row["count"]]
    assert [(row["count"], row["mean_confidence"], row["accuracy"]) for row in filled] == [
        (1, 0.6, 0.0),
        (1, 0.9, 1.0),
    ]


def test_report_needs_gold_labels():
    scored = pl.DataFrame(
        {"gold": [None], "model": ["asr"], "confidence": [0.9], "rule_baseline": ["correct"]},
        schema_overrides={"gold": pl.String},
    )
    with pytest.raises(FpiError, match="gold"):
        evaluation_report(scored)
