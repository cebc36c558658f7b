"""The review queue: which unlabelled turns a person should label next.

`active` (the default) combines three things, because any one alone wastes labels:
- uncertainty: turns the current model is least sure of (small margin between its two best
  classes, high entropy) teach it most;
- diversity: at most `MAX_PER_DIALOGUE` turns of one dialogue, and the batch is spread over
  clusters of feature space (k-means over the most uncertain candidates, taken round-robin),
  so one batch is never twenty copies of the same confusion;
- class coverage: `COVERAGE_SHARE` of the batch goes to the turns most likely to be of each
  class, most seats to the classes with the fewest labels so far, so rare failure points are
  found at all (uncertainty alone rarely meets a 0.5% class).
`random` draws unlabelled turns uniformly and `dialogues` draws whole random dialogues (the
baselines of the label-efficiency benchmark). Every strategy is deterministic for a seed and
never returns an already-labelled turn.
"""

from __future__ import annotations

from collections.abc import Collection

import numpy as np
import polars as pl

from fpi.schema import FAILURE_POINTS

STRATEGIES = ("active", "random", "dialogues")
#: Most turns of one dialogue in one batch (active strategy).
MAX_PER_DIALOGUE = 2
#: Share of the batch reserved for class coverage, split evenly over the predicted classes.
COVERAGE_SHARE = 0.3
#: A class gets coverage seats only if some turn is at least this likely to be of it.
COVERAGE_MIN_PROBABILITY = 0.2
#: Candidates clustered per seat: the most uncertain `CANDIDATES_PER_SEAT * n` turns.
CANDIDATES_PER_SEAT = 8
#: Dimensions the feature space is reduced to before clustering.
CLUSTER_DIMENSIONS = 12
KMEANS_ITERATIONS = 15

