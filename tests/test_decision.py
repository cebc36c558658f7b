"""The decision rule: per-class offsets chosen on validation, applied in the prediction path."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from fpi.decision import (
    DECISION_KEY,
    choose_offsets,
    decide,
    decision_metadata,
    macro_f1,
    offsets_from_metadata,
)
from fpi.evaluate import classification_metrics, score_traces
from fpi.schema import FAILURE_POINTS


def test_without_offsets_the_rule_is_argmax():
    proba = np.array([[0.6, 0.4], [0.2, 0.8]])
    assert decide(proba).tolist() == [0, 1]
    assert decide(proba, np.zeros(2)).tolist() == [0, 1]
    assert decide(np.empty((0, 2))).tolist() == []


def test_an_offset_moves_the_boundary():
    proba = np.array([[0.6, 0.4], [0.55, 0.45]])
    assert decide(proba, np.array([0.0, np.log(0.6 / 0.4) - 0.01])).tolist() == [0, 1]


@settings(max_examples=40, deadline=None)
@given(
    st.lists(st.integers(0, 2), min_size=3, max_size=60),
    st.lists(st.integers(0, 2), min_size=3, max_size=60),
)
def test_macro_f1_matches_classification_metrics(gold, predicted):
    n = min(len(gold), len(predicted))
    gold, predicted = np.array(gold[:n]), np.array(predicted[:n])
    expected = classification_metrics(gold, predicted)["macro_f1"]
    assert macro_f1(gold, predicted, len(FAILURE_POINTS)) == pytest.approx(expected)


def test_chosen_offsets_recover_an_underpredicted_class_and_never_lose():
    rng = np.random.default_rng(0)
    gold = rng.choice(3, size=3_000, p=[0.8, 0.15, 0.05])
    # a model that under-rates class 2: its probability is squeezed
    logits = rng.normal(0, 1, (3_000, 3)) + 2.5 * np.eye(3)[gold] - np.array([0, 0, 1.5])
    proba = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    offsets = choose_offsets(proba, gold)
    assert offsets[0] == 0.0
    assert offsets[2] > 0.2
    before = macro_f1(gold, decide(proba), 3)
    after = macro_f1(gold, decide(proba, offsets), 3)
    assert after > before + 0.02


def test_a_class_without_evidence_keeps_offset_zero():
    proba = np.tile([0.7, 0.2, 0.1], (50, 1))
    assert choose_offsets(proba, np.zeros(50, dtype=np.int64)).tolist() == [0.0, 0.0, 0.0]


def test_offsets_round_trip_through_metadata():
    entry = decision_metadata(np.array([0.0, 0.5, -1.0]), ["a", "b", "c"], chosen_on="valid")
    metadata = {"classes": ["a", "b", "c"], DECISION_KEY: entry}
    assert offsets_from_metadata(metadata).tolist() == [0.0, 0.5, -1.0]
    assert offsets_from_metadata({"classes": ["a"]}) is None


def test_training_stores_the_rule_and_the_prediction_path_applies_it(small_bundle, small_traces):
    entry = small_bundle.metadata[DECISION_KEY]
    assert entry["chosen_on"] == "valid"
    assert list(entry["offsets"]) == list(FAILURE_POINTS)
    sample = small_traces.head(600)
    argmax = score_traces(sample, _with_offsets(small_bundle, None))
    forced = score_traces(sample, _with_offsets(small_bundle, {"asr": 30.0}))
    assert (forced["model"] == "asr").all()
    assert not (argmax["model"] == "asr").all()
    # the confidence is the chosen class's probability
    assert (forced["confidence"] <= argmax["confidence"] + 1e-12).all()


def test_triage_uses_the_same_rule(small_bundle, small_traces):
    from fpi.triage import triage_traces

    sample = small_traces.head(300)
    triaged = triage_traces(sample, _with_offsets(small_bundle, {"nlu": 30.0}))
    assert (triaged["predicted"] == "nlu").all()


def _with_offsets(bundle, offsets: dict | None):
    from fpi.model import ModelBundle

    metadata = {k: v for k, v in bundle.metadata.items() if k != DECISION_KEY}
    if offsets is not None:
        values = np.array([offsets.get(c, 0.0) for c in FAILURE_POINTS])
        metadata[DECISION_KEY] = decision_metadata(values, FAILURE_POINTS)
    return ModelBundle(bundle.booster, metadata)
