"""The review queue: which unlabelled turns a person should label next.

`active` (the default) combines three things, because any one alone wastes labels:
- uncertainty: turns the current model is least sure of (small margin between its two best
  classes, high entropy) teach it most;
- diversity: at most `MAX_PER_DIALOGUE` turns of one dialogue, and the batch is spread over
  clusters of feature space (k-means over the most uncertain candidates, taken round-robin),
  so one batch is never twenty copies of the same confusion;
- class coverage: `COVERAGE_SHARE` of the batch goes to the classes with the fewest labels so
  far, so rare failure points are found at all (uncertainty alone rarely meets a 0.5% class).
  A class's seats go half to the unlabelled turns nearest its labelled examples (by the
  model's own similarity, `leaf_proximity`: the share of its trees in which a turn falls in
  the same leaf as a labelled example) and half to the turns the model thinks most likely of
  it; before a class has a label, all of its seats go by the model's probability;
- exploration: `EXPLORE_SHARE` of the batch are random unlabelled turns, so the model also
  sees typical turns of each class, not only the borders between them.
`random` draws unlabelled turns uniformly and `dialogues` draws whole random dialogues (the
baselines of the label-efficiency benchmark). Every strategy is deterministic for a seed and
never returns an already-labelled turn.

Each queued turn says how it was chosen (`seat`): `random` (a uniform draw: the `random`
strategy and the exploration seats), `dialogue` (a random dialogue) or `model` (chosen by the
model: coverage and uncertainty). `fpi adapt` judges the start model against a new fit only on
labels whose seat the model did not choose (`fpi.adapt`).
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence

import numpy as np
import polars as pl

from fpi.schema import FAILURE_POINTS

STRATEGIES = ("active", "random", "dialogues")
#: How a queued turn was chosen: a uniform draw, a random dialogue, or by the model.
SEAT_RANDOM, SEAT_DIALOGUE, SEAT_MODEL = SEATS = ("random", "dialogue", "model")
#: Most turns of one dialogue in one batch (active strategy).
MAX_PER_DIALOGUE = 2
#: Share of the batch reserved for class coverage, split evenly over the predicted classes.
COVERAGE_SHARE = 0.3
#: A class with this many labels gets no more coverage seats: on DSTC2 `result` reaches F1
#: ~0.9 with ~15 labels, and seats beyond that starved the uncertain turns (active queue at
#: 250 labels, 3 splits: macro-F1 0.574 with the cap, 0.530 without).
COVERAGE_ENOUGH = 20
#: A class gets coverage seats only if some turn is at least this likely to be of it.
COVERAGE_MIN_PROBABILITY = 0.2
#: Share of the batch drawn at random from all unlabelled turns: uncertain turns alone teach
#: the borders and starve the typical turns (DSTC2, active queue, 3 splits: macro-F1 0.585 at
#: 250 labels and 0.618 at 500 with 20% random seats, 0.552 and 0.595 without).
EXPLORE_SHARE = 0.2
#: Candidates clustered per seat: the most uncertain `CANDIDATES_PER_SEAT * n` turns.
CANDIDATES_PER_SEAT = 8
#: Dimensions the feature space is reduced to before clustering.
CLUSTER_DIMENSIONS = 12
KMEANS_ITERATIONS = 15
#: Turns whose leaves are compared at once (bounds the leaf-index matrix in memory).
LEAF_CHUNK = 4096

QUEUE_SCHEMA = pl.Schema(
    {
        "turn_id": pl.String,
        "dialogue_id": pl.String,
        "predicted": pl.String,
        "confidence": pl.Float64,
        "why": pl.String,
        "seat": pl.String,
    }
)


def uncertainty(proba: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(score, margin, normalised entropy) per row: score is the mean of 1 - margin and the
    entropy, both in [0, 1], higher = less sure."""
    ordered = np.sort(proba, axis=1)
    margin = ordered[:, -1] - ordered[:, -2]
    safe = np.clip(proba, 1e-12, 1.0)
    entropy = -(proba * np.log(safe)).sum(axis=1) / np.log(proba.shape[1])
    return 0.5 * (1.0 - margin) + 0.5 * entropy, margin, entropy


