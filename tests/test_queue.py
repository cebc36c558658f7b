"""The review queue: determinism, never a labelled turn, per-dialogue cap, class coverage."""

from __future__ import annotations

import numpy as np
import polars as pl
import pytest

from fpi.queue import (
    COVERAGE_ENOUGH,
    MAX_PER_DIALOGUE,
    QUEUE_SCHEMA,
    coverage_seats,
    kmeans,
    leaf_proximity,
    next_turns,
)
from fpi.schema import FAILURE_POINTS


@pytest.fixture(scope="module")
def pool(small_traces):
    return small_traces.head(1_500)


def test_active_queue_is_deterministic_and_shaped(pool, small_bundle):
    first = next_turns(pool, small_bundle, labelled=[], n=40, seed=3)
    again = next_turns(pool, small_bundle, labelled=[], n=40, seed=3)
    assert first.schema == QUEUE_SCHEMA and first.height == 40
    assert first.equals(again)
    assert first.get_column("turn_id").n_unique() == 40
    assert first.get_column("why").str.len_chars().min() > 0


def test_labelled_turns_never_come_back(pool, small_bundle):
    labelled = set(pool.get_column("turn_id").head(1_200).to_list())
    for strategy in ("active", "random", "dialogues"):
        queue = next_turns(pool, small_bundle, labelled=labelled, n=100, strategy=strategy)
        assert not set(queue.get_column("turn_id")) & labelled
        assert queue.height == 100


def test_active_keeps_random_seats_for_exploration(pool, small_bundle):
    from fpi.queue import EXPLORE_SHARE

    queue = next_turns(pool, small_bundle, labelled=[], n=50, seed=0)
    explored = queue.filter(pl.col("why").str.starts_with("random turn"))
    assert 0 < explored.height <= int(50 * EXPLORE_SHARE)
    # the seat says how each turn was chosen: the random ones and only they are `random`
    assert explored.get_column("seat").to_list() == ["random"] * explored.height
    rest = queue.filter(~pl.col("why").str.starts_with("random turn")).get_column("seat")
    assert rest.to_list() == ["model"] * rest.len()


def test_baseline_strategies_record_their_seats(pool, small_bundle):
    for strategy, seat in (("random", "random"), ("dialogues", "dialogue")):
        queue = next_turns(pool, small_bundle, labelled=[], n=30, strategy=strategy, seed=1)
        assert queue.get_column("seat").to_list() == [seat] * 30


def test_active_caps_turns_per_dialogue(pool, small_bundle):
    queue = next_turns(pool, small_bundle, labelled=[], n=60, seed=0)
    assert queue.group_by("dialogue_id").len().get_column("len").max() <= MAX_PER_DIALOGUE


def test_rare_predicted_classes_get_seats(pool, small_bundle):
    from fpi.featurize import extract_features

    proba = small_bundle.predict_proba(small_bundle.matrix(extract_features(pool)))
    predicted = proba.argmax(axis=1)
    rarest = int(np.bincount(predicted, minlength=6).argmin())
    queue = next_turns(pool, small_bundle, labelled=[], n=50, seed=0)
    seats = queue.filter(pl.col("why").str.starts_with("class coverage"))
    assert seats.height >= 6  # every class the model thinks possible is represented
    # the rarest predicted class's seats go to the turns most likely of it, which a pure
    # uncertainty ranking of the same size would mostly pass over
    from fpi.queue import uncertainty

    name = FAILURE_POINTS[rarest]
    mine = queue.filter(pl.col("why").str.starts_with(f"class coverage: p({name})"))
    assert mine.height >= 1
    chosen = pool.with_row_index("i").join(mine, on="turn_id").get_column("i").to_numpy()
    by_uncertainty = np.argsort(-uncertainty(proba)[0])[:50]
    assert proba[chosen, rarest].mean() > proba[by_uncertainty, rarest].mean()


def test_coverage_seats_favour_classes_with_few_labels():
    proba = np.full((10, 6), 0.25)
    seats = coverage_seats(proba, {"correct": 12, "asr": 3}, 30)
    assert seats[0] < seats[2]  # correct (12 labels) < asr (3)
    assert list(seats)[-1] == 0  # the class with most labels is served last
    enough = coverage_seats(proba, {"correct": COVERAGE_ENOUGH, "asr": 3}, 30)
    assert 0 not in enough and enough.keys() == set(range(1, 6))
    assert coverage_seats(np.eye(6)[[0, 0, 0]] * 0.99 + 0.001, None, 12).keys() == {0}


