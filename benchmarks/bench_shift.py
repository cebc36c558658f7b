"""Input shift against the bundled model's training profile (issue 12: does the model fit?).

One command, against whatever bundle is installed (re-run it after every rebuild):

    python benchmarks/bench_shift.py [--turns 20000] [--dstc2 /work/data/dstc2-train.parquet]

Dumps: fresh `base` traffic (the scenario the demo and the tests use, on seeds the bundled
model never saw), fresh whole mixtures of the bundled recipe (`fpi.models.rebuild.
bundled_traffic` on other seeds: new drawn pipelines and new `base` blocks), single fresh
randomised pipelines (never trained on), the held-out scenarios (`farfield`, `newdomain`,
`drift`), and real DSTC2 calls (`--dstc2`: an imported dump, or the DSTC2 root to import).
Each dump is sampled as `fpi shift` does; the table gives the separability AUC against the
training pipelines the dump most resembles (0.5 = indistinguishable), the verdict at the
threshold, those pipelines with their estimated weights, the AUC against the whole training
mixture (the reference before the mixture estimate), the most shifted features (PSI) and the
seconds the check took; then the CPU share of the shift check inside a triage run.
"""

from __future__ import annotations

import argparse
import dataclasses
import tempfile
import time
from pathlib import Path

from fpi.io import write_traces
from fpi.model import load_bundle
from fpi.models.rebuild import bundled_traffic
from fpi.shift import (
    MIXTURE_SHIFT_THRESHOLD,
    SHIFT_THRESHOLD,
    ShiftCheck,
    assess,
    compare,
    sample_dumps,
)
from fpi.simulate import SCENARIOS, randomized_pipelines, simulate_pipeline, simulate_to_file
from fpi.triage import run_triage

OTHER_SEED = 7
#: Recipe seeds of the fresh whole mixtures, and seed of the fresh single pipelines (the
#: bundle is built with recipe seed 1).
MIXTURE_SEEDS = [11, 12]
PIPELINE_SEED = 21


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--turns", type=int, default=20_000, help="turns per simulated dump")
    parser.add_argument("--base-seeds", type=int, nargs="+", default=[2, 3, 4, 5])
    parser.add_argument(
        "--mixture-turns", type=int, default=100_000, help="turns of the fresh whole mixture"
    )
    parser.add_argument(
        "--mixture-seeds", type=int, nargs="+", default=MIXTURE_SEEDS, help="recipe seeds"
    )
    parser.add_argument("--pipelines", type=int, default=4, help="fresh single pipelines")
    parser.add_argument(
        "--dstc2",
        type=Path,
        default=Path("/work/data/dstc2-train.parquet"),
        help="DSTC2 calls: an imported dump, or the DSTC2 root (data/, scripts/) to import",
    )
    parser.add_argument(
        "--triage-turns", type=int, default=100_000, help="turns for the triage overhead (0: skip)"
    )
    args = parser.parse_args()

    bundle = load_bundle()
    profile = bundle.profile
    whole_mixture = dataclasses.replace(profile, components=())
    dumps: list[tuple[str, Path]] = []
    with tempfile.TemporaryDirectory() as tmp:
        for seed in args.base_seeds:
            path = Path(tmp, f"base-{seed}.parquet")
            simulate_to_file(path, args.turns, seed=seed, scenario="base")
            dumps.append((f"base, seed {seed}", path))
        for seed in args.mixture_seeds if args.mixture_turns else ():
            path = Path(tmp, f"mixture-{seed}.parquet")
            write_traces(bundled_traffic(args.mixture_turns, seed=seed)[0], path)
            dumps.append((f"bundled recipe, seed {seed} ({args.mixture_turns:,} turns)", path))
        for pipeline in randomized_pipelines(PIPELINE_SEED, args.pipelines):
            path = Path(tmp, f"{pipeline.name}.parquet")
            write_traces(simulate_pipeline(args.turns, pipeline, seed=PIPELINE_SEED), path)
            dumps.append((f"one fresh pipeline, {pipeline.name}", path))
        for scenario in (s for s in SCENARIOS if s != "base"):
            path = Path(tmp, f"{scenario}.parquet")
            simulate_to_file(path, args.turns, seed=OTHER_SEED, scenario=scenario)
            dumps.append((f"{scenario}, seed {OTHER_SEED}", path))
        if args.dstc2 is not None:
            path = args.dstc2
            if path.is_dir():
                from fpi.dstc2 import import_dstc2

                path = Path(tmp, "dstc2.parquet")
                import_dstc2(args.dstc2, "train", path)
            dumps.append(("DSTC2 train calls", path))

        print(
            f"{len(profile.components)} training components; shifted from separability "
            f"{MIXTURE_SHIFT_THRESHOLD:.2f} against the mixture estimate, from "
            f"{SHIFT_THRESHOLD:.2f} against the whole mixture (one reference)\n"
        )
        print(
            "| traffic | sampled turns | separability | verdict | nearest training pipelines "
            "| vs whole mixture | most shifted features (PSI) | s |"
        )
        print("|---|---:|---:|---|---|---:|---|---:|")
        for name, path in dumps:
            started = time.perf_counter()
            sample = sample_dumps([path])
            report = assess(sample, profile)
            seconds = time.perf_counter() - started
            whole = compare(whole_mixture, sample.binned(whole_mixture))
            nearest = ", ".join(
                f"{c['name']} {c['weight']:.2f}" for c in report.reference_components
            )
            top = ", ".join(
                f"{r['name']} {r['shift']:.2f}"
                for r in report.features.head(3).iter_rows(named=True)
            )
            print(
                f"| {name} | {report.turns:,} | {report.score:.3f} | {report.verdict} | {nearest} "
                f"| {whole.score:.3f} | {top} | {seconds:.1f} |",
                flush=True,
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
