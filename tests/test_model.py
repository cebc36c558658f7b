import json

import numpy as np
import polars as pl
import pytest

from fpi.errors import ConfigError, ModelError
from fpi.featurize import CATALOG, extract_features
from fpi.metadata import check_metadata
from fpi.model import (
    class_weights,
    default_model_dir,
    dialogue_split,
    load_bundle,
    train,
)
from fpi.schema import FAILURE_POINTS, TRACE_FORMAT
from fpi.simulate import simulate


def test_split_is_by_dialogue_and_reproducible(small_traces):
    ids = small_traces.get_column("dialogue_id")
    fractions = {"train": 0.8, "valid": 0.1, "test": 0.1}
    split = dialogue_split(ids, fractions, seed=5)
    assert split.to_list() == dialogue_split(ids, fractions, seed=5).to_list()
    per_dialogue = pl.DataFrame({"d": ids, "s": split}).group_by("d").agg(pl.col("s").n_unique())
    assert per_dialogue.get_column("s").max() == 1
    shares = split.value_counts(normalize=True).to_dict(as_series=False)
    share = dict(zip(shares["split"], shares["proportion"], strict=True))
    assert 0.74 < share["train"] < 0.86
    assert split.to_list() != dialogue_split(ids, fractions, seed=6).to_list()


def test_splits_with_different_seeds_are_independent():
    # ids of one length, as real logs have: a seeded CRC-32 split them in lockstep
    ids = pl.Series([f"voip-{i:010x}-20130402" for i in range(4000)])
    outer = dialogue_split(ids, {"train": 0.8, "test": 0.2}, seed=7)
    inner = dialogue_split(ids, {"train": 0.85, "valid": 0.15}, seed=0)
    for part in ("train", "test"):
        share = (inner.filter(outer == part) == "valid").mean()
        assert 0.12 < share < 0.18, (part, share)


def test_class_weights_favour_rare_classes():
    labels = np.array([0] * 90 + [1] * 10)
    weights = class_weights(labels, 6)
    assert weights[-1] / weights[0] == pytest.approx(3.0)
    inverse = class_weights(labels, 6, "inverse")
    assert inverse[-1] / inverse[0] == pytest.approx(9.0)
    assert inverse[labels == 0].sum() == pytest.approx(inverse[labels == 1].sum())
    assert np.all(class_weights(labels, 6, "none") == 1.0)


def test_an_unknown_class_weighting_is_refused():
    with pytest.raises(ConfigError, match="unknown class weighting 'cube'"):
        class_weights(np.array([0, 1]), 6, "cube")


def test_bundle_round_trip_and_metadata(small_bundle, small_model_dir, small_traces):
    files = sorted(p.name for p in small_model_dir.iterdir())
    assert files == ["metadata.json", "model.txt", "profile.json"]
    assert (small_model_dir / "model.txt").read_text().startswith("tree")
    meta = json.loads((small_model_dir / "metadata.json").read_text())
    assert meta["classes"] == list(FAILURE_POINTS)
    assert meta["trace_format"] == TRACE_FORMAT
    assert [f["name"] for f in meta["features"]] == [f.name for f in CATALOG]
    assert meta["training"]["turns"] == len(small_traces)
    assert {"valid", "test"} <= set(meta["metrics"])
    loaded = load_bundle(small_model_dir)
    matrix = loaded.matrix(extract_features(small_traces.head(200)))
    np.testing.assert_allclose(
        loaded.predict_proba(matrix), small_bundle.predict_proba(matrix), atol=1e-12
    )


def test_training_is_deterministic_for_a_seed(small_traces):
    first = train(small_traces, rounds=5, seed=1)
    second = train(small_traces, rounds=5, seed=1)
    assert first.booster.model_to_string() == second.booster.model_to_string()


def test_without_early_stopping_every_round_is_kept(small_traces):
    # a learning rate this high overfits within a few rounds: early stopping ends sooner
    fast = {"learning_rate": 1.0, "min_data_in_leaf": 2}
    stopped = train(small_traces, rounds=120, params=fast)
    kept = train(small_traces, rounds=120, params=fast, early_stopping=False)
    assert stopped.booster.current_iteration() < 120
    assert kept.booster.current_iteration() == 120
    assert kept.metadata["params"]["early_stopping"] is False
    assert check_metadata(kept.metadata, "kept") is None


