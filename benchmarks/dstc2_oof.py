"""A fast, steady measure for DSTC2 features: grouped out-of-fold macro-F1 on the training calls.

Only the calls `bench_dstc2.py` trains on (its 80% split) are read. Plain LightGBM (inverse
class weights, learning rate 0.05, `min_data_in_leaf` 10, a fixed number of rounds, argmax),
5 folds by call, several LightGBM seeds and two fold seeds; each seed's out-of-fold predictions
are pooled into one 5-class macro-F1. Prints the mean and range over seeds per fold seed, the
mean per-class F1 (and the mean of the four classes beside the rare `false_wake`, a steadier
figure) and the seeds' averaged probabilities (a bag) as one more figure.

    python benchmarks/dstc2_oof.py --traces dstc2-train.parquet [--drop NAME ...]
                                   [--seeds 4] [--fold-seeds 11 12] [--rounds 200]

`--drop` leaves catalogue features out (an ablation: measure a feature by dropping it).
"""

from __future__ import annotations

import os

os.environ.setdefault("OMP_WAIT_POLICY", "passive")

import argparse
import time
from pathlib import Path

import lightgbm as lgb
import numpy as np
import polars as pl
from bench_dstc2 import FIVE, SPLIT_SEED, call_folds, five_class

from fpi.evaluate import classification_metrics
from fpi.featurize import extract_features
from fpi.io import read_traces
from fpi.model import (
    DEFAULT_PARAMS,
    _feature_metadata,
    class_weights,
    dialogue_split,
    encode_features,
    label_codes,
)
from fpi.schema import FAILURE_POINTS

PARAMS = {**DEFAULT_PARAMS, "learning_rate": 0.05, "min_data_in_leaf": 10}


def training_calls(traces: pl.DataFrame) -> pl.DataFrame:
    """The 80% of calls `bench_dstc2.py` trains on."""
    split = dialogue_split(traces["dialogue_id"], {"train": 0.8, "test": 0.2}, seed=SPLIT_SEED)
    return traces.filter(split == "train")


def out_of_fold(
    matrix: np.ndarray,
    labels: np.ndarray,
    fold: np.ndarray,
    categorical: list[int],
    *,
    seed: int,
    rounds: int,
) -> np.ndarray:
    """Class probabilities of every turn from a model trained on the other folds."""
    proba = np.zeros((len(labels), len(FAILURE_POINTS)))
    params = {**PARAMS, "num_class": len(FAILURE_POINTS), "seed": seed}
    for k in np.unique(fold):
        held = fold == k
        data = lgb.Dataset(
            matrix[~held],
            label=labels[~held],
            weight=class_weights(labels[~held], len(FAILURE_POINTS), "inverse"),
            categorical_feature=categorical,
        )
        booster = lgb.train(params, data, num_boost_round=rounds)
        proba[held] = booster.predict(matrix[held])
    return proba


def per_class(labels: np.ndarray, proba: np.ndarray) -> dict[str, float]:
    names = np.asarray(FAILURE_POINTS)
    metrics = classification_metrics(names[labels], names[proba.argmax(axis=1)])
    return {c: metrics["per_class"][c]["f1"] for c in FIVE} | {"macro": five_class(metrics)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--traces", type=Path, required=True)
    parser.add_argument("--drop", nargs="*", default=[], help="catalogue features to leave out")
    parser.add_argument("--seeds", type=int, default=4, help="LightGBM seeds per fold seed")
    parser.add_argument("--fold-seeds", type=int, nargs="+", default=[11, 12])
    parser.add_argument("--rounds", type=int, default=200)
    args = parser.parse_args()

    traces = training_calls(read_traces([args.traces]))
    started = time.perf_counter()
    features = extract_features(traces)
    print(f"{traces.height:,} turns; features {time.perf_counter() - started:.2f} s")
    meta = _feature_metadata(features, without_stages=())
    unknown = set(args.drop) - {m["name"] for m in meta}
    if unknown:
        raise SystemExit(f"unknown features: {sorted(unknown)}")
    meta = [m for m in meta if m["name"] not in args.drop]
    matrix = encode_features(features, meta)
    categorical = [i for i, m in enumerate(meta) if m["categorical"]]
    labels = label_codes(traces)
    print(f"{len(meta)} features (dropped {len(args.drop)})")
    for fold_seed in args.fold_seeds:
        fold = call_folds(traces["dialogue_id"], 5, seed=fold_seed)
        started = time.perf_counter()
        runs = [
            out_of_fold(matrix, labels, fold, categorical, seed=s, rounds=args.rounds)
            for s in range(1, args.seeds + 1)
        ]
        scores = [per_class(labels, p) for p in runs]
        macro = [s["macro"] for s in scores]
        mean = {c: float(np.mean([s[c] for s in scores])) for c in FIVE}
        bag = per_class(labels, np.mean(runs, axis=0))["macro"]
        cells = ", ".join(f"{c} {mean[c]:.3f}" for c in FIVE)
        large = np.mean([mean[c] for c in FIVE if c != "false_wake"])
        print(
            f"fold seed {fold_seed}: macro-F1 {np.mean(macro):.4f} "
            f"({min(macro):.3f}-{max(macro):.3f} over {args.seeds} seeds; bag {bag:.3f}) "
            f"{cells}; four large classes {large:.4f} ({time.perf_counter() - started:.0f} s)",
            flush=True,
        )


if __name__ == "__main__":
    main()
