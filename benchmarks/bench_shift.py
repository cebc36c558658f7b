"""Input shift against the bundled model's training profile (issue: does the model fit?).

Simulates fresh traffic of every scenario (the `base` ones on seeds the bundled model never saw)
and, with --dstc2 ROOT, imports real DSTC2 calls; then samples each dump as `fpi shift` does and
prints a markdown table: separability AUC (0.5 = indistinguishable), verdict at the threshold,
the most shifted features (PSI) and the seconds the check took; then the CPU share of the
shift check inside a triage run.

    python benchmarks/bench_shift.py [--turns 20000] [--dstc2 /work/dstc2] [--base-seeds 2 3 4 5]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

from fpi.model import load_bundle
from fpi.shift import SHIFT_THRESHOLD, ShiftCheck, assess, sample_dumps
from fpi.simulate import SCENARIOS, simulate_to_file
from fpi.triage import run_triage

OTHER_SEED = 7


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--turns", type=int, default=20_000)
    parser.add_argument("--base-seeds", type=int, nargs="+", default=[2, 3, 4, 5])
    parser.add_argument("--dstc2", type=Path, default=None, help="DSTC2 root (data/, scripts/)")
    parser.add_argument(
        "--triage-turns", type=int, default=100_000, help="turns for the triage overhead (0: skip)"
    )
    args = parser.parse_args()

    bundle = load_bundle()
    dumps: list[tuple[str, Path]] = []
    with tempfile.TemporaryDirectory() as tmp:
        for seed in args.base_seeds:
            path = Path(tmp, f"base-{seed}.parquet")
            simulate_to_file(path, args.turns, seed=seed, scenario="base")
            dumps.append((f"base, seed {seed}", path))
        for scenario in (s for s in SCENARIOS if s != "base"):
            path = Path(tmp, f"{scenario}.parquet")
            simulate_to_file(path, args.turns, seed=OTHER_SEED, scenario=scenario)
            dumps.append((f"{scenario}, seed {OTHER_SEED}", path))
        if args.dstc2 is not None:
            from fpi.dstc2 import import_dstc2

            path = Path(tmp, "dstc2.parquet")
            import_dstc2(args.dstc2, "train", path)
            dumps.append(("DSTC2 train calls", path))

        print(f"threshold {SHIFT_THRESHOLD:.2f} (separability AUC at or above it = shifted)\n")
        print(
            "| traffic | sampled turns | separability | verdict | most shifted features (PSI) | s |"
        )
        print("|---|---:|---:|---|---|---:|")
        for name, path in dumps:
            started = time.perf_counter()
            sample = sample_dumps([path])
            report = assess(sample, bundle.profile)
            seconds = time.perf_counter() - started
            top = ", ".join(
                f"{r['name']} {r['shift']:.2f}"
                for r in report.features.head(3).iter_rows(named=True)
            )
            print(
                f"| {name} | {report.turns:,} | {report.score:.3f} | {report.verdict} | {top} "
                f"| {seconds:.1f} |"
            )
        if args.triage_turns:
            triage_overhead(bundle, Path(tmp), args.triage_turns)


def triage_overhead(bundle, tmp: Path, turns: int) -> None:
    """CPU seconds of the streamed shift check (sampling + the score) inside `run_triage`."""
    path = tmp / "triage-base.parquet"
    simulate_to_file(path, turns, seed=OTHER_SEED, scenario="base")
    run = run_triage([path], bundle, out=tmp / "triaged.parquet", shift=ShiftCheck(bundle.profile))
    total = sum(run.times.cpu.values())
    shift = run.times.cpu.get("shift", 0.0)
    print(
        f"\n`run_triage` on {turns:,} base turns with the shift check: {total:.1f} CPU s in all, "
        f"shift check {shift:.2f} CPU s ({shift / total:.1%}); score {run.shift.score:.3f}"
    )


if __name__ == "__main__":
    main()
