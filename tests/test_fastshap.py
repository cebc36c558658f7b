"""`fpi.fastshap`: exact per-class TreeSHAP, checked against LightGBM's own `pred_contrib`."""

from __future__ import annotations

import lightgbm as lgb
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from fpi.errors import ModelError
from fpi.fastshap import FastExplainer, _unique_rows, top_contributions

NUM_FEATURES = 8
CATEGORICAL = [6, 7]
TOLERANCE = 1e-6
# Values where LightGBM's decisions have special cases: NaN, +-0, zero-as-missing (|x| <= 1e-35),
# fractional, negative, huge and unseen categories.
SPECIAL = [np.nan, 0.0, -0.0, 1e-36, -1e-36, 1e-30, -0.5, -1.0, -1.5, 0.5, 2.7, 11.0, 40.0,
           1e10, -1e10, 3e9, np.inf, -np.inf]  # fmt: skip


def make_rows(n: int, rng: np.random.Generator) -> np.ndarray:
    X = rng.normal(size=(n, NUM_FEATURES))
    X[:, 2] = np.where(rng.random(n) < 0.4, 0.0, X[:, 2])
    X[:, 6] = rng.integers(0, 12, n)
    X[:, 7] = rng.integers(0, 4, n)
    X[rng.random(X.shape) < 0.1] = np.nan
    return X


def make_booster(seed: int, num_class: int, rounds: int = 12, **params) -> lgb.Booster:
    rng = np.random.default_rng(seed)
    X = make_rows(500, rng)
    filled = np.nan_to_num(X)
    signal = (filled[:, 0] > 0) + filled[:, 6] % 3 + (filled[:, 2] == 0) + (filled[:, 1] > 1)
    y = (signal + rng.integers(0, 2, len(X))).astype(int) % max(num_class, 2)
    objective = {"objective": "multiclass", "num_class": num_class} if num_class > 2 else {}
    params = {
        "objective": "binary",
        **objective,
        "num_leaves": 15,
        "min_data_in_leaf": 2,
        "min_data_per_group": 2,
        "cat_smooth": 1.0,
        "max_cat_to_onehot": 5,
        "seed": seed,
        "verbose": -1,
        "num_threads": 1,
        **params,
    }
    data = lgb.Dataset(X, y, categorical_feature=CATEGORICAL)
    return lgb.train(params, data, rounds)


def probe_rows(n: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed + 100)
    X = make_rows(n, rng)
    specials = rng.random(X.shape) < 0.15
    X[specials] = rng.choice(SPECIAL, size=specials.sum())
    return X


def contrib_of(booster: lgb.Booster, X: np.ndarray, classes: np.ndarray) -> np.ndarray:
    contrib = booster.predict(X, pred_contrib=True)
    return contrib.reshape(len(X), -1, NUM_FEATURES + 1)[np.arange(len(X)), classes]


# name -> seed, classes, parameters, the missing types its splits must use
MODELS = {
    "3 classes": (0, 3, {}, {"NaN"}),
    "4 classes, zero as missing": (1, 4, {"zero_as_missing": True}, {"Zero"}),
    "5 classes, no missing handling": (2, 5, {"use_missing": False}, {"None"}),
    "6 classes, deep": (3, 6, {"num_leaves": 31, "min_data_in_leaf": 1}, {"NaN"}),
}


@pytest.fixture(scope="module", params=list(MODELS))
def booster(request) -> lgb.Booster:
    seed, num_class, params, _ = MODELS[request.param]
    return make_booster(seed, num_class, **params)


@pytest.mark.parametrize("precompute_depth", [0, 3, 10])
def test_values_equal_pred_contrib_for_the_asked_class(booster, precompute_depth):
    explainer = FastExplainer(booster, precompute_depth=precompute_depth)
    X = probe_rows(300, seed=precompute_depth)
    classes = np.random.default_rng(7).integers(0, explainer.num_classes, len(X))

    values = explainer.shap_values(X, classes)

    assert values.shape == (len(X), NUM_FEATURES + 1)
    np.testing.assert_allclose(values, contrib_of(booster, X, classes), rtol=0, atol=TOLERANCE)


def test_models_exercise_categorical_and_missing_splits(booster, request):
    model = booster.dump_model()
    nodes = [n for tree in model["tree_info"] for n in _walk(tree["tree_structure"])]
    assert any(n.get("decision_type") == "==" for n in nodes)
    missing_types = {n["missing_type"] for n in nodes if n.get("decision_type") == "<="}
    assert MODELS[request.node.callspec.params["booster"]][3] <= missing_types
    assert max(_depth(tree["tree_structure"]) for tree in model["tree_info"]) > 3