def test_a_bag_averages_its_members_into_one_explainable_model(small_traces, tmp_path):
    fixed = {"early_stopping": False, "rounds": 6}
    single = train(small_traces, **fixed)
    bagged = train(small_traces, **fixed, bag=3)
    assert bagged.metadata["params"]["bag"] == 3
    assert bagged.booster.current_iteration() == 3 * 6  # the members side by side
    matrix = bagged.matrix(extract_features(small_traces.head(300)))
    raw = bagged.booster.predict(matrix, raw_score=True)
    assert not np.allclose(raw, single.booster.predict(matrix, raw_score=True))
    # its first member is the single fit (same seed): a third of the bag's first trees
    first_trees = bagged.booster.predict(matrix, raw_score=True, num_iteration=6)
    assert np.allclose(first_trees, single.booster.predict(matrix, raw_score=True) / 3)
    loaded = load_bundle(bagged.save(tmp_path / "bag"))  # LightGBM text + metadata, checked
    assert loaded.metadata["params"]["bag"] == 3
    assert np.allclose(loaded.predictor.raw_scores(matrix), raw)  # triage's compiled scorer
    classes = raw.argmax(axis=1)
    contributions = loaded.explainer.shap_values(matrix, classes)
    assert np.allclose(contributions.sum(axis=1), raw[np.arange(len(raw)), classes])
    with pytest.raises(ModelError, match="bag"):
        train(small_traces, rounds=2, bag=0)


def test_unseen_categories_become_missing(small_bundle):
    unseen = simulate(3_000, seed=9, scenario="newdomain")
    features = extract_features(unseen)
    known = next(f for f in small_bundle.metadata["features"] if f["name"] == "nlu__domain")
    new_rows = (
        ~features.get_column("nlu__domain").is_in(known["categories"])
        & features.get_column("nlu__domain").is_not_null()
    )
    assert new_rows.any(), "the newdomain scenario must bring domains the model never saw"
    matrix = small_bundle.matrix(features)
    column = small_bundle.feature_names.index("nlu__domain")
    assert np.isnan(matrix[new_rows.to_numpy(), column]).all()
    seen_rows = (~new_rows & features.get_column("nlu__domain").is_not_null()).to_numpy()
    codes = matrix[seen_rows, column]
    assert not np.isnan(codes).any()
    # the codes come from the bundle, not from this frame: same value, same code everywhere
    values = features.get_column("nlu__domain").to_numpy()[seen_rows]
    for value in set(values.tolist()):
        assert set(codes[values == value].tolist()) == {float(known["categories"].index(value))}


def test_incompatible_bundles_fail_clearly(small_model_dir, tmp_path):
    meta = json.loads((small_model_dir / "metadata.json").read_text())
    with pytest.raises(ModelError, match="no model bundle"):
        load_bundle(tmp_path)
    renamed = {
        **meta,
        "features": [{**meta["features"][0], "name": "asr__gone"}, *meta["features"][1:]],
    }
    with pytest.raises(ModelError, match="asr__gone"):
        check_metadata(renamed, "m")
    with pytest.raises(ModelError, match="trace"):
        check_metadata({**meta, "trace_format": "fpi-trace/0"}, "m")
    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "metadata.json").write_text(json.dumps(meta))
    (broken / "model.txt").write_text("not a model")
    with pytest.raises(ModelError, match=r"model\.txt"):
        load_bundle(broken)


def test_bundled_model_matches_the_feature_catalogue():
    bundle = load_bundle(default_model_dir())
    assert bundle.feature_names == [f.name for f in CATALOG]
    assert bundle.booster.num_feature() == len(CATALOG)


def test_training_needs_labels(small_traces):
    unlabelled = small_traces.head(500).with_columns(
        pl.lit(None)
        .alias("label")
        .cast(pl.Struct({"failure_point": pl.String, "source": pl.String}))
    )
    with pytest.raises(ModelError, match="label"):
        train(unlabelled, rounds=2)


def test_ablation_leaves_a_stage_out(small_traces):
    bundle = train(small_traces, rounds=10, without_stages=("context",))
    unused = {f["name"] for f in bundle.metadata["features"] if not f["used"]}
    assert unused == {f.name for f in CATALOG if f.stage == "context"}
    importance = dict(
        zip(bundle.feature_names, bundle.booster.feature_importance("split"), strict=True)
    )
    assert all(importance[name] == 0 for name in unused)
    matrix = bundle.matrix(extract_features(small_traces.head(50)))
    columns = [bundle.feature_names.index(n) for n in unused]
    assert np.isnan(matrix[:, columns]).all()
    with pytest.raises(ModelError, match="stage"):
        train(small_traces, rounds=2, without_stages=("nope",))
