"""Explanation speed: fpi's `FastExplainer` against LightGBM `pred_contrib` and `shap`.

Trains synthetic 6-class LightGBM models on 150 mixed features (numerical with NaN, zero-inflated,
categorical, counts): "large" = 300 rounds x 31 leaves (1,800 trees) and "realistic" = 150 rounds
x 15 leaves (900 trees). On the same rows it times `booster.predict(pred_contrib=True)` (all
classes, `num_threads`), `shap.TreeExplainer` (on a subsample) and fpi step by step: every class
(as pred_contrib does), then the predicted class only without and with the leaf weight tables,
then with dedupe on unique rows and on rows of which half are repeats, and `explain_top`. Checks
that fpi equals pred_contrib, then prints a table: figure, fpi, peer, ratio.

    python benchmarks/bench_explain.py [--rows 20000] [--peer-rows 600] [--threads 2] [--repeat 2]

Trained models are cached in --cache-dir (training the large one takes minutes).
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable
from pathlib import Path

import lightgbm as lgb
import numba
import numpy as np

from fpi.fastshap import FastExplainer

NUM_CLASSES = 6
NUM_FEATURES = 150
CATEGORICAL = list(range(120, 140))
MODELS = {"large": (300, 31), "realistic": (150, 15)}


def make_rows(n: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Mixed features and a noisy, non-linear 6-class label (fixed coefficients)."""
    X = rng.normal(size=(n, NUM_FEATURES))
    X[:, 100:120] = np.where(rng.random((n, 20)) < 0.5, 0.0, np.abs(X[:, 100:120]))
    X[:, 120:140] = rng.integers(0, 30, (n, 20))
    X[:, 140:150] = rng.poisson(2, (n, 10))
    X[:, :60][rng.random((n, 60)) < 0.1] = np.nan
    coef = np.random.default_rng(0)
    filled = np.nan_to_num(X)
    score = (
        filled[:, :12] @ coef.normal(size=(12, NUM_CLASSES))
        + 0.8 * np.sin(filled[:, 12:18] @ coef.normal(size=(6, NUM_CLASSES)))
        + 0.3 * (X[:, 120:126] % 7 > 3)
        + rng.normal(size=(n, NUM_CLASSES))
    )
    return X, score.argmax(axis=1)


