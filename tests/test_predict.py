"""`fpi.predict`: the one prediction path, against LightGBM's own predict and pred_contrib,
and the one reason renderer that triage, explain and evaluate share."""

from __future__ import annotations

import lightgbm as lgb
import numpy as np
import polars as pl
import pytest

from fpi.calibration import fit_temperature, softmax
from fpi.errors import ModelError
from fpi.evaluate import score_traces
from fpi.explain import explain_turn
from fpi.featurize import extract_features
from fpi.model import ModelBundle
from fpi.predict import (
    decide,
    predict,
    reason_lists,
    render_values,
    shap_values,
    top_contributions,
)
from fpi.schema import FAILURE_POINTS, PROBABILITY_COLUMNS
from fpi.simulate import simulate
from fpi.triage import triage_traces

WIDE, NARROW = 4, 5  # categorical columns: 40 categories (two bitset words) and 7


def random_rows(n: int, rng: np.random.Generator) -> np.ndarray:
    X = rng.normal(size=(n, 6))
    X[:, WIDE] = rng.integers(0, 40, n)
    X[:, NARROW] = rng.integers(0, 7, n)
    X[rng.random(X.shape) < 0.15] = np.nan
    return X


def random_bundle(seed: int) -> ModelBundle:
    """A six-class booster whose labels hang on numeric, missing and categorical values."""
    rng = np.random.default_rng(seed)
    X = random_rows(3_000, rng)
    filled = np.nan_to_num(X, nan=-1.0)
    signal = (filled[:, 0] > 0) + (filled[:, WIDE] % 5 == 1) * 2 + (filled[:, NARROW] > 3)
    y = (signal + np.isnan(X[:, 1]) + rng.integers(0, 2, len(X))) % 6
    params = {
        "objective": "multiclass",
        "num_class": 6,
        "num_leaves": 12,
        "min_data_in_leaf": 5,
        "max_cat_to_onehot": 4,
        "max_cat_threshold": 64,
        "cat_smooth": 1.0,
        "seed": seed,
        "verbosity": -1,
        "num_threads": 1,
    }
    booster = lgb.train(params, lgb.Dataset(X, y, categorical_feature=[WIDE, NARROW]), 15)
    return ModelBundle(booster, {"params": {"num_threads": 1}})


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_the_path_equals_lightgbm_predict_and_pred_contrib(seed):
    bundle = random_bundle(seed)
    assert _bitset_words(bundle.booster) > 1, "a split must test categories beyond 32"
    X = random_rows(500, np.random.default_rng(seed + 10))
    X[0, WIDE], X[1, WIDE], X[2] = 77.0, -2.0, np.nan  # unseen, negative, all missing

    predictions = predict(bundle, X)

    assert np.array_equal(predictions.raw, bundle.booster.predict(X, raw_score=True))
    np.testing.assert_allclose(predictions.uncalibrated, bundle.booster.predict(X), atol=1e-12)
    np.testing.assert_array_equal(predictions.probabilities, predictions.uncalibrated)
    np.testing.assert_array_equal(predictions.predicted, predictions.probabilities.argmax(axis=1))
    contrib = bundle.booster.predict(X, pred_contrib=True).reshape(len(X), 6, -1)
    expected = contrib[np.arange(len(X)), predictions.predicted]
    values = shap_values(bundle, X, predictions.predicted)
    np.testing.assert_allclose(values, expected, atol=1e-9)
    indices, top = top_contributions(bundle, X, predictions.predicted, 3)
    np.testing.assert_allclose(top, -np.sort(-expected[:, :-1], axis=1)[:, :3], atol=1e-9)
    np.testing.assert_allclose(np.take_along_axis(expected, indices, axis=1), top, atol=1e-9)


def test_the_path_applies_the_bundles_calibration():
    bundle = random_bundle(3)
    X = random_rows(400, np.random.default_rng(4))
    raw = bundle.booster.predict(X, raw_score=True)
    calibration = fit_temperature(raw, np.random.default_rng(5).integers(0, 6, len(X)))
    assert calibration.temperature != pytest.approx(1.0)
    calibrated = ModelBundle(
        bundle.booster, {**bundle.metadata, "calibration": calibration.to_json()}
    )

    predictions = predict(calibrated, X)

    np.testing.assert_allclose(predictions.probabilities, softmax(raw / calibration.temperature))
    np.testing.assert_allclose(predictions.uncalibrated, bundle.booster.predict(X), atol=1e-12)
    np.testing.assert_allclose(predictions.probabilities.sum(axis=1), 1.0)


