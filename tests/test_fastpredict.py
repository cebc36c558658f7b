import lightgbm as lgb
import numpy as np
import pytest

from fpi.calibration import softmax
from fpi.fastpredict import FastPredictor
from fpi.fastshap import FastExplainer
from fpi.featurize import extract_features


def test_bundle_scores_are_lightgbms_bit_for_bit(small_traces, small_bundle):
    matrix = small_bundle.matrix(extract_features(small_traces))
    assert np.isnan(matrix).any()
    predictor = FastPredictor(small_bundle.explainer)
    expected = small_bundle.booster.predict(matrix, raw_score=True)
    assert np.array_equal(predictor.raw_scores(matrix), expected)
    np.testing.assert_allclose(
        softmax(predictor.raw_scores(matrix)),
        small_bundle.booster.predict(matrix),
        rtol=0,
        atol=1e-15,
    )


@pytest.fixture(scope="module", params=[100, 40])
def booster_and_rows(request):
    """Zero-as-missing and categorical splits in trees of 100 leaves (walked row by row) or 40
    (scored by leaf masks)."""
    rng = np.random.default_rng(5)
    X = rng.normal(size=(6_000, 6))
    X[:, 0][rng.random(6_000) < 0.2] = 0.0
    X[:, 1][rng.random(6_000) < 0.2] = np.nan
    X[:, 5] = rng.integers(0, 12, 6_000)
    y = (X[:, 2] + np.nan_to_num(X[:, 1]) + (X[:, 5] % 3) + rng.normal(size=6_000) > 1).astype(int)
    params = {
        "objective": "multiclass",
        "num_class": 3,
        "num_leaves": request.param,
        "min_data_in_leaf": 5,
        "zero_as_missing": True,
        "verbosity": -1,
        "num_threads": 1,
    }
    y = y + (X[:, 3] > 1)
    dataset = lgb.Dataset(X, y, categorical_feature=[5])
    return lgb.train(params, dataset, num_boost_round=6), X


def test_missing_values_unseen_categories_and_wide_trees(booster_and_rows):
    booster, X = booster_and_rows
    predictor = FastPredictor(FastExplainer(booster))
    rows = np.vstack([X[:1_000], np.full((1, X.shape[1]), np.nan), np.zeros((1, X.shape[1]))])
    rows[5, 5] = 99.0  # a category never seen in training
    rows[6, 5] = -3.0
    assert np.array_equal(predictor.raw_scores(rows), booster.predict(rows, raw_score=True))


def test_no_rows(small_bundle):
    predictor = FastPredictor(small_bundle.explainer)
    assert predictor.raw_scores(np.empty((0, predictor.num_features))).shape == (0, 6)
