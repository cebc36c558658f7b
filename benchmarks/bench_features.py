"""Feature extraction speed: `fpi.featurize.extract_features` on simulated (or given) traces.

Simulates `--turns` turns once (cached as Parquet under `--out`; simulating is slower than
extracting), then times `extract_features` eagerly, best of `--repeat` runs, and prints turns/s
by wall clock and by CPU time (the CPU figure is the honest one on a shared machine).

    python benchmarks/bench_features.py --turns 200000 [--dump traces.parquet] [--repeat 3]
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import polars as pl

from fpi.featurize import extract_features


def load_traces(turns: int, dump: Path | None, out: Path) -> pl.DataFrame:
    from fpi.io import read_traces

    if dump is not None:
        return read_traces([dump])
    cached = out / f"simulated-{turns}.parquet"
    if not cached.exists():
        from fpi.io import write_traces
        from fpi.simulate import simulate

        out.mkdir(parents=True, exist_ok=True)
        write_traces(simulate(turns, seed=1), cached)
    return read_traces([cached])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--turns", type=int, default=200_000)
    parser.add_argument("--dump", type=Path, help="Time on this dump instead of simulated turns.")
    parser.add_argument("--out", type=Path, default=Path("/tmp/fpi-bench-features"))
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()

    traces = load_traces(args.turns, args.dump, args.out)
    best_wall = best_cpu = float("inf")
    for _ in range(args.repeat):
        wall, cpu = time.perf_counter(), time.process_time()
        features = extract_features(traces)
        best_wall = min(best_wall, time.perf_counter() - wall)
        best_cpu = min(best_cpu, time.process_time() - cpu)
    n = traces.height
    print(f"{n:,} turns, {features.width - 1} features, {pl.thread_pool_size()} polars threads")
    print(f"wall {best_wall:.2f} s: {n / best_wall:,.0f} turns/s")
    print(f"cpu  {best_cpu:.2f} s: {n / best_cpu:,.0f} turns/s per core")


if __name__ == "__main__":
    main()
