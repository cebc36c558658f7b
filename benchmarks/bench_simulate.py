"""Simulator speed: `fpi.simulate.simulate` turns per second, and writing the result.

Times `simulate(--turns)` best of `--repeat` runs (wall clock and process CPU time; the CPU
figure is the honest one on a shared machine), then one `write_traces` to .jsonl.gz.
The brief's bar: 100,000 turns in under a minute on 2 cores (the aim is ~10 s).

    python benchmarks/bench_simulate.py [--turns 100000] [--scenario base] [--repeat 2]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

from fpi.io import write_traces
from fpi.simulate import SCENARIOS, simulate


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--turns", type=int, default=100_000)
    parser.add_argument("--scenario", choices=SCENARIOS, default="base")
    parser.add_argument("--repeat", type=int, default=2)
    args = parser.parse_args()

    best_wall = best_cpu = float("inf")
    for run in range(args.repeat):
        wall, cpu = time.perf_counter(), time.process_time()
        traces = simulate(args.turns, seed=run, scenario=args.scenario)
        best_wall = min(best_wall, time.perf_counter() - wall)
        best_cpu = min(best_cpu, time.process_time() - cpu)
    print(f"simulate {args.turns:,} turns ({args.scenario}), best of {args.repeat}:")
    print(f"  wall {best_wall:6.2f} s  {args.turns / best_wall:10,.0f} turns/s")
    print(f"  cpu  {best_cpu:6.2f} s  {args.turns / best_cpu:10,.0f} turns/s")
    with tempfile.TemporaryDirectory() as tmp:
        wall = time.perf_counter()
        path = write_traces(traces, Path(tmp) / "sim.jsonl.gz")
        took = time.perf_counter() - wall
        print(f"write .jsonl.gz {took:6.2f} s ({path.stat().st_size / 1e6:.1f} MB)")


if __name__ == "__main__":
    main()