def standardised(matrix: np.ndarray) -> np.ndarray:
    """Features as a dense space: each column standardised (missing or infinite = the column's
    mean, plus whether it was missing); constant columns, and columns whose spread overflows,
    dropped."""
    values = np.where(np.isfinite(matrix), matrix, np.nan)
    missing = np.isnan(values)
    present = ~missing.all(axis=0)
    means = np.zeros(matrix.shape[1])
    means[present] = np.nanmean(values[:, present], axis=0)
    dense = np.hstack([np.where(missing, means, values), missing.astype(np.float64)])
    with np.errstate(over="ignore", invalid="ignore"):
        centre, spread = dense.mean(axis=0), dense.std(axis=0)
    # a constant column's float std can come out 1e-16 on one pass and 0.0 on the next (0/0):
    # keep the columns that vary beyond rounding, and divide by the spread they were kept for
    varies = np.isfinite(spread) & (spread > 1e-12 * np.maximum(np.abs(centre), 1.0))
    return (dense[:, varies] - centre[varies]) / spread[varies]


def embedding(matrix: np.ndarray, proba: np.ndarray, *, dimensions: int) -> np.ndarray:
    """A small dense space for clustering: the standardised features projected on their top
    principal components, next to the model's log-probabilities."""
    dense = standardised(matrix)
    if dense.shape[1] == 0:
        return np.log(np.clip(proba, 1e-6, 1.0))
    _, _, vt = np.linalg.svd(dense, full_matrices=False)
    projected = dense @ vt[:dimensions].T
    projected /= max(float(projected.std()), 1e-9)
    logp = np.log(np.clip(proba, 1e-6, 1.0))
    return np.hstack([projected, logp / max(float(logp.std()), 1e-9)])


def kmeans(points: np.ndarray, k: int, *, seed: int) -> np.ndarray:
    """Cluster labels of a small k-means (k-means++ start, fixed iterations), deterministic."""
    rng = np.random.default_rng(seed)
    k = max(1, min(k, len(points)))
    centres = [points[rng.integers(len(points))]]
    distance = ((points - centres[0]) ** 2).sum(axis=1)
    for _ in range(1, k):
        total = distance.sum()
        pick = (
            rng.choice(len(points), p=distance / total) if total > 0 else rng.integers(len(points))
        )
        centres.append(points[pick])
        distance = np.minimum(distance, ((points - points[pick]) ** 2).sum(axis=1))
    centre = np.array(centres)
    assign = np.zeros(len(points), dtype=np.int64)
    for _ in range(KMEANS_ITERATIONS):
        squared = (points**2).sum(1)[:, None] - 2 * points @ centre.T + (centre**2).sum(1)[None]
        assign = squared.argmin(axis=1)
        for j in range(k):
            members = assign == j
            if members.any():
                centre[j] = points[members].mean(axis=0)
    return assign


def next_turns(
    traces: pl.DataFrame,
    bundle,
    *,
    labelled: Collection[str] | Mapping[str, str | None],
    n: int,
    strategy: str = "active",
    seed: int = 0,
) -> pl.DataFrame:
    """The next `n` unlabelled turns to label, in queue order (`QUEUE_SCHEMA`).

    `bundle` is the current model (`fpi.model.ModelBundle`); `labelled` the turn ids already
    labelled (they never come back), or a mapping of them to their labels (None: excluded
    without a label, e.g. skipped): then the active queue also seats the turns nearest the
    labelled examples of the rarest classes."""
    from fpi.featurize import extract_features

    if strategy not in STRATEGIES:
        raise ValueError(f"unknown queue strategy {strategy!r} (one of {', '.join(STRATEGIES)})")
    classes = dict(labelled) if isinstance(labelled, Mapping) else None
    labelled = set(labelled)
    open_mask = ~traces.get_column("turn_id").is_in(list(labelled)).to_numpy()
    candidates = traces.filter(pl.Series(open_mask))
    if candidates.is_empty() or n <= 0:
        return pl.DataFrame(schema=QUEUE_SCHEMA)
    # features need whole dialogues for context, so extract on all traces and select after
    everything = bundle.matrix(extract_features(traces))
    matrix = everything[open_mask]
    proba = bundle.predict_proba(matrix)
    predicted = proba.argmax(axis=1)
    score, margin, _ = uncertainty(proba)
    dialogues = candidates.get_column("dialogue_id").to_numpy()
    rng = np.random.default_rng(seed)
    if strategy == "random":
        order = rng.permutation(len(candidates))[:n]
        why = ["random turn"] * len(order)
        seats = [SEAT_RANDOM] * len(order)
    elif strategy == "dialogues":
        order, why = _random_dialogues(dialogues, n, rng)
        seats = [SEAT_DIALOGUE] * len(order)
    else:
        if classes is None:  # an adapted bundle knows how many labels of each class it saw
            counts = bundle.metadata.get("adaptation", {}).get("label_counts")
            near = {}
        else:
            counts = {c: sum(v == c for v in classes.values()) for c in FAILURE_POINTS}
            near = _nearest_to_labelled(traces, bundle, everything, open_mask, classes)
        order, why, seats = _active(
            matrix, proba, predicted, score, margin, dialogues, n, seed, counts, near
        )
    order = np.asarray(order, dtype=np.int64)
    return pl.DataFrame(
        {
            "turn_id": candidates.get_column("turn_id").to_numpy()[order],
            "dialogue_id": dialogues[order],
            "predicted": np.asarray(FAILURE_POINTS, dtype=object)[predicted[order]],
            "confidence": proba.max(axis=1)[order],
            "why": why,
            "seat": seats,
        },
        schema=QUEUE_SCHEMA,
    )


