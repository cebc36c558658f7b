"""Label efficiency: how good a model of your own pipeline gets per human label (issue 13).

A simulated annotator answers every queued turn with its gold label, in rounds of at most 100
turns; after each round the model is refitted (`fpi.adapt.adapt`) and, for `active`, the next
round is chosen with it (`fpi.queue.next_turns`). Learning curves are macro-F1 on held-out
dialogues (never queued) at each budget, for three ways of choosing turns:
- `active`: `fpi queue --strategy active` with the latest adapted model;
- `random`: uniformly random turns;
- `dialogues`: whole randomly chosen dialogues (how a team usually samples).

Data: DSTC2's 1,612 training calls split by call (80% pool / 20% held out), headline = macro-F1
over correct, false_wake, asr, nlu and result; and the simulator's `newdomain` scenario (the
bundled model was trained on `base`), 6-class macro-F1.

    python benchmarks/bench_label_efficiency.py --data dstc2 --seeds 0 1 2
    python benchmarks/bench_label_efficiency.py --data newdomain --seeds 0 1 2
    python benchmarks/bench_label_efficiency.py --data dstc2 --compare-methods --budget 500
    python benchmarks/bench_label_efficiency.py --data dstc2 --all-labels --seeds 60 61

(`fpi import dstc2 /work/dstc2 --flist train --out /work/data/dstc2-train.parquet` makes the
dump `--dstc2` reads by default.)
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import polars as pl

from fpi.adapt import METHODS, adapt
from fpi.evaluate import classification_metrics
from fpi.featurize import extract_features
from fpi.model import dialogue_split, load_bundle
from fpi.queue import SEAT_RANDOM, next_turns
from fpi.schema import FAILURE_POINTS

BUDGETS = [100, 250, 500, 1000, 2000]
ROUND = 100
#: What --compare-methods measures: the adapt methods, stacking and EM priors.
COMPARED = (*METHODS, "stacked", "em")
DSTC2_CLASSES = ("correct", "false_wake", "asr", "nlu", "result")
#: Rare classes whose discovery the benchmark counts per budget.
RARE = ("false_wake", "result")


def gold(traces: pl.DataFrame) -> pl.Series:
    return traces.get_column("label").struct.field("failure_point")


def macro_f1(y_true, y_pred, classes) -> float:
    metrics = classification_metrics(y_true, y_pred)
    return float(np.mean([metrics["per_class"][c]["f1"] for c in classes]))


def score(bundle, test: pl.DataFrame, classes, *, per_class: bool = False):
    proba = bundle.predict_proba(bundle.matrix(extract_features(test)))
    # the product's prediction path: calibration, then the bundle's decision rule
    predicted = np.asarray(FAILURE_POINTS, dtype=object)[bundle.decide(proba)]
    if per_class:
        metrics = classification_metrics(gold(test).to_numpy(), predicted)["per_class"]
        return {c: round(metrics[c]["f1"], 2) for c in classes}
    return macro_f1(gold(test).to_numpy(), predicted, classes)


def load_data(name: str, dstc2_path: str, split_seed: int) -> tuple[pl.DataFrame, pl.DataFrame]:
    if name == "dstc2":
        from fpi.io import read_traces

        traces = read_traces(dstc2_path)
    else:
        from fpi.simulate import simulate

        traces = simulate(30_000, seed=303, scenario=name)
    split = dialogue_split(
        traces.get_column("dialogue_id"), {"pool": 0.8, "test": 0.2}, seed=split_seed
    )
    return traces.filter(split == "pool"), traces.filter(split == "test")


def learning_curve(
    pool: pl.DataFrame, test: pl.DataFrame, strategy: str, seed: int, classes, *, method: str
) -> tuple[dict[int, float], dict[int, dict], float]:
    """macro-F1 at each budget; per budget the class counts of the labels and the per-class
    F1; seconds spent."""
    started = time.perf_counter()
    start = load_bundle()
    model = start
    answers = dict(zip(pool.get_column("turn_id"), gold(pool), strict=True))
    labelled: dict[str, str] = {}  # what the queue is told: turn -> its label
    seats: dict[str, str] = {}  # how the queue chose each (what `fpi queue` records)
    curve, mix = {}, {}
    for budget in BUDGETS:
        while len(labelled) < budget:
            n = min(ROUND, budget - len(labelled))
            batch = next_turns(pool, model, labelled=labelled, n=n, strategy=strategy, seed=seed)
            labelled.update((t, answers[t]) for t in batch.get_column("turn_id"))
            seats.update(batch.select("turn_id", "seat").iter_rows())
            if strategy == "active":  # the queue's next round uses the refitted model
                labels = _labels(labelled, seats)
                model = adapt(pool, labels, start=start, seed=seed, method=method)
        if strategy != "active":
            model = adapt(pool, _labels(labelled, seats), start=start, seed=seed, method=method)
        curve[budget] = score(model, test, classes)
        counts = pl.Series(list(labelled.values()), dtype=pl.String).value_counts()
        judged = model.metadata.get("adaptation", {})
        mix[budget] = {
            "labels": dict(counts.iter_rows()),
            "F1": score(model, test, classes, per_class=True),
            # the guard's verdict: a new fit, or the start model kept (and why)
            "model": judged.get("method", "start"),
            "Brier / log-loss, start / fit": [
                round(judged[k], 3)
                for k in (
                    "start_brier_on_labels",
                    "cv_brier",
                    "start_log_loss_on_labels",
                    "cv_log_loss",
                )
                if k in judged
            ],
        }
    return curve, mix, time.perf_counter() - started


def _labels(labelled: dict[str, str], seats: dict[str, str] | None = None) -> pl.DataFrame:
    """Bare label rows (turn_id, failure_point, seat) as `fpi.adapt.adapt` reads them."""
    seats = seats or {}
    return pl.DataFrame(
        {
            "turn_id": list(labelled),
            "failure_point": list(labelled.values()),
            "seat": [seats.get(t) for t in labelled],
        },
        schema={"turn_id": pl.String, "failure_point": pl.String, "seat": pl.String},
    )


def all_labels(pool, test, classes, *, seed: int) -> tuple[float, dict]:
    """The recipe's ceiling: `fpi adapt` on every pool turn's gold label (all random seats),
    held-out macro-F1 and per-class F1."""
    labels = _labels(
        dict(zip(pool.get_column("turn_id"), gold(pool), strict=True)),
        dict.fromkeys(pool.get_column("turn_id"), SEAT_RANDOM),
    )
    model = adapt(pool, labels, start=load_bundle(), seed=seed)
    return score(model, test, classes), score(model, test, classes, per_class=True)


def compare_methods(pool, test, classes, *, budget: int, seed: int, methods=COMPARED) -> None:
    """Every adapt method (and two that cannot be a plain bundle) on the same label sets."""
    start = load_bundle()
    answers = dict(zip(pool.get_column("turn_id"), gold(pool), strict=True))
    print(f"\n### adapt methods at {budget} labels (seed {seed}); held-out macro-F1\n")
    print("| method | random turns | active queue |")
    print("|---|---|---|")
    label_sets = {}
    for strategy in ("random", "active"):
        labelled: dict[str, str] = {}
        seats: dict[str, str] = {}
        model = start
        while len(labelled) < budget:
            n = min(ROUND, budget - len(labelled))
            batch = next_turns(pool, model, labelled=labelled, n=n, strategy=strategy, seed=seed)
            labelled.update((t, answers[t]) for t in batch.get_column("turn_id"))
            seats.update(batch.select("turn_id", "seat").iter_rows())
            if strategy == "active":
                model = adapt(pool, _labels(labelled, seats), start=start, seed=seed)
        label_sets[strategy] = _labels(labelled, seats)
    print(f"| start model, no labels | {score(start, test, classes):.3f} | |")
    for method in [m for m in methods if m in METHODS]:
        cells = []
        for labels in label_sets.values():
            began = time.perf_counter()
            bundle = adapt(pool, labels, start=start, seed=seed, method=method)
            cells.append(
                f"{score(bundle, test, classes):.3f} ({time.perf_counter() - began:.1f} s)"
            )
        print(f"| {method} | {' | '.join(cells)} |")
    if "stacked" in methods:
        cells = [
            f"{_stacked(pool, test, labels, start, seed, classes):.3f}"
            for labels in label_sets.values()
        ]
        print(f"| fresh + start model's probabilities as features | {' | '.join(cells)} |")
    if "em" not in methods:
        return
    cells = []
    for labels in label_sets.values():
        bundle = adapt(pool, labels, start=start, seed=seed)
        cells.append(f"{_em_priors(bundle, pool, test, classes, labels):.3f}")
    print(f"| fresh, then EM prior re-estimation (Saerens 2002) | {' | '.join(cells)} |")
    no_labels = _em_priors(start, pool, test, classes)
    print(f"| EM priors on the start model, no labels | {no_labels:.3f} | |")


def _stacked(pool, test, labels, start, seed, classes) -> float:
    """A fresh model whose features include the start model's class probabilities."""
    import lightgbm as lgb

    from fpi.adapt import ROUNDS, SMALL_DATA_PARAMS, balanced_weights, feature_metadata_from
    from fpi.model import encode_features

    features = extract_features(pool)
    meta = feature_metadata_from(features)

    def matrix(frame_features):
        own = encode_features(frame_features, meta)
        prior = start.predict_proba(start.matrix(frame_features))
        return np.hstack([own, prior])

    rows = features.select("turn_id").with_row_index("r").join(labels, on="turn_id")
    codes = (
        rows.get_column("failure_point")
        .replace_strict({c: i for i, c in enumerate(FAILURE_POINTS)})
        .to_numpy()
    )
    x = matrix(features)[rows.get_column("r").to_numpy()]
    categorical = [i for i, f in enumerate(meta) if f["categorical"]]
    booster = lgb.train(
        {**SMALL_DATA_PARAMS, "num_class": len(FAILURE_POINTS), "seed": seed},
        lgb.Dataset(
            x,
            label=codes,
            weight=balanced_weights(codes),
            categorical_feature=categorical,
            params={"min_data_in_bin": 1},
        ),
        num_boost_round=ROUNDS,
    )
    proba = booster.predict(matrix(extract_features(test)))
    predicted = np.asarray(FAILURE_POINTS, dtype=object)[proba.argmax(axis=1)]
    return macro_f1(gold(test).to_numpy(), predicted, classes)


