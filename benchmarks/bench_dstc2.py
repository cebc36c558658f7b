"""DSTC2 trained on its own calls: 5-class macro-F1 on held-out calls (issue 14).

Imports the DSTC2 training calls (`fpi import dstc2 ROOT --flist train`), splits them by call
80/20, chooses LightGBM parameters by grouped cross-validation on the 80% only, trains with
them (decision offsets chosen on the training part's out-of-fold predictions) and prints the
per-class table on the held-out 20%, beside always answering `correct` and the rule baseline.

    python benchmarks/bench_dstc2.py [--root /work/dstc2] [--folds 3] [--traces IMPORTED]

`--traces` reads calls imported before (the output of that import) instead of importing again.
"""

from __future__ import annotations

import os

# OpenMP threads that spin while waiting make LightGBM many times slower on a shared machine
os.environ.setdefault("OMP_WAIT_POLICY", "passive")

import argparse
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import polars as pl

from fpi.decision import DECISION_KEY, choose_offsets, decision_metadata
from fpi.evaluate import classification_metrics, rule_baseline, score_traces
from fpi.featurize import extract_features
from fpi.io import read_traces
from fpi.model import dialogue_split, label_codes, train
from fpi.schema import FAILURE_POINTS

#: DSTC2's headline classes (entity errors barely exist there).
FIVE = ("correct", "false_wake", "asr", "nlu", "result")
SPLIT_SEED = 7
#: The parameter sets the grouped cross-validation chooses from.
CANDIDATES: dict[str, dict[str, float]] = {
    "default": {},
    "small leaves": {"min_data_in_leaf": 10},
    "31 leaves, small": {"num_leaves": 31, "min_data_in_leaf": 10, "learning_rate": 0.05},
    "slow, L2 10": {
        "min_data_in_leaf": 20,
        "learning_rate": 0.05,
        "feature_fraction": 0.6,
        "lambda_l2": 10.0,
    },
    "slow, 31 leaves, L2 5": {
        "num_leaves": 31,
        "min_data_in_leaf": 20,
        "learning_rate": 0.05,
        "feature_fraction": 0.6,
        "lambda_l2": 5.0,
    },
}
#: Enough for the slower learning rates; early stopping on the validation split ends sooner.
ROUNDS = 2000


def five_class(metrics: dict) -> float:
    return float(np.mean([metrics["per_class"][c]["f1"] for c in FIVE]))


def import_train(root: Path, out: Path) -> pl.DataFrame:
    subprocess.run(
        [
            sys.executable,
            "-m",
            "fpi",
            "import",
            "dstc2",
            str(root),
            "--flist",
            "train",
            "--out",
            str(out),
        ],
        check=True,
        capture_output=True,
    )
    return read_traces([out])


def grouped_cv(traces: pl.DataFrame, params: dict, folds: int) -> tuple[float, np.ndarray]:
    """5-class macro-F1 of out-of-fold predictions (folds by call), and the out-of-fold class
    probabilities in the rows' order."""
    fold = dialogue_split(
        traces["dialogue_id"], {str(k): 1.0 / folds for k in range(folds)}, seed=SPLIT_SEED + 1
    ).to_numpy()
    proba = np.zeros((traces.height, len(FAILURE_POINTS)))
    predicted = np.empty(traces.height, dtype=object)
    for k in range(folds):
        held = fold == str(k)
        bundle = train(
            traces.filter(~held),
            params=params,
            rounds=ROUNDS,
            split_fractions={"train": 0.85, "valid": 0.15},
        )
        part = traces.filter(held)
        proba[held] = bundle.predict_proba(bundle.matrix(extract_features(part)))
        predicted[held] = score_traces(part, bundle)["model"].to_numpy()
    gold = traces["label"].struct.field("failure_point").to_list()
    return five_class(classification_metrics(gold, predicted)), proba