def _random_dialogues(dialogues: np.ndarray, n: int, rng: np.random.Generator):
    unique = np.unique(dialogues)
    rng.shuffle(unique)
    rank = {d: i for i, d in enumerate(unique)}
    order = sorted(range(len(dialogues)), key=lambda i: (rank[dialogues[i]], i))[:n]
    return order, ["random dialogue"] * len(order)


def leaf_proximity(
    booster, matrix: np.ndarray, example_sets: Sequence[np.ndarray]
) -> list[np.ndarray]:
    """Per set of `examples` (rows of a matrix), per row of `matrix`: the largest share of the
    booster's trees in which the row falls in the same leaf as one of the examples (the
    model's own similarity, a random-forest proximity, which ignores the features the trees
    never split on). The rows' leaves are computed once, in chunks, for all sets."""
    if not example_sets:
        return []
    targets = [booster.predict(examples, pred_leaf=True) for examples in example_sets]
    best = [np.zeros(len(matrix)) for _ in example_sets]
    for begin in range(0, len(matrix), LEAF_CHUNK):
        leaves = booster.predict(matrix[begin : begin + LEAF_CHUNK], pred_leaf=True)
        for set_targets, set_best in zip(targets, best, strict=True):
            chunk = set_best[begin : begin + LEAF_CHUNK]
            for target in set_targets:
                np.maximum(chunk, (leaves == target).mean(axis=1), out=chunk)
    return best


def _nearest_to_labelled(
    traces: pl.DataFrame,
    bundle,
    matrix: np.ndarray,
    open_mask: np.ndarray,
    classes: Mapping[str, str | None],
) -> dict[int, np.ndarray]:
    """Per class with labelled examples that still gets coverage seats (fewer than
    `COVERAGE_ENOUGH` labels): the open turns (indices among them) nearest to any of those
    examples by `leaf_proximity` under the current model, nearest first. On DSTC2 (active
    labels of 5 splits at 250 labels, 2-5 of them `false_wake`), the 100 open turns nearest the
    labelled `false_wake` turns held 0-11 of them (23 in all) by leaf proximity, 0-4 (6) in
    the standardised feature space this replaced."""
    label_of = np.array([classes.get(t) for t in traces.get_column("turn_id")], dtype=object)
    open_matrix = matrix[open_mask]
    examples = {}
    for c, name in enumerate(FAILURE_POINTS):
        is_example = (label_of == name) & ~open_mask
        if is_example.any() and is_example.sum() < COVERAGE_ENOUGH and len(open_matrix):
            examples[c] = matrix[is_example]
    proximities = leaf_proximity(bundle.booster, open_matrix, list(examples.values()))
    return {
        c: np.argsort(-proximity, kind="stable")
        for c, proximity in zip(examples, proximities, strict=True)
    }


