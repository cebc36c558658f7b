"""Adapting a model to a new pipeline from store labels."""

from __future__ import annotations

import numpy as np
import polars as pl
import pytest

from fpi.adapt import adapt, labelled_turns
from fpi.evaluate import classification_metrics
from fpi.featurize import extract_features
from fpi.labels import record_hash
from fpi.model import ModelBundle, load_bundle
from fpi.schema import FAILURE_POINTS


@pytest.fixture(autouse=True)
def fewer_rounds(monkeypatch):
    """60 rounds and a bag of 2 instead of 150 and 5: same code path, a faster suite."""
    monkeypatch.setattr("fpi.adapt.ROUNDS", 60)
    monkeypatch.setattr("fpi.adapt.BAG", 2)


@pytest.fixture(scope="module")
def new_pipeline():
    from fpi.simulate import simulate

    return simulate(1_600, seed=11, scenario="farfield")


def _macro_f1(bundle: ModelBundle, traces: pl.DataFrame) -> float:
    proba = bundle.predict_proba(bundle.matrix(extract_features(traces)))
    gold = traces.get_column("label").struct.field("failure_point").to_numpy()
    return classification_metrics(gold, np.asarray(FAILURE_POINTS)[proba.argmax(1)])["macro_f1"]


def _gold_labels(traces: pl.DataFrame, n: int) -> pl.DataFrame:
    rows = traces.head(n)
    return pl.DataFrame(
        {
            "turn_id": rows.get_column("turn_id"),
            "failure_point": rows.get_column("label").struct.field("failure_point"),
        }
    )


def test_no_labels_returns_the_start_model_unchanged(new_pipeline, small_model_dir):
    start = load_bundle(small_model_dir)
    adapted = adapt(new_pipeline, _gold_labels(new_pipeline, 0), start=small_model_dir)
    assert _macro_f1(adapted, new_pipeline) >= _macro_f1(start, new_pipeline)
    matrix = start.matrix(extract_features(new_pipeline))
    assert np.allclose(adapted.predict_proba(matrix), start.predict_proba(matrix))
    assert adapted.metadata["adaptation"]["labels"] == 0


def test_labels_teach_the_new_pipeline(new_pipeline, small_model_dir, tmp_path):
    train, test = new_pipeline.head(1_200), new_pipeline.tail(400)
    start = load_bundle(small_model_dir)
    adapted = adapt(train, _gold_labels(train, 600), start=start, seed=0)
    assert adapted.booster.num_model_per_iteration() == len(FAILURE_POINTS)
    meta = adapted.metadata["adaptation"]
    assert meta["labels"] == 600 and meta["labelled_turns"] == 600
    assert 0 < meta["cv_macro_f1"] <= 1 and 0 < meta["start_macro_f1_on_labels"] <= 1
    assert meta["cv_log_loss"] > 0 and meta["start_log_loss_on_labels"] > 0
    assert 0 < meta["cv_brier"] <= 2 and 0 < meta["start_brier_on_labels"] <= 2
    reloaded = load_bundle(adapted.save(tmp_path / "adapted"))
    assert _macro_f1(reloaded, test) == pytest.approx(_macro_f1(adapted, test))


def test_the_start_model_is_kept_when_it_knows_the_pipeline_better(new_pipeline, small_model_dir):
    # farfield is close to the simulator's base pipeline the start model learnt on: 150
    # labels fit from scratch are further from the right classes than the start model is
    start = load_bundle(small_model_dir)
    adapted = adapt(new_pipeline, _gold_labels(new_pipeline, 150), start=start)
    meta = adapted.metadata["adaptation"]
    assert meta["start_brier_on_labels"] < meta["cv_brier"]
    assert meta["method"].startswith("start model kept")
    assert _macro_f1(adapted, new_pipeline) == pytest.approx(_macro_f1(start, new_pipeline))


@pytest.mark.parametrize("method", ["continue", "fresh+self"])
def test_other_methods_produce_loadable_bundles(new_pipeline, small_model_dir, tmp_path, method):
    adapted = adapt(
        new_pipeline, _gold_labels(new_pipeline, 300), start=small_model_dir, method=method
    )
    reloaded = load_bundle(adapted.save(tmp_path / method))
    assert method in reloaded.metadata["adaptation"]["method"]
    proba = reloaded.predict_proba(reloaded.matrix(extract_features(new_pipeline.head(50))))
    assert proba.shape == (50, 6) and np.allclose(proba.sum(axis=1), 1)