def call_bootstrap(
    dialogue_ids: pl.Series, gold: list, predicted: list, draws: int = 1000
) -> tuple[float, float]:
    """A 90% interval of the 5-class macro-F1 over resamplings of the held-out calls (whole
    calls drawn with replacement): how much of the figure is the luck of 305 calls."""
    calls = dialogue_ids.to_numpy()
    names, index = np.unique(calls, return_inverse=True)
    rows_of = [np.flatnonzero(index == i) for i in range(len(names))]
    gold, predicted = np.asarray(gold, dtype=object), np.asarray(predicted, dtype=object)
    rng = np.random.default_rng(SPLIT_SEED)
    scores = []
    for _ in range(draws):
        rows = np.concatenate([rows_of[i] for i in rng.integers(0, len(names), len(names))])
        scores.append(five_class(classification_metrics(gold[rows], predicted[rows])))
    low, high = np.quantile(scores, [0.05, 0.95])
    return float(low), float(high)


def _row(name: str, metrics: dict) -> str:
    cells = " | ".join(f"{metrics['per_class'][c]['f1']:.3f}" for c in FIVE)
    return f"| {name} | {metrics['accuracy']:.3f} | {five_class(metrics):.3f} | {cells} |"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--root", type=Path, default=Path("/work/dstc2"))
    parser.add_argument("--folds", type=int, default=3)
    parser.add_argument("--traces", type=Path, help="DSTC2 train calls imported before")
    args = parser.parse_args()

    if args.traces is not None:
        traces = read_traces([args.traces])
    else:
        with tempfile.TemporaryDirectory() as tmp:
            traces = import_train(args.root, Path(tmp) / "dstc2_train.jsonl.zst")
    split = dialogue_split(traces["dialogue_id"], {"train": 0.8, "test": 0.2}, seed=SPLIT_SEED)
    train_part, test = traces.filter(split == "train"), traces.filter(split == "test")
    print(
        f"{train_part['dialogue_id'].n_unique()} training calls ({train_part.height:,} turns), "
        f"{test['dialogue_id'].n_unique()} held-out calls ({test.height:,} turns)\n"
    )

    print(f"grouped {args.folds}-fold CV on the training calls (5-class macro-F1):\n")
    scores, out_of_fold = {}, {}
    for name, params in CANDIDATES.items():
        started = time.perf_counter()
        scores[name], out_of_fold[name] = grouped_cv(train_part, params, args.folds)
        print(f"- {name} {params}: {scores[name]:.3f} ({time.perf_counter() - started:.0f} s)")
    chosen = max(scores, key=scores.get)
    print(f"\nchosen: {chosen}\n")

    bundle = train(
        train_part,
        params=CANDIDATES[chosen],
        rounds=ROUNDS,
        split_fractions={"train": 0.85, "valid": 0.15},
    )
    # decision offsets from the out-of-fold predictions of the whole training part (all its
    # calls are validation data there), steadier than the one small validation split
    offsets = choose_offsets(out_of_fold[chosen], label_codes(train_part))
    bundle.metadata[DECISION_KEY] = decision_metadata(
        offsets, FAILURE_POINTS, chosen_on=f"grouped {args.folds}-fold out-of-fold predictions"
    )
    print("decision offsets:", bundle.metadata[DECISION_KEY]["offsets"], "\n")
    scored = score_traces(test, bundle)
    gold = scored["gold"].to_list()
    header = "| system | accuracy | 5-class macro-F1 | " + " | ".join(f"F1 {c}" for c in FIVE)
    print(header + " |")
    print("|---" * (3 + len(FIVE)) + "|")
    print(_row(f"fpi trained on DSTC2 ({chosen})", classification_metrics(gold, scored["model"])))
    low, high = call_bootstrap(test["dialogue_id"], gold, scored["model"].to_list())
    print(_row("rule baseline", classification_metrics(gold, rule_baseline(test).to_list())))
    print(_row("always correct", classification_metrics(gold, ["correct"] * len(gold))))
    support = {c: gold.count(c) for c in FIVE}
    print(f"\nheld-out turns per class: {support}")
    print(
        f"fpi's 5-class macro-F1, 90% interval over resampled held-out calls: {low:.3f}-{high:.3f}"
    )


if __name__ == "__main__":
    main()