def test_random_strategies_differ_by_seed_and_dialogues_come_whole(pool, small_bundle):
    a = next_turns(pool, small_bundle, labelled=[], n=30, strategy="random", seed=1)
    b = next_turns(pool, small_bundle, labelled=[], n=30, strategy="random", seed=2)
    assert set(a.get_column("turn_id")) != set(b.get_column("turn_id"))
    whole = next_turns(pool, small_bundle, labelled=[], n=30, strategy="dialogues", seed=1)
    sizes = pool.group_by("dialogue_id").len()
    counts = whole.group_by("dialogue_id").len().join(sizes, on="dialogue_id")
    assert (counts.get_column("len") == counts.get_column("len_right")).sum() >= counts.height - 1


def test_unknown_strategy_and_empty_pool(pool, small_bundle):
    with pytest.raises(ValueError, match="unknown queue strategy"):
        next_turns(pool, small_bundle, labelled=[], n=5, strategy="greedy")
    everything = pool.get_column("turn_id").to_list()
    assert next_turns(pool, small_bundle, labelled=everything, n=5).is_empty()


def test_kmeans_separates_obvious_clusters():
    rng = np.random.default_rng(0)
    points = np.vstack([rng.normal(0, 0.1, (20, 2)), rng.normal(5, 0.1, (20, 2))])
    labels = kmeans(points, 2, seed=0)
    assert len(set(labels[:20])) == 1 and len(set(labels[20:])) == 1 and labels[0] != labels[-1]


def _gold(traces: pl.DataFrame) -> np.ndarray:
    return traces.get_column("label").struct.field("failure_point").to_numpy()


def test_labelled_rare_turns_get_their_nearest_neighbours_seated(pool, small_bundle):
    from fpi.featurize import extract_features

    gold = _gold(pool)
    ids = pool.get_column("turn_id").to_numpy()
    counts = {c: int((gold == c).sum()) for c in np.unique(gold)}
    rare = min(counts, key=counts.get)
    examples = np.flatnonzero(gold == rare)[:3]
    common = np.flatnonzero(gold == "correct")[:30]
    labels = {ids[i]: gold[i] for i in [*examples, *common]}
    queue = next_turns(pool, small_bundle, labelled=labels, n=100, seed=0)
    near = queue.filter(pl.col("why").str.starts_with(f"class coverage: near labelled {rare}"))
    assert near.height >= 2 and not set(queue.get_column("turn_id")) & set(labels)
    # they are the open turns that share most leaves with a labelled example (none of a
    # dialogue already full)
    matrix = small_bundle.matrix(extract_features(pool))
    (proximity,) = leaf_proximity(small_bundle.booster, matrix, [matrix[examples]])
    proximity[[*examples, *common]] = -1.0
    nearest = set(ids[np.argsort(-proximity, kind="stable")[: 3 * near.height]])
    assert set(near.get_column("turn_id")) <= nearest
    # without the labels' classes the queue has no neighbours to look for
    plain = next_turns(pool, small_bundle, labelled=set(labels), n=100, seed=0)
    assert not plain.get_column("why").str.contains("near labelled").any()


def test_leaf_proximity_is_the_largest_share_of_shared_leaves(small_bundle, monkeypatch):
    monkeypatch.setattr("fpi.queue.LEAF_CHUNK", 64)  # 300 rows: five chunks
    rng = np.random.default_rng(0)
    matrix = rng.normal(size=(300, len(small_bundle.feature_names)))
    proximity, around_5 = leaf_proximity(
        small_bundle.booster, matrix, [matrix[[3, 7]], matrix[[5]]]
    )
    assert proximity[3] == proximity[7] == 1.0 and ((proximity >= 0) & (proximity <= 1)).all()
    leaves = small_bundle.booster.predict(matrix, pred_leaf=True)
    expected = np.maximum((leaves == leaves[3]).mean(axis=1), (leaves == leaves[7]).mean(axis=1))
    np.testing.assert_allclose(proximity, expected)
    np.testing.assert_allclose(around_5, (leaves == leaves[5]).mean(axis=1))  # each set its own


def test_a_mapping_of_labels_counts_like_the_bundles_label_counts(pool, small_bundle):
    ids = pool.get_column("turn_id").to_list()
    # skipped turns (None) are excluded but count for no class
    labels = dict.fromkeys(ids[:10]) | {t: "correct" for t in ids[10:15]}
    queue = next_turns(pool, small_bundle, labelled=labels, n=30, seed=1)
    assert queue.height == 30 and not set(queue.get_column("turn_id")) & set(ids[:15])
    assert queue.get_column("why").str.contains("near labelled correct").any()
