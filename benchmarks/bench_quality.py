"""Failure-point isolation quality on simulated traffic (issue: features and model).

Trains on simulated `base` turns (split by dialogue inside `train`), then evaluates on fresh
seeds of every scenario: the model beside the single annotator and the rule baseline, and the
ablation without the dialogue-context features. Prints markdown tables for the README.

    python benchmarks/bench_quality.py [--train-turns 100000] [--test-turns 30000]
"""

from __future__ import annotations

import argparse
import time

from fpi.evaluate import evaluation_report, score_traces
from fpi.model import load_bundle, train
from fpi.schema import FAILURE_POINTS
from fpi.simulate import SCENARIOS, simulate

TRAIN_SEED = 101
TEST_SEED = 202


def _row(name: str, metrics: dict) -> str:
    f1 = " | ".join(f"{metrics['per_class'][c]['f1']:.3f}" for c in FAILURE_POINTS)
    return f"| {name} | {metrics['accuracy']:.3f} | {metrics['macro_f1']:.3f} | {f1} |"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--train-turns", type=int, default=100_000)
    parser.add_argument("--test-turns", type=int, default=30_000)
    parser.add_argument(
        "--bundled", action="store_true", help="evaluate the bundled model instead of training"
    )
    args = parser.parse_args()

    if args.bundled:
        models = {"model (bundled)": load_bundle()}
    else:
        traces = simulate(args.train_turns, seed=TRAIN_SEED, scenario="base")
        models = {}
        for name, without in (("model", ()), ("model without context", ("context",))):
            started = time.perf_counter()
            models[name] = train(traces, seed=0, without_stages=without)
            rounds = models[name].metadata["params"]["best_iteration"]
            print(
                f"trained {name!r} on {len(traces):,} turns: "
                f"{time.perf_counter() - started:.1f} s, {rounds} rounds"
            )

    header = "| system | accuracy | macro-F1 | " + " | ".join(f"F1 {c}" for c in FAILURE_POINTS)
    rule = "|---" * (3 + len(FAILURE_POINTS)) + "|"
    for scenario in SCENARIOS:
        test = simulate(args.test_turns, seed=TEST_SEED, scenario=scenario)
        print(f"\n### {scenario} ({len(test):,} fresh turns, seed {TEST_SEED})\n")
        print(header + " |")
        print(rule)
        reports = {name: evaluation_report(score_traces(test, m)) for name, m in models.items()}
        first = next(iter(reports.values()))
        for name, report in reports.items():
            print(_row(name, report))
        for reference, metrics in first["references"].items():
            print(_row(reference.replace("_", " "), metrics))
        print(_row("rule baseline", first["rule_baseline"]))


if __name__ == "__main__":
    main()
