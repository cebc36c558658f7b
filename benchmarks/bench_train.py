"""Training: `fpi train` on 1M simulated turns (the bar: 5 minutes on 2 cores), and what the
model's size costs in quality and in explanation speed.

Default: times `fpi train DUMP --out DIR` in a fresh process on the cached dump that
`bench_triage.py` makes (wall, CPU, peak RSS) against the 5-minute bar.

`--sweep`: trains one model per parameter set on 100k `base` turns (seed 101, as
`bench_quality.py`), evaluates macro-F1 on fresh turns (seed 202) of every scenario, and
times predict (`FastPredictor`) and explain top-5 (`FastExplainer.explain_top`) on them.
Prints a table: params, trees, macro-F1 per scenario, predict and explain rows/s.

    python benchmarks/bench_train.py [--turns 1000000] [--cache /tmp/fpi-bench]
    python benchmarks/bench_train.py --sweep [--train-turns 100000] [--test-turns 30000]
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

from bench_triage import measure, simulated_dump

BAR_SECONDS = 300
TRAIN_SEED = 101
TEST_SEED = 202
#: (learning rate, leaves, depth) per model; each trains up to 400 rounds with early stopping.
SWEEP: list[tuple[float, int, int]] = [
    (0.1, 15, 6),
    (0.2, 15, 6),
    (0.3, 15, 6),
    (0.2, 7, 3),
    (0.3, 7, 3),
    (0.2, 31, 8),
]
SWEEP_ROUNDS = 400


def rows_per_second(fn, matrix, *args) -> float:
    started = time.perf_counter()
    fn(matrix, *args)
    return len(matrix) / (time.perf_counter() - started)


def sweep(train_turns: int, test_turns: int) -> None:
    from fpi.evaluate import classification_metrics
    from fpi.fastpredict import FastPredictor
    from fpi.featurize import extract_features
    from fpi.model import DEFAULT_PARAMS, DEFAULT_ROUNDS, label_codes, train
    from fpi.simulate import SCENARIOS, simulate

    traces = simulate(train_turns, seed=TRAIN_SEED, scenario="base")
    tests = {}
    for scenario in SCENARIOS:
        test = simulate(test_turns, seed=TEST_SEED, scenario=scenario)
        tests[scenario] = (extract_features(test), label_codes(test))
    print(f"# load average {os.getloadavg()}", file=sys.stderr)
    header = ["params", "trees", "train s"] + [f"macro-F1 {s}" for s in SCENARIOS]
    print("| " + " | ".join([*header, "predict rows/s", "explain rows/s"]) + " |")
    print("|---" * (len(header) + 2) + "|")
    for rate, leaves, depth in SWEEP:
        params = {"learning_rate": rate, "num_leaves": leaves, "max_depth": depth}
        label = f"lr {rate}, {leaves} leaves, depth {depth}"
        if SWEEP_ROUNDS == DEFAULT_ROUNDS and params.items() <= DEFAULT_PARAMS.items():
            label += " (default)"
        started = time.perf_counter()
        bundle = train(traces, params=params, rounds=SWEEP_ROUNDS, seed=0)
        seconds = time.perf_counter() - started
        explainer = bundle.explainer
        predictor = FastPredictor(explainer)
        scores = []
        for features, labels in tests.values():
            predicted = predictor.predict_proba(bundle.matrix(features)).argmax(axis=1)
            scores.append(classification_metrics(labels, predicted)["macro_f1"])
        matrix = bundle.matrix(tests["base"][0])
        classes = predictor.predict_proba(matrix[:100]).argmax(axis=1)
        explainer.explain_top(matrix[:100], classes, 5)  # compile outside the timing
        predict = rows_per_second(predictor.predict_proba, matrix)
        classes = predictor.predict_proba(matrix).argmax(axis=1)
        explain = rows_per_second(explainer.explain_top, matrix, classes, 5)
        trees = bundle.booster.num_trees()
        cells = [label, f"{trees:,}", f"{seconds:.0f}", *(f"{s:.4f}" for s in scores)]
        print("| " + " | ".join([*cells, f"{predict:,.0f}", f"{explain:,.0f}"]) + " |")


def train_1m(turns: int, cache: Path) -> None:
    dump = simulated_dump(turns, cache)
    print(f"# {dump}; load average {os.getloadavg()}", file=sys.stderr)
    with tempfile.TemporaryDirectory(dir=cache) as scratch:
        out = Path(scratch) / "model"
        run = measure([sys.executable, "-m", "fpi", "train", str(dump), "--out", str(out)])
        summary = run.stdout.strip().splitlines()
    print("\n".join(f"# {line}" for line in summary))
    print(f"# load average after {os.getloadavg()}\n")
    print("| figure | fpi | peer | ratio |\n|---|---|---|---|")
    print(
        f"| `fpi train` {turns:,} turns, wall s vs the bar | {run.wall:.0f} | {BAR_SECONDS} "
        f"| {run.wall / BAR_SECONDS:.2f} |"
    )
    print(f"| CPU s (user + sys) | {run.cpu:.0f} | | |")
    print(f"| peak RSS MiB | {run.rss_mib:,.0f} | | |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--turns", type=int, default=1_000_000)
    parser.add_argument("--cache", type=Path, default=Path("/tmp/fpi-bench"))
    parser.add_argument("--sweep", action="store_true")
    parser.add_argument("--train-turns", type=int, default=100_000)
    parser.add_argument("--test-turns", type=int, default=30_000)
    args = parser.parse_args()
    if args.sweep:
        sweep(args.train_turns, args.test_turns)
    else:
        train_1m(args.turns, args.cache)


if __name__ == "__main__":
    main()