def test_triage_explain_and_evaluate_give_the_same_answers(small_bundle, small_traces):
    assert small_bundle.calibration.method != "none", "the fixture must exercise a calibration"
    traces = small_traces.head(600)
    triaged = triage_traces(traces, small_bundle)
    scored = score_traces(traces, small_bundle)
    expected = predict(small_bundle, small_bundle.matrix(extract_features(traces)))

    np.testing.assert_array_equal(
        triaged.select(PROBABILITY_COLUMNS).to_numpy(), expected.probabilities
    )
    assert triaged["predicted"].to_list() == scored["model"].to_list()
    np.testing.assert_array_equal(triaged["confidence"].to_numpy(), scored["confidence"].to_numpy())
    for turn_id in triaged.filter(pl.col("predicted") != "correct")["turn_id"].head(5):
        explanation = explain_turn(traces, turn_id, small_bundle)
        row = triaged.filter(pl.col("turn_id") == turn_id).row(0, named=True)
        assert explanation.predicted == row["predicted"]
        assert explanation.probabilities["asr"] == pytest.approx(row["p_asr"], abs=1e-12)
        positive = explanation.contributions.filter(pl.col("contribution") > 0).head(5)
        assert [r["text"] for r in row["reasons"]] == positive["text"].to_list()
        np.testing.assert_allclose(
            [r["contribution"] for r in row["reasons"]], positive["contribution"], atol=1e-9
        )


def test_explain_renders_an_unseen_category_as_triage_does(small_bundle):
    traces = simulate(2_000, seed=9, scenario="newdomain")
    known = next(f for f in small_bundle.metadata["features"] if f["name"] == "nlu__domain")
    unseen = traces.filter(
        ~pl.col("nlu").struct.field("domain").is_in(known["categories"])
        & pl.col("nlu").struct.field("domain").is_not_null()
    )
    turn_id = unseen["turn_id"][0]
    explanation = explain_turn(traces, turn_id, small_bundle)
    domain = explanation.contributions.filter(pl.col("feature") == "nlu__domain").row(0, named=True)
    column = small_bundle.feature_names.index("nlu__domain")
    rendered = render_values(small_bundle, np.array([column]), np.array([np.nan])).row(
        0, named=True
    )
    assert domain["value"] is None
    assert domain["text"] == rendered["text"]


def test_reasons_render_each_value_and_keep_only_positive_contributions(small_bundle):
    names = small_bundle.feature_names
    numeric = names.index("wake__detector_score")
    categorical = names.index("wake__mode")
    matrix = np.zeros((3, len(names)))
    matrix[:, numeric] = [0.256, -0.0, np.nan]
    matrix[:, categorical] = [0.0, 0.0, np.nan]
    indices = np.array([[numeric, categorical], [numeric, categorical], [numeric, categorical]])
    contributions = np.array([[0.5, 0.25], [-0.1, -0.2], [0.3, 0.1]])
    reasons = reason_lists(matrix, indices, contributions, small_bundle).to_list()
    assert [len(r) for r in reasons] == [2, 0, 2]
    first_mode = small_bundle.metadata["features"][categorical]["categories"][0]
    assert reasons[0] == [
        {
            "feature": "wake__detector_score",
            "value": "0.256",
            "contribution": 0.5,
            "text": "wake word detector score was 0.26",
        },
        {
            "feature": "wake__mode",
            "value": first_mode,
            "contribution": 0.25,
            "text": f"the wake mode was {first_mode}",
        },
    ]
    assert [r["value"] for r in reasons[2]] == [None, None]
    assert all(r["text"].endswith(": missing") for r in reasons[2])


def test_decisions_are_the_most_probable_class_unless_a_rule_is_stored():
    probabilities = np.array([[0.1, 0.6, 0.3], [0.5, 0.2, 0.3]])
    np.testing.assert_array_equal(decide(probabilities, None), [1, 0])
    with pytest.raises(ModelError, match="decision rule"):
        decide(probabilities, {"kind": "thresholds"})


def test_no_rows_give_no_predictions(small_bundle):
    predictions = predict(small_bundle, np.empty((0, len(small_bundle.feature_names))))
    assert predictions.probabilities.shape == (0, len(FAILURE_POINTS))
    assert predictions.predicted.shape == predictions.confidence.shape == (0,)


def _bitset_words(booster: lgb.Booster) -> int:
    """The most 32-bit words of any categorical split's bitset."""
    widest = 0
    for block in booster.model_to_string().split("\nTree=")[1:]:
        fields = dict(line.split("=", 1) for line in block.splitlines() if "=" in line)
        if "cat_boundaries" in fields:
            bounds = np.array(fields["cat_boundaries"].split(), dtype=int)
            widest = max(widest, int(np.diff(bounds).max()))
    return widest