def test_rows_sum_to_the_raw_score_of_their_class(booster):
    explainer = FastExplainer(booster)
    X = probe_rows(200, seed=1)
    classes = np.random.default_rng(1).integers(0, explainer.num_classes, len(X))

    values = explainer.shap_values(X, classes)

    raw = booster.predict(X, raw_score=True).reshape(len(X), -1)
    np.testing.assert_allclose(values.sum(axis=1), raw[np.arange(len(X)), classes], atol=1e-9)
    np.testing.assert_allclose(explainer.raw_scores(X), raw, rtol=0, atol=1e-12)


def test_dedupe_and_chunks_change_nothing(booster):
    explainer = FastExplainer(booster)
    X = probe_rows(60, seed=2)
    rows = np.random.default_rng(2).integers(0, len(X), 400)
    X, classes = X[rows], rows % explainer.num_classes  # repeated rows, some with other classes

    expected = contrib_of(booster, X, classes)
    for dedupe, chunk_rows in [(True, 32_768), (False, 32_768), (True, 7)]:
        values = explainer.shap_values(X, classes, dedupe=dedupe, chunk_rows=chunk_rows)
        np.testing.assert_allclose(values, expected, rtol=0, atol=TOLERANCE)


@pytest.fixture(scope="module")
def small() -> tuple[lgb.Booster, FastExplainer]:
    """A 3-class booster, some leaves of which are too deep for a table (precompute_depth=4)."""
    booster = make_booster(4, 3, rounds=6)
    return booster, FastExplainer(booster, precompute_depth=4)


@settings(max_examples=40, deadline=None)
@given(
    hnp.arrays(
        np.float64,
        (5, NUM_FEATURES),
        elements=st.one_of(st.sampled_from(SPECIAL), st.floats(-3, 40, allow_nan=False)),
    ),
    st.integers(0, 2),
)
def test_any_values_follow_lightgbm_decisions(small, X, cls):
    booster, explainer = small
    classes = np.full(len(X), cls)
    np.testing.assert_allclose(
        explainer.shap_values(X, classes), contrib_of(booster, X, classes), atol=TOLERANCE
    )
    np.testing.assert_array_equal(explainer.raw_scores(X), booster.predict(X, raw_score=True))


def test_rows_with_colliding_hashes_stay_apart():
    multipliers = np.random.default_rng(0).integers(1, 2**63, 3, dtype=np.uint64) | 1
    words = np.array([[5, 7], [5, 7], [5, 7]], dtype=np.uint64)
    # Row 2 differs but hashes like row 0 (wrapping arithmetic): m0*(w0 + m1) + m1*(w1 - m0).
    words[2] += np.array([multipliers[1], 0], dtype=np.uint64)
    words[2] -= np.array([0, multipliers[0]], dtype=np.uint64)
    X = words.view(np.float64)
    classes = np.zeros(3, dtype=np.int64)

    first, inverse = _unique_rows(X, classes)

    assert len(first) == 2
    np.testing.assert_array_equal(X[first][inverse].view(np.uint64), words)


def test_best_iteration_and_num_iteration_are_honoured():
    booster = make_booster(5, 3, rounds=10)
    X = probe_rows(50, seed=5)
    classes = np.arange(len(X)) % 3
    booster.best_iteration = 4
    np.testing.assert_allclose(
        FastExplainer(booster).shap_values(X, classes),
        contrib_of(booster, X, classes),
        atol=TOLERANCE,
    )
    third = booster.predict(X, pred_contrib=True, num_iteration=3).reshape(len(X), 3, -1)
    np.testing.assert_allclose(
        FastExplainer(booster, num_iteration=3).shap_values(X, classes),
        third[np.arange(len(X)), classes],
        atol=TOLERANCE,
    )


@pytest.mark.parametrize("objective", ["binary", "regression"])
def test_single_output_boosters_have_one_class(objective):
    booster = make_booster(6, 2, objective=objective)
    explainer = FastExplainer(booster)
    X = probe_rows(80, seed=6)
    zeros = np.zeros(len(X), dtype=int)

    assert explainer.num_classes == 1
    np.testing.assert_allclose(
        explainer.shap_values(X, zeros), booster.predict(X, pred_contrib=True), atol=TOLERANCE
    )
    with pytest.raises(ValueError, match="one class"):
        explainer.shap_values(X, zeros + 1)