def coverage_seats(
    proba: np.ndarray,
    labelled_counts: dict[str, int] | None,
    total: int,
    *,
    with_examples: Collection[int] = (),
) -> dict[int, int]:
    """Seats per class for coverage: classes with fewer labels so far get more (weight
    1 / sqrt(1 + labels)); a class gets none once it has `COVERAGE_ENOUGH` labels, or if no
    candidate is at least `COVERAGE_MIN_PROBABILITY` likely to be of it and it has no
    labelled example to find neighbours of (`with_examples`). Rarest-labelled first."""
    counts = labelled_counts or {}
    possible = [
        c
        for c in range(proba.shape[1])
        if counts.get(FAILURE_POINTS[c], 0) < COVERAGE_ENOUGH
        and (c in with_examples or (proba[:, c] >= COVERAGE_MIN_PROBABILITY).any())
    ]
    if not possible or total <= 0:
        return {}
    need = {c: 1.0 / np.sqrt(1.0 + counts.get(FAILURE_POINTS[c], 0)) for c in possible}
    scale = total / sum(need.values())
    ordered = sorted(possible, key=lambda c: (counts.get(FAILURE_POINTS[c], 0), c))
    return {c: max(1, round(need[c] * scale)) for c in ordered}


def _active(matrix, proba, predicted, score, margin, dialogues, n, seed, labelled_counts, near):
    """Seats for class coverage first (half of a class's seats to the nearest neighbours of
    its labelled examples, `near`, when it has some), then the rest spread over clusters of
    the uncertain."""
    rng = np.random.default_rng(seed)
    # tiny seeded jitter breaks ties without favouring input order
    ranking = np.lexsort((rng.random(len(score)), -score))
    per_dialogue: dict[str, int] = {}
    chosen: list[int] = []
    why: list[str] = []
    seat_of: list[str] = []
    taken = np.zeros(len(score), dtype=bool)

    def take(i: int, reason: str, *, capped: bool = True, seat: str = SEAT_MODEL) -> bool:
        full = per_dialogue.get(dialogues[i], 0) >= MAX_PER_DIALOGUE
        if taken[i] or (capped and full):
            return False
        taken[i] = True
        per_dialogue[dialogues[i]] = per_dialogue.get(dialogues[i], 0) + 1
        chosen.append(i)
        seat_of.append(seat)
        top2 = np.argsort(proba[i])[::-1][:2]
        why.append(
            f"{reason}; margin {margin[i]:.2f} between "
            f"{FAILURE_POINTS[top2[0]]} and {FAILURE_POINTS[top2[1]]}"
        )
        return True

    seats_of = coverage_seats(
        proba, labelled_counts, int(n * COVERAGE_SHARE), with_examples=near.keys()
    )
    for cls, seats in seats_of.items():
        name = FAILURE_POINTS[cls]
        got = 0
        if cls in near:  # half (rounded up) to neighbours of its labelled examples
            for i in near[cls]:
                if len(chosen) >= n or got >= (seats + 1) // 2:
                    break
                got += take(int(i), f"class coverage: near labelled {name} turns")
        for i in np.argsort(-proba[:, cls], kind="stable"):
            if len(chosen) >= n or got >= seats or proba[i, cls] < COVERAGE_MIN_PROBABILITY:
                break
            got += take(int(i), f"class coverage: p({name}) = {proba[i, cls]:.2f}")
        for i in near.get(cls, ()):  # seats the probability left empty: more neighbours
            if len(chosen) >= n or got >= seats:
                break
            got += take(int(i), f"class coverage: near labelled {name} turns")
    for i in rng.permutation(len(score))[: int(n * EXPLORE_SHARE)]:
        take(int(i), "random turn (exploration)", seat=SEAT_RANDOM)
    remaining = n - len(chosen)
    if remaining > 0:
        pool = [i for i in ranking[: CANDIDATES_PER_SEAT * n * 2] if not taken[i]]
        pool = np.asarray(pool[: CANDIDATES_PER_SEAT * remaining], dtype=np.int64)
        if len(pool):
            points = embedding(matrix[pool], proba[pool], dimensions=CLUSTER_DIMENSIONS)
            clusters = kmeans(points, remaining, seed=seed)
            by_cluster: dict[int, list[int]] = {}
            for i, c in zip(pool, clusters, strict=True):  # pool is in uncertainty order
                by_cluster.setdefault(int(c), []).append(int(i))
            # clusters in order of their most uncertain member; one turn each per pass
            lanes = sorted(by_cluster.values(), key=lambda members: -score[members[0]])
            while len(chosen) < n and any(lanes):
                for lane in lanes:
                    while lane and len(chosen) < n:
                        if take(lane.pop(0), f"uncertain (cluster of {len(lanes)})"):
                            break
        for capped in (True, False):  # seats the cap left empty: then beyond the cap
            for i in ranking:
                if len(chosen) >= n:
                    break
                take(int(i), "uncertain", capped=capped)
    return chosen, why, seat_of