def test_store_labels_count_annotators_and_skip_stale(new_pipeline):
    rows = new_pipeline.head(3)
    hashes = [record_hash(r) for r in rows.iter_rows(named=True)]
    labels = pl.DataFrame(
        {
            "turn_id": [*rows.get_column("turn_id"), rows.get_column("turn_id")[0]],
            "dialogue_id": [*rows.get_column("dialogue_id"), rows.get_column("dialogue_id")[0]],
            "failure_point": ["asr", "nlu", "er", "asr"],
            "annotator": ["a", "a", "a", "b"],
            "created_at": ["1", "2", "3", "4"],
            "note": [None] * 4,
            "source_path": [None] * 4,
            "record_hash": [hashes[0], hashes[1], "stale", hashes[0]],
        }
    )
    gold, counts = labelled_turns(new_pipeline, labels)
    assert counts["labels"] == 3 and counts["annotators"] == 2
    assert counts["stale_labels_ignored"] == 1 and gold.height == 2


def test_a_new_fit_is_calibrated_and_profiled(new_pipeline, tmp_path):
    from fpi.model import train
    from fpi.profile import load_profile

    # a start model that knows little (no ASR/NLU/ER/result features): the new fit must win
    weak = train(new_pipeline.tail(800), rounds=3, without_stages=("asr", "nlu", "er", "result"))
    adapted = adapt(new_pipeline, _gold_labels(new_pipeline, 600), start=weak)
    meta = adapted.metadata
    assert meta["adaptation"]["method"] == "fresh"
    assert meta["calibration"]["fitted_on"] == "out-of-fold labels"
    out = adapted.save(tmp_path / "adapted")
    assert load_profile(out) is not None
    assert load_bundle(out).calibration.method == adapted.calibration.method


def test_no_labels_returns_the_start_models_trees_exactly(new_pipeline, small_bundle):
    adapted = adapt(new_pipeline, _gold_labels(new_pipeline, 0), start=small_bundle)
    assert adapted.booster.model_to_string() == small_bundle.booster.model_to_string()
    assert adapted.metadata["calibration"] == small_bundle.metadata["calibration"]
    assert adapted.metadata.get("decision") == small_bundle.metadata.get("decision")


def test_a_new_fit_uses_the_small_data_settings(new_pipeline):
    from fpi.adapt import BAG, ROUNDS, SMALL_DATA_PARAMS
    from fpi.model import train

    weak = train(new_pipeline.tail(800), rounds=3, without_stages=("asr", "nlu", "er", "result"))
    assert weak.metadata["decision"]["chosen_on"] == "valid"  # for the start model's traffic
    adapted = adapt(new_pipeline, _gold_labels(new_pipeline, 400), start=weak)
    # the new fit's own offsets, chosen on its out-of-fold scores
    assert adapted.metadata["decision"]["chosen_on"] == "out-of-fold labels"
    params = adapted.metadata["params"]
    assert params["max_cat_to_onehot"] == SMALL_DATA_PARAMS["max_cat_to_onehot"] >= 16
    assert params["min_data_in_leaf"] == SMALL_DATA_PARAMS["min_data_in_leaf"] <= 5
    meta = adapted.metadata["adaptation"]
    assert meta["rounds"] == ROUNDS and meta["bag"] == BAG > 1
    assert adapted.booster.current_iteration() == ROUNDS * BAG  # the members side by side


def test_average_of_boosters_scores_their_mean():
    import lightgbm as lgb

    from fpi.adapt import average_of

    matrix = np.random.default_rng(0).random((300, 4))
    matrix[:, 3] = np.arange(300) % 5
    labels = (np.arange(300) * 7) % 3
    boosters = [
        lgb.train(
            {
                "objective": "multiclass",
                "num_class": 3,
                "num_leaves": 4,
                "verbosity": -1,
                "feature_fraction": 0.7,
                "min_data_in_leaf": 3,
                "seed": seed,
            },
            lgb.Dataset(matrix, labels, categorical_feature=[3]),
            num_boost_round=8,
        )
        for seed in range(3)
    ]
    mean = np.mean([b.predict(matrix, raw_score=True) for b in boosters], axis=0)
    merged = average_of(boosters)
    assert merged.num_trees() == 3 * 8 * 3
    assert np.allclose(merged.predict(matrix, raw_score=True), mean)


def test_one_turn_a_fit_is_sure_and_wrong_about_does_not_outweigh_fifty_it_gets_right():
    from fpi.adapt import judge_start_and_fit

    def sure_of_truth(p_true: float, codes: np.ndarray) -> np.ndarray:
        proba = np.full((len(codes), 6), (1 - p_true) / 5)
        proba[np.arange(len(codes)), codes] = p_true
        return proba

    codes = np.array([0] * 49 + [1])
    start = sure_of_truth(0.6, codes)  # lukewarm about every turn
    fit = sure_of_truth(0.9, codes)
    fit[-1] = [1 - 5e-10] + [1e-10] * 5  # sure of the wrong class on the last turn
    judged = judge_start_and_fit(codes, start, start.argmax(1), fit, fit.argmax(1))
    assert judged["cv_brier"] < judged["start_brier_on_labels"]  # the guard's verdict: the fit
    assert judged["cv_log_loss"] > judged["start_log_loss_on_labels"]  # log-loss: the start


