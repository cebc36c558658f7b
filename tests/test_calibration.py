"""`fpi.calibration`: ECE, the reliability table, both calibrations and their JSON form."""

from __future__ import annotations

import json

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from fpi.calibration import (
    ECE_BINS,
    Calibration,
    brier_score,
    calibration_scores,
    expected_calibration_error,
    fit_calibration,
    fit_isotonic,
    fit_temperature,
    reliability_table,
    softmax,
)
from fpi.errors import ModelError
from fpi.schema import FAILURE_POINTS


def test_ece_and_reliability_on_known_bins():
    confidence = np.array([0.95, 0.95, 0.95, 0.95, 0.5, 0.5, 0.02])
    correct = np.array([1, 1, 1, 0, 1, 0, 0], dtype=bool)
    table = reliability_table(confidence, correct)
    assert len(table) == ECE_BINS
    assert table[0]["low"] == 0.0 and table[-1]["high"] == 1.0
    filled = {i: row for i, row in enumerate(table) if row["count"]}
    assert sorted(filled) == [0, 7, 14]  # 0.02 -> bin 0, 0.5 -> bin 7, 0.95 -> bin 14
    assert filled[14] == {
        "low": 14 / 15, "high": 1.0, "count": 4, "mean_confidence": 0.95, "accuracy": 0.75,
    }  # fmt: skip
    assert table[3]["mean_confidence"] is None and table[3]["accuracy"] is None
    expected = (4 * abs(0.75 - 0.95) + 2 * abs(0.5 - 0.5) + 1 * abs(0.0 - 0.02)) / 7
    assert expected_calibration_error(confidence, correct) == pytest.approx(expected)
    assert reliability_table(np.array([1.0]), np.array([True]))[-1]["count"] == 1
    assert expected_calibration_error(np.empty(0), np.empty(0, dtype=bool)) == 0.0


def _overconfident(n: int, seed: int, temperature: float = 2.5) -> tuple[np.ndarray, np.ndarray]:
    """Raw scores whose softmax is too sharp: labels drawn from softmax(raw / temperature)."""
    rng = np.random.default_rng(seed)
    raw = rng.normal(scale=3.0, size=(n, 6))
    truth = softmax(raw / temperature)
    labels = (truth.cumsum(axis=1) < rng.random((n, 1))).sum(axis=1)
    return raw, np.minimum(labels, 5)


def test_temperature_scaling_finds_the_temperature_that_made_the_labels():
    raw, labels = _overconfident(40_000, seed=1, temperature=2.5)
    fitted = fit_temperature(raw, labels)
    assert fitted.temperature == pytest.approx(2.5, rel=0.05)
    assert (fitted.apply(raw).argmax(axis=1) == raw.argmax(axis=1)).all()


def test_isotonic_maps_are_monotone_and_calibrate_held_out_turns():
    raw, labels = _overconfident(20_000, seed=2)
    test_raw, test_labels = _overconfident(10_000, seed=3)
    fitted = fit_isotonic(raw, labels)
    for x, y in fitted.knots:
        assert (np.diff(x) > 0).all() and (np.diff(y) >= 0).all()
    calibrated = fitted.apply(test_raw)
    np.testing.assert_allclose(calibrated.sum(axis=1), 1.0)
    before = calibration_scores(softmax(test_raw), test_labels)["ece"]
    after = calibration_scores(calibrated, test_labels)["ece"]
    assert before > 0.1 and after < 0.03


def test_fit_calibration_scores_every_method_out_of_fold_and_keeps_the_best():
    raw, labels = _overconfident(6_000, seed=4)
    fold = np.random.default_rng(4).random(len(raw)) < 0.5
    chosen, scores = fit_calibration(raw, labels, fold)
    assert set(scores) == {"none", "temperature", "isotonic"}
    assert chosen.method == min(scores, key=lambda m: scores[m]["ece"])
    assert chosen.method != "none" and scores["none"]["ece"] > 2 * scores[chosen.method]["ece"]
    few, nothing = fit_calibration(raw[:60], labels[:60], fold[:60])
    assert few.method == "none" and nothing == {}


@pytest.mark.parametrize("fitter", [fit_temperature, fit_isotonic])
def test_json_round_trip_gives_the_same_probabilities(fitter):
    raw, labels = _overconfident(3_000, seed=5)
    fitted = fitter(raw, labels)
    stored = json.loads(json.dumps(fitted.to_json()))
    again = Calibration.from_json(stored, 6, "m")
    np.testing.assert_array_equal(again.apply(raw), fitted.apply(raw))


def test_no_calibration_is_the_softmax():
    raw, _ = _overconfident(100, seed=6)
    np.testing.assert_array_equal(Calibration.from_json(None, 6, "m").apply(raw), softmax(raw))


@pytest.mark.parametrize(
    ("stored", "message"),
    [
        ([], "must be an object"),
        ({"method": "platt"}, "method"),
        ({"method": "temperature", "temperature": "2"}, "temperature"),
        ({"method": "temperature", "temperature": 0.0}, "temperature"),
        ({"method": "isotonic", "knots": [{"x": [0, 1], "y": [0, 1]}] * 5}, "6 objects"),
        ({"method": "isotonic", "knots": [{"x": [0, 0.5], "y": [0.2, 0.1]}] * 6}, "never fall"),
        ({"method": "isotonic", "knots": [{"x": [0.5, 0.2], "y": [0, 1]}] * 6}, "rise"),
        ({"method": "isotonic", "knots": [{"x": [0, 1], "y": [0, 1.5]}] * 6}, "0..1"),
        ({"method": "isotonic", "knots": [{"x": ["a"], "y": [0]}] * 6}, "numbers"),
        ({"method": "isotonic", "knots": [{"x": [0, 1]}] * 6}, "x and y"),
    ],
)
def test_broken_calibrations_are_refused(stored, message):
    with pytest.raises(ModelError, match=message):
        Calibration.from_json(stored, 6, "bundle/metadata.json")


@given(
    st.lists(st.integers(0, len(FAILURE_POINTS) - 1), min_size=1, max_size=30),
    st.integers(0, 2**31),
)
def test_the_brier_score_is_bounded_and_zero_only_when_sure_and_right(codes, seed):
    codes = np.array(codes)
    proba = np.random.default_rng(seed).dirichlet(np.ones(len(FAILURE_POINTS)), len(codes))
    assert 0 <= brier_score(proba, codes) <= 2
    sure = np.eye(len(FAILURE_POINTS))[codes]
    assert brier_score(sure, codes) == 0
    # sure and wrong on every turn: the worst score, but bounded (log-loss would be infinite)
    assert brier_score(sure, (codes + 1) % len(FAILURE_POINTS)) == pytest.approx(2)