def em_priors(proba: np.ndarray, train_priors: np.ndarray, iterations: int = 200) -> np.ndarray:
    """Saerens et al. (2002): the class priors of new traffic, estimated by EM from the
    model's posteriors alone (no labels)."""
    priors = train_priors.copy()
    for _ in range(iterations):
        adjusted = proba * (priors / train_priors)
        adjusted /= adjusted.sum(axis=1, keepdims=True)
        new = adjusted.mean(axis=0)
        if np.abs(new - priors).max() < 1e-6:
            break
        priors = new
    return priors


def _em_priors(bundle, pool, test, classes, labels=None) -> float:
    """Priors re-estimated on the unlabelled pool, applied to the held-out turns. The model's
    own prior is its mean posterior on the turns it was fitted on (class weights included):
    the labelled turns, or for the start model sqrt-weighted simulator counts."""
    pool_proba = bundle.predict_proba(bundle.matrix(extract_features(pool)))
    if labels is not None:
        fitted = pool.with_row_index("i").join(labels, on="turn_id").get_column("i").to_numpy()
        train_priors = pool_proba[fitted].mean(axis=0)
    else:
        counts = bundle.metadata["training"]["label_counts"]
        train_priors = np.sqrt([max(counts.get(c, 0), 1) for c in FAILURE_POINTS])
        train_priors = train_priors / train_priors.sum()
    train_priors = np.clip(train_priors, 1e-6, None)
    priors = em_priors(pool_proba, train_priors)
    proba = bundle.predict_proba(bundle.matrix(extract_features(test))) * (priors / train_priors)
    predicted = np.asarray(FAILURE_POINTS, dtype=object)[proba.argmax(axis=1)]
    return macro_f1(gold(test).to_numpy(), predicted, classes)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", choices=["dstc2", "newdomain", "farfield"], default="dstc2")
    parser.add_argument(
        "--dstc2", default="/work/data/dstc2-train.parquet", help="imported DSTC2 train dump"
    )
    parser.add_argument("--seeds", type=int, nargs="+", default=[0])
    parser.add_argument("--strategies", nargs="+", default=["active", "random", "dialogues"])
    parser.add_argument("--method", choices=METHODS, default="fresh")
    parser.add_argument("--compare-methods", action="store_true")
    parser.add_argument("--budget", type=int, default=500, help="labels for --compare-methods")
    parser.add_argument("--methods", nargs="+", choices=COMPARED, default=list(COMPARED))
    parser.add_argument("--budgets", type=int, nargs="+", default=list(BUDGETS))
    parser.add_argument(
        "--all-labels", action="store_true", help="adapt on every pool label (the ceiling)"
    )
    args = parser.parse_args()
    BUDGETS[:] = args.budgets

    classes = DSTC2_CLASSES if args.data == "dstc2" else FAILURE_POINTS
    if args.all_labels:
        scores = []
        for seed in args.seeds:
            pool, test = load_data(args.data, args.dstc2, split_seed=seed)
            macro, per_class = all_labels(pool, test, classes, seed=seed)
            scores.append(macro)
            print(f"seed {seed}: {pool.height:,} pool labels {macro:.3f} {per_class}", flush=True)
        print(f"\nall pool labels, seeds {args.seeds}: {_spread(scores)}")
        return
    if args.compare_methods:
        pool, test = load_data(args.data, args.dstc2, split_seed=args.seeds[0])
        compare_methods(
            pool, test, classes, budget=args.budget, seed=args.seeds[0], methods=args.methods
        )
        return
    results: dict[str, list[dict[int, float]]] = {s: [] for s in args.strategies}
    found: dict[str, list[dict[int, dict]]] = {s: [] for s in args.strategies}
    zero: list[tuple[float, float]] = []
    rare = [c for c in RARE if c in classes]
    began = time.perf_counter()
    for seed in args.seeds:
        pool, test = load_data(args.data, args.dstc2, split_seed=seed)
        print(
            f"seed {seed}: pool {pool.height:,} turns, held out {test.height:,} turns "
            f"({test.get_column('dialogue_id').n_unique():,} dialogues)",
            flush=True,
        )
        start = load_bundle()
        empty = pl.DataFrame(schema={"turn_id": pl.String, "failure_point": pl.String})
        zero.append(
            (score(start, test, classes), score(adapt(pool, empty, start=start), test, classes))
        )
        print(f"  0 labels: start model {zero[-1][0]:.3f}, adapt {zero[-1][1]:.3f}", flush=True)
        for strategy in args.strategies:
            curve, mix, seconds = learning_curve(
                pool, test, strategy, seed, classes, method=args.method
            )
            results[strategy].append(curve)
            found[strategy].append({b: m["labels"] for b, m in mix.items()})
            print(
                f"  {strategy:9s} {seconds:6.1f} s  "
                + "  ".join(f"{b}:{v:.3f}" for b, v in curve.items()),
                flush=True,
            )
            for budget, counts in mix.items():
                print(f"            at {budget}: {counts}", flush=True)
    names = ", ".join(classes)
    minutes = (time.perf_counter() - began) / 60
    print(
        f"\n### {args.data}: held-out macro-F1 ({names}); mean ± standard deviation over "
        f"seeds {args.seeds} ({minutes:.1f} min)\n"
    )
    print("| strategy | 0 labels | " + " | ".join(f"{b} labels" for b in BUDGETS) + " |")
    print("|---" * (len(BUDGETS) + 2) + "|")
    start_mean, adapt_mean = np.mean(zero, axis=0)
    print(f"| start model / `adapt` with 0 labels | {start_mean:.3f} / {adapt_mean:.3f} |")
    for strategy, curves in results.items():
        cells = [_spread([c[b] for c in curves]) for b in BUDGETS]
        print(f"| {strategy} | | " + " | ".join(cells) + " |")
    print(f"\n{', '.join(rare)} turns among the labels (mean over seeds; in the pool: ", end="")
    print(", ".join(f"{c} {_pool_share(args, c):.2%}" for c in rare) + ")\n")
    print("| strategy | " + " | ".join(f"{b} labels" for b in BUDGETS) + " |")
    print("|---" * (len(BUDGETS) + 1) + "|")
    for strategy, per_seed in found.items():
        cells = [
            " / ".join(f"{np.mean([m[b].get(c, 0) for m in per_seed]):.1f}" for c in rare)
            for b in BUDGETS
        ]
        print(f"| {strategy} | " + " | ".join(cells) + " |")


def _spread(values: list[float]) -> str:
    return (
        f"{np.mean(values):.3f} ± {np.std(values):.3f}" if len(values) > 1 else f"{values[0]:.3f}"
    )


def _pool_share(args, name: str) -> float:
    pool, _ = load_data(args.data, args.dstc2, split_seed=args.seeds[0])
    return float((gold(pool) == name).mean())


if __name__ == "__main__":
    main()
