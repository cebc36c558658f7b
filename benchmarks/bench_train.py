"""Training: `fpi train` on 1M simulated turns (the bar: 5 minutes on 2 cores), and what the
model's size costs in quality and in explanation speed.

Default: times `fpi train DUMP --out DIR` in a fresh process on the cached dump that
`bench_triage.py` makes (wall, CPU, peak RSS) against the 5-minute bar.

`--sweep`: trains one model per parameter set on 100k `base` turns (seed 101, as
`bench_quality.py`) with two seeds, evaluates macro-F1 on fresh turns (seed 202) of every
scenario (the mean of the seeds), and times predict (`fpi.predict.predict`, the one prediction
path) and explain top-5 (`FastExplainer.explain_top`) on the base ones, per CPU second
(steady on a shared machine).

    python benchmarks/bench_train.py [--turns 1000000] [--cache /tmp/fpi-bench]
    python benchmarks/bench_train.py --sweep [--train-turns 100000] [--test-turns 30000]
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from functools import partial
from pathlib import Path

from bench_triage import measure, simulated_dump

BAR_SECONDS = 300
TRAIN_SEED = 101
TEST_SEED = 202
#: (learning rate, leaves, depth, maximum rounds) per model; early stopping picks the rounds.
SWEEP: list[tuple[float, int, int, int]] = [
    (0.1, 15, 6, 400),
    (0.1, 15, 6, 150),
    (0.15, 15, 6, 400),
    (0.2, 15, 6, 400),
    (0.1, 7, 3, 400),
    (0.2, 7, 3, 400),
    (0.2, 31, 8, 400),
]
SWEEP_SEEDS = (0, 1)


def rows_per_cpu_second(fn, matrix, *args) -> float:
    """Rows per CPU second (all threads): steadier than wall time on a shared machine."""
    started = time.process_time()
    fn(matrix, *args)
    return len(matrix) / (time.process_time() - started)


def sweep(train_turns: int, test_turns: int) -> None:
    """Each parameter set trained with every seed in `SWEEP_SEEDS`; macro-F1 is their mean."""
    from fpi.evaluate import classification_metrics
    from fpi.featurize import extract_features
    from fpi.model import DEFAULT_PARAMS, DEFAULT_ROUNDS, label_codes, train
    from fpi.predict import predict
    from fpi.simulate import SCENARIOS, simulate

    traces = simulate(train_turns, seed=TRAIN_SEED, scenario="base")
    tests = {}
    for scenario in SCENARIOS:
        test = simulate(test_turns, seed=TEST_SEED, scenario=scenario)
        tests[scenario] = (extract_features(test), label_codes(test))
    print(f"# load average {os.getloadavg()}", file=sys.stderr)
    header = ["params", "trees", "train CPU s"] + [f"macro-F1 {s}" for s in SCENARIOS]
    header += ["predict rows/CPU-s", "explain rows/CPU-s"]
    print("| " + " | ".join(header) + " |\n" + "|---" * len(header) + "|")
    for rate, leaves, depth, rounds in SWEEP:
        params = {"learning_rate": rate, "num_leaves": leaves, "max_depth": depth}
        label = f"lr {rate}, {leaves} leaves, depth {depth}, <= {rounds} rounds"
        if rounds == DEFAULT_ROUNDS and params.items() <= DEFAULT_PARAMS.items():
            label += " (default)"
        scores, trees, cpu, predict_rates, explain = [], [], [], [], []
        for seed in SWEEP_SEEDS:
            started = time.process_time()
            bundle = train(traces, params=params, rounds=rounds, seed=seed)
            cpu.append(time.process_time() - started)
            trees.append(bundle.booster.num_trees())
            explainer = bundle.explainer
            for features, labels in tests.values():
                predicted = predict(bundle, bundle.matrix(features)).predicted
                scores.append(classification_metrics(labels, predicted)["macro_f1"])
            matrix = bundle.matrix(tests["base"][0])
            classes = predict(bundle, matrix).predicted
            explainer.explain_top(matrix[:100], classes[:100], 5)  # compile outside the timing
            predict_rates.append(rows_per_cpu_second(partial(predict, bundle), matrix))
            explain.append(rows_per_cpu_second(explainer.explain_top, matrix, classes, 5))
        per_scenario = [
            sum(scores[i :: len(SCENARIOS)]) / len(SWEEP_SEEDS) for i in range(len(SCENARIOS))
        ]
        cells = [label, "/".join(f"{t:,}" for t in trees), f"{sum(cpu) / len(cpu):.0f}"]
        cells += [f"{s:.4f}" for s in per_scenario]
        cells += [
            f"{sum(predict_rates) / len(predict_rates):,.0f}",
            f"{sum(explain) / len(explain):,.0f}",
        ]
        print("| " + " | ".join(cells) + " |", flush=True)


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