def with_repeats(X: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Same size as X, half of the rows repeats of the other half."""
    half = X[: len(X) // 2]
    repeats = half[rng.integers(0, len(half), len(X) - len(half))]
    return rng.permutation(np.concatenate([half, repeats]))


def best_time(fn: Callable[[], object], repeat: int) -> float:
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times)


def bench_model(name: str, rounds: int, leaves: int, args: argparse.Namespace) -> list[tuple]:
    rng = np.random.default_rng(1)
    X_train, y_train = make_rows(args.train_rows, rng)
    cached = Path(args.cache_dir) / f"{name}-{rounds}x{leaves}-{args.train_rows}.txt"
    if cached.exists():
        booster = lgb.Booster(model_file=str(cached))
    else:
        params = {
            "objective": "multiclass",
            "num_class": NUM_CLASSES,
            "num_leaves": leaves,
            "learning_rate": 0.05,
            "num_threads": args.threads,
            "verbose": -1,
        }
        start = time.perf_counter()
        data = lgb.Dataset(X_train, y_train, categorical_feature=CATEGORICAL)
        booster = lgb.train(params, data, rounds)
        print(f"[{name}] trained in {time.perf_counter() - start:.0f} s, saved to {cached}")
        cached.parent.mkdir(parents=True, exist_ok=True)
        booster.save_model(str(cached))

    X, _ = make_rows(args.rows, rng)
    X_repeats = with_repeats(X, rng)
    classes = booster.predict(X, num_threads=args.threads).argmax(axis=1)
    classes_repeats = booster.predict(X_repeats, num_threads=args.threads).argmax(axis=1)
    n_peer = args.peer_rows

    t_contrib = best_time(
        lambda: booster.predict(X[:n_peer], pred_contrib=True, num_threads=args.threads),
        args.repeat,
    )
    contrib = booster.predict(X[:n_peer], pred_contrib=True, num_threads=args.threads)
    peer = n_peer / t_contrib

    import shap

    n_shap = max(1, n_peer // 2)
    t_shap = best_time(
        lambda: shap.TreeExplainer(booster).shap_values(X[:n_shap]), max(1, args.repeat - 1)
    )

    FastExplainer(booster, precompute_depth=1)  # load the compiled table builder
    start = time.perf_counter()
    plain = FastExplainer(booster, precompute_depth=0)
    t_init_plain = time.perf_counter() - start
    start = time.perf_counter()
    tabled = FastExplainer(booster)
    t_init = time.perf_counter() - start
    tabled.explain_top(X[:10], classes[:10], 5)  # compile or load the numba cache

    few = X[: max(1, args.rows // 5)]  # every class is 6 passes: fewer rows

    def every_class(explainer: FastExplainer) -> None:
        for c in range(NUM_CLASSES):
            explainer.shap_values(few, np.full(len(few), c), dedupe=False)

    def rate(fn: Callable[[], object], rows: int = args.rows) -> float:
        return rows / best_time(fn, args.repeat)

    all_plain = rate(lambda: every_class(plain), len(few))
    all_tabled = rate(lambda: every_class(tabled), len(few))
    one_plain = rate(lambda: plain.shap_values(X, classes, dedupe=False))
    one_tabled = rate(lambda: tabled.shap_values(X, classes, dedupe=False))
    dedupe_unique = rate(lambda: tabled.shap_values(X, classes))
    dedupe_repeats = rate(lambda: tabled.shap_values(X_repeats, classes_repeats))
    no_dedupe_repeats = rate(lambda: tabled.shap_values(X_repeats, classes_repeats, dedupe=False))
    top = rate(lambda: tabled.explain_top(X, classes, 5))

    values = tabled.shap_values(X[:n_peer], classes[:n_peer])
    expected = contrib.reshape(n_peer, NUM_CLASSES, -1)[np.arange(n_peer), classes[:n_peer]]
    error = float(np.abs(values - expected).max())
    raw = booster.predict(X[:n_peer], raw_score=True)[np.arange(n_peer), classes[:n_peer]]
    additivity = float(np.abs(values.sum(axis=1) - raw).max())

    label = f"{name} ({booster.num_trees()} trees, {leaves} leaves)"
    vs = "pred_contrib rows/s"
    return [
        (f"{label}: every class, no tables, rows/s", all_plain, peer, vs),
        (f"{label}: every class, tables, rows/s", all_tabled, peer, vs),
        (f"{label}: predicted class, no tables, rows/s", one_plain, peer, vs),
        (f"{label}: predicted class, tables, rows/s", one_tabled, peer, vs),
        (f"{label}: + dedupe, unique rows, rows/s", dedupe_unique, one_tabled, "no dedupe"),
        (
            f"{label}: + dedupe, half repeats, rows/s",
            dedupe_repeats,
            no_dedupe_repeats,
            "no dedupe",
        ),
        (f"{label}: explain_top(k=5), rows/s", top, peer, vs),
        (f"{label}: predicted class, tables, rows/s", one_tabled, n_shap / t_shap, "shap rows/s"),
        (
            f"{label}: init s (tables: {tabled.table_bytes / 1e6:.0f} MB)",
            t_init,
            t_init_plain,
            "init s, no tables",
        ),
        (f"{label}: max |fpi - pred_contrib|, |sum - raw|", error, additivity, "additivity"),
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=20_000, help="rows explained by fpi")
    parser.add_argument("--peer-rows", type=int, default=600, help="rows for pred_contrib")
    parser.add_argument("--train-rows", type=int, default=20_000)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--repeat", type=int, default=2, help="best of this many runs")
    parser.add_argument("--models", default=",".join(MODELS), help="large,realistic")
    parser.add_argument(
        "--cache-dir", default="/tmp/fpi-bench-explain", help="trained models are kept here"
    )
    args = parser.parse_args()
    numba.set_num_threads(args.threads)

    rows = []
    for name in args.models.split(","):
        rows += bench_model(name, *MODELS[name], args)

    print("\n| figure | fpi | peer | ratio | peer is |\n|---|---:|---:|---:|---|")
    for figure, ours, peer, peer_name in rows:
        ratio = f"{ours / peer:.1f}x" if peer and "max |" not in figure else ""
        print(f"| {figure} | {number(ours)} | {number(peer)} | {ratio} | {peer_name} |")


def number(value: float) -> str:
    if value >= 100:
        return f"{value:,.0f}"
    return f"{value:.2f}" if value >= 0.01 else f"{value:.1e}"


if __name__ == "__main__":
    main()