QUEUE_SCHEMA = pl.Schema(
    {
        "turn_id": pl.String,
        "dialogue_id": pl.String,
        "predicted": pl.String,
        "confidence": pl.Float64,
        "why": pl.String,
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


def embedding(matrix: np.ndarray, proba: np.ndarray, *, dimensions: int) -> np.ndarray:
    """A small dense space for clustering: numeric features standardised (missing = mean,
    plus whether it was missing), projected on their top principal components, next to the
    model's log-probabilities."""
    missing = np.isnan(matrix)
    means = np.where(missing.all(axis=0), 0.0, np.nanmean(np.where(missing, np.nan, matrix), 0))
    filled = np.where(missing, means, matrix)
    dense = np.hstack([filled, missing.astype(np.float64)])
    dense = dense[:, dense.std(axis=0) > 0]
    if dense.shape[1] == 0:
        return np.log(np.clip(proba, 1e-6, 1.0))
    dense = (dense - dense.mean(axis=0)) / dense.std(axis=0)
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
    labelled: Collection[str],
    n: int,
    strategy: str = "active",
    seed: int = 0,
) -> pl.DataFrame:
    """The next `n` unlabelled turns to label, in queue order (`QUEUE_SCHEMA`).

    `bundle` is the current model (`fpi.model.ModelBundle`); `labelled` the turn ids already
    labelled (they never come back)."""
    from fpi.featurize import extract_features

    if strategy not in STRATEGIES:
        raise ValueError(f"unknown queue strategy {strategy!r} (one of {', '.join(STRATEGIES)})")
    labelled = set(labelled)
    open_mask = ~traces.get_column("turn_id").is_in(list(labelled)).to_numpy()
    candidates = traces.filter(pl.Series(open_mask))
    if candidates.is_empty() or n <= 0:
        return pl.DataFrame(schema=QUEUE_SCHEMA)
    # features need whole dialogues for context, so extract on all traces and select after
    matrix = bundle.matrix(extract_features(traces))[open_mask]
    proba = bundle.predict_proba(matrix)
    predicted = proba.argmax(axis=1)
    score, margin, _ = uncertainty(proba)
    dialogues = candidates.get_column("dialogue_id").to_numpy()
    rng = np.random.default_rng(seed)
    if strategy == "random":
        order = rng.permutation(len(candidates))[:n]
        why = ["random turn"] * len(order)
    elif strategy == "dialogues":
        order, why = _random_dialogues(dialogues, n, rng)
    else:
        # an adapted bundle knows how many labels of each class it was fitted on
        counts = bundle.metadata.get("adaptation", {}).get("label_counts")
        order, why = _active(matrix, proba, predicted, score, margin, dialogues, n, seed, counts)
    order = np.asarray(order, dtype=np.int64)
    return pl.DataFrame(
        {
            "turn_id": candidates.get_column("turn_id").to_numpy()[order],
            "dialogue_id": dialogues[order],
            "predicted": np.asarray(FAILURE_POINTS, dtype=object)[predicted[order]],
            "confidence": proba.max(axis=1)[order],
            "why": why,
        },
        schema=QUEUE_SCHEMA,
    )


def _random_dialogues(dialogues: np.ndarray, n: int, rng: np.random.Generator):
    unique = np.unique(dialogues)
    rng.shuffle(unique)
    rank = {d: i for i, d in enumerate(unique)}
    order = sorted(range(len(dialogues)), key=lambda i: (rank[dialogues[i]], i))[:n]
    return order, ["random dialogue"] * len(order)


def coverage_seats(
    proba: np.ndarray, labelled_counts: dict[str, int] | None, total: int
) -> dict[int, int]:
    """Seats per class for coverage: classes with fewer labels so far get more (weight
    1 / sqrt(1 + labels)); a class no candidate is at least `COVERAGE_MIN_PROBABILITY` likely
    to be gets none. Rarest-labelled first."""
    counts = labelled_counts or {}
    possible = [c for c in range(proba.shape[1]) if (proba[:, c] >= COVERAGE_MIN_PROBABILITY).any()]
    if not possible or total <= 0:
        return {}
    need = {c: 1.0 / np.sqrt(1.0 + counts.get(FAILURE_POINTS[c], 0)) for c in possible}
    scale = total / sum(need.values())
    ordered = sorted(possible, key=lambda c: (counts.get(FAILURE_POINTS[c], 0), c))
    return {c: max(1, round(need[c] * scale)) for c in ordered}


def _active(matrix, proba, predicted, score, margin, dialogues, n, seed, labelled_counts):
    """Seats for class coverage first, then the rest spread over clusters of the uncertain."""
    rng = np.random.default_rng(seed)
    # tiny seeded jitter breaks ties without favouring input order
    ranking = np.lexsort((rng.random(len(score)), -score))
    per_dialogue: dict[str, int] = {}
    chosen: list[int] = []
    why: list[str] = []
    taken = np.zeros(len(score), dtype=bool)

    def take(i: int, reason: str, *, capped: bool = True) -> bool:
        full = per_dialogue.get(dialogues[i], 0) >= MAX_PER_DIALOGUE
        if taken[i] or (capped and full):
            return False
        taken[i] = True
        per_dialogue[dialogues[i]] = per_dialogue.get(dialogues[i], 0) + 1
        chosen.append(i)
        top2 = np.argsort(proba[i])[::-1][:2]
        why.append(
            f"{reason}; margin {margin[i]:.2f} between "
            f"{FAILURE_POINTS[top2[0]]} and {FAILURE_POINTS[top2[1]]}"
        )
        return True

    for cls, seats in coverage_seats(proba, labelled_counts, int(n * COVERAGE_SHARE)).items():
        got = 0
        for i in np.argsort(-proba[:, cls], kind="stable"):
            if len(chosen) >= n or got >= seats or proba[i, cls] < COVERAGE_MIN_PROBABILITY:
                break
            got += take(int(i), f"class coverage: p({FAILURE_POINTS[cls]}) = {proba[i, cls]:.2f}")
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
    return chosen, why