def test_constant_trees_only_add_to_the_bias():
    booster = make_booster(7, 3, min_data_in_leaf=10_000)
    X = probe_rows(20, seed=7)
    classes = np.arange(len(X)) % 3
    values = FastExplainer(booster).shap_values(X, classes)
    np.testing.assert_allclose(values, contrib_of(booster, X, classes), atol=TOLERANCE)
    assert not values[:, :-1].any()


def test_unsupported_boosters_and_bad_input_are_refused(small):
    _, explainer = small
    with pytest.raises(ModelError, match="linear"):
        FastExplainer(make_booster(8, 2, objective="regression", linear_tree=True, rounds=3))
    rf = {"boosting": "rf", "bagging_freq": 1, "bagging_fraction": 0.5, "rounds": 3}
    with pytest.raises(ModelError, match="random-forest"):
        FastExplainer(make_booster(8, 3, **rf))
    with pytest.raises(ModelError, match="8 features"):
        explainer.shap_values(np.zeros((2, 5)), np.zeros(2, dtype=int))
    with pytest.raises(ValueError, match="classes"):
        explainer.shap_values(np.zeros((2, NUM_FEATURES)), np.array([0, 3]))
    with pytest.raises(ValueError, match="classes"):
        explainer.shap_values(np.zeros((2, NUM_FEATURES)), np.zeros(3, dtype=int))


def test_empty_input_gives_empty_output(small):
    values = small[1].shap_values(np.zeros((0, NUM_FEATURES)), np.zeros(0, dtype=int))
    assert values.shape == (0, NUM_FEATURES + 1)


def test_top_contributions_are_largest_first_with_ties_by_index():
    values = np.array([[1.0, 3.0, 3.0, -1.0, 0.5], [0.0, 0.0, -2.0, 0.0, 0.0]])

    indices, contributions = top_contributions(values, 3)

    np.testing.assert_array_equal(indices, [[1, 2, 0], [0, 1, 3]])
    np.testing.assert_array_equal(contributions, [[3.0, 3.0, 1.0], [0.0, 0.0, 0.0]])
    indices, contributions = top_contributions(values, 5)
    np.testing.assert_array_equal(indices[1], [0, 1, 3, 4, 2])
    with pytest.raises(ValueError, match="k must be"):
        top_contributions(values, 6)


def test_top_contributions_match_a_stable_sort():
    values = np.round(np.random.default_rng(9).normal(size=(200, 30)), 1)  # many ties
    order = np.argsort(-values, axis=1, kind="stable")[:, :4]

    indices, contributions = top_contributions(values, 4)

    np.testing.assert_array_equal(indices, order)
    np.testing.assert_array_equal(contributions, np.take_along_axis(values, order, axis=1))


def test_explain_top_equals_top_of_shap_values_without_the_bias(small):
    _, explainer = small
    X = probe_rows(100, seed=10)
    classes = np.arange(len(X)) % 3
    values = explainer.shap_values(X, classes)

    indices, contributions = explainer.explain_top(X, classes, 3, chunk_rows=16)

    expected_indices, expected = top_contributions(values[:, :-1], 3)
    np.testing.assert_array_equal(indices, expected_indices)
    np.testing.assert_allclose(contributions, expected, atol=1e-12)


def _walk(node: dict):
    yield node
    if "left_child" in node:
        yield from _walk(node["left_child"])
        yield from _walk(node["right_child"])


def _depth(node: dict) -> int:
    if "left_child" not in node:
        return 0
    return 1 + max(_depth(node["left_child"]), _depth(node["right_child"]))


def test_num_threads_caps_numba_during_calls_only(small, monkeypatch):
    import numba

    import fpi.fastshap

    booster, default = small
    capped = FastExplainer(booster, precompute_depth=4, num_threads=1)
    seen = []
    kernel = fpi.fastshap._shap_blocks
    monkeypatch.setattr(
        fpi.fastshap,
        "_shap_blocks",
        lambda *args: (seen.append(numba.get_num_threads()), kernel(*args)),
    )
    before = numba.get_num_threads()
    X = probe_rows(300, seed=5)
    classes = np.zeros(len(X), dtype=int)
    np.testing.assert_array_equal(capped.shap_values(X, classes), default.shap_values(X, classes))
    assert seen[0] == 1 and set(seen[1:]) == {before}
    assert numba.get_num_threads() == before
    assert FastExplainer(booster, num_threads=0).num_threads is None