def test_balanced_weights_give_every_labelled_class_the_same_total():
    from fpi.adapt import balanced_weights

    codes = np.array([0] * 90 + [2] * 9 + [5])
    weights = balanced_weights(codes)
    totals = [weights[codes == c].sum() for c in (0, 2, 5)]
    assert np.allclose(totals, totals[0]) and weights.sum() == pytest.approx(len(codes))


def test_the_start_model_is_judged_on_the_labels_the_model_did_not_choose(
    new_pipeline, small_bundle
):
    # an active queue seats the turns the start model gets wrong; judged on those it loses,
    # judged on the random seats (the start model knows farfield better) it is kept
    proba = small_bundle.predict_proba(small_bundle.matrix(extract_features(new_pipeline)))
    gold = new_pipeline.get_column("label").struct.field("failure_point").to_numpy()
    wrong = np.asarray(FAILURE_POINTS)[small_bundle.decide(proba)] != gold
    chosen = np.flatnonzero(wrong)[:100]
    random = np.setdiff1d(np.arange(len(gold)), chosen)[:60]
    rows = np.concatenate([chosen, random])
    labels = pl.DataFrame(
        {
            "turn_id": new_pipeline.get_column("turn_id").to_numpy()[rows],
            "failure_point": gold[rows],
            "seat": ["model"] * len(chosen) + ["random"] * len(random),
        }
    )
    judged_fairly = adapt(new_pipeline, labels, start=small_bundle)
    meta = judged_fairly.metadata["adaptation"]
    assert meta["judged_on"] == "60 labels the model did not choose"
    assert meta["method"].startswith("start model kept")
    # without seats, judged on the very turns it got wrong, the start model loses
    unseated = adapt(new_pipeline, labels.drop("seat").head(len(chosen)), start=small_bundle)
    assert unseated.metadata["adaptation"]["judged_on"] == "all 100 labels"
    assert unseated.metadata["adaptation"]["method"] == "fresh"


def test_a_start_model_that_does_not_fit_is_replaced_judged_on_random_seats(new_pipeline):
    from fpi.model import train

    # a start model that knows little of any pipeline, with few random seats to judge on: the
    # new fit replaces it, and it is the better model on turns neither has seen (the weak
    # model learnt on unlabelled turns of the pool, the fit on the labelled ones)
    weak = train(
        new_pipeline.slice(600, 600), rounds=3, without_stages=("asr", "nlu", "er", "result")
    )
    labels = _gold_labels(new_pipeline, 600).with_columns(
        pl.Series("seat", ["random"] * 30 + ["model"] * 570)
    )
    adapted = adapt(new_pipeline.head(1_200), labels, start=weak)
    meta = adapted.metadata["adaptation"]
    assert meta["judged_on"] == "30 labels the model did not choose"
    assert meta["cv_brier"] < meta["start_brier_on_labels"]
    assert meta["method"] == "fresh"
    unseen = new_pipeline.tail(400)
    assert _macro_f1(adapted, unseen) > _macro_f1(weak, unseen)


def test_the_same_labels_in_any_order_give_the_same_model(new_pipeline, small_bundle):
    labels = _gold_labels(new_pipeline, 300)
    shuffled = labels.sample(fraction=1.0, shuffle=True, seed=3)
    assert shuffled.get_column("turn_id").to_list() != labels.get_column("turn_id").to_list()
    first = adapt(new_pipeline, labels, start=small_bundle, seed=2)
    again = adapt(new_pipeline, shuffled, start=small_bundle, seed=2)
    assert first.booster.model_to_string() == again.booster.model_to_string()


def test_too_few_labels_to_judge_keep_the_start_model(new_pipeline, small_bundle, monkeypatch):
    def no_fit(*args, **kwargs):
        raise AssertionError("fitted with too few labels to judge the fit on")

    monkeypatch.setattr("fpi.adapt.fit_small", no_fit)
    adapted = adapt(new_pipeline, _gold_labels(new_pipeline, 15), start=small_bundle)
    assert adapted.metadata["adaptation"]["method"].startswith("start model kept (too few")
    assert adapted.booster.model_to_string() == small_bundle.booster.model_to_string()


def test_labels_of_one_dialogue_keep_the_start_model(new_pipeline, small_bundle):
    # enough labels, but no second dialogue to hold a fold out: no out-of-fold scores
    one_call = new_pipeline.head(30).with_columns(pl.lit("one-call").alias("dialogue_id"))
    adapted = adapt(one_call, _gold_labels(one_call, 30), start=small_bundle)
    assert adapted.metadata["adaptation"]["method"].startswith("start model kept (too few")
    assert adapted.booster.model_to_string() == small_bundle.booster.model_to_string()


def test_too_few_labels_the_model_did_not_choose_judge_on_all(new_pipeline, small_bundle):
    labels = _gold_labels(new_pipeline, 150).with_columns(
        pl.Series("seat", ["random"] * 10 + ["model"] * 140)
    )
    meta = adapt(new_pipeline, labels, start=small_bundle).metadata["adaptation"]
    assert meta["judged_on"] == "all 150 labels"
