"""Spark local mode against the single process: `fpi triage` on the same dump, same 2 cores.

Makes (once, cached in `--cache`) a dump of `--turns` simulated turns, cut into `--files` .jsonl.gz
files (Spark reads one file per task), then times in fresh subprocesses:
- `fpi triage DUMPS --out triaged.parquet` (the single process), and
- `fpi triage DUMPS --engine spark --master local[N] --out DIR` (Spark local mode),
and, to explain the overhead, a Spark session started and stopped on its own. Prints a table:
wall seconds, turns/s and peak RSS of the driver process tree, and the ratio. Both runs write
top-5 SHAP reasons for every turn; afterwards it checks that both outputs hold the same turns
with the same failure points.

    python benchmarks/bench_spark.py [--turns 1000000] [--files 4] [--master 'local[2]']
"""

from __future__ import annotations

import argparse
import gzip
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from bench_triage import simulated_dump

SESSION_ONLY = (
    "import time; t = time.perf_counter(); from fpi import spark; "
    "s = spark.session({master!r}); s.range(1).count(); s.stop(); "
    "print(time.perf_counter() - t)"
)


def split_dump(source: Path, files: int) -> list[Path]:
    """The dump cut into `files` .jsonl.gz files of whole lines (dialogues may straddle two)."""
    directory = source.with_name(f"{source.name.removesuffix('.jsonl.gz')}-{files}files")
    paths = [directory / f"part-{i:03d}.jsonl.gz" for i in range(files)]
    if all(p.exists() for p in paths):
        return paths
    directory.mkdir(parents=True, exist_ok=True)
    with gzip.open(source, "rb") as fh:
        lines = sum(1 for _ in fh)
    per_file = -(-lines // files)
    with gzip.open(source, "rb") as fh:
        for path in paths:
            partial = path.with_suffix(".partial")
            with gzip.open(partial, "wb", compresslevel=1) as out:
                for _ in range(per_file):
                    line = fh.readline()
                    if not line:
                        break
                    out.write(line)
            partial.rename(path)
    return paths


def timed(command: list[str]) -> tuple[float, float]:
    """(wall seconds, peak RSS in MiB of the process and its children) of a command."""
    started = time.perf_counter()
    result = subprocess.run(
        ["/usr/bin/time", "-f", "%M", *command], capture_output=True, text=True, check=False
    )
    wall = time.perf_counter() - started
    if result.returncode != 0:
        raise SystemExit(f"{' '.join(command)} failed:\n{result.stdout}\n{result.stderr[-3000:]}")
    peak_kib = int(result.stderr.strip().splitlines()[-1])
    return wall, peak_kib / 1024


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--turns", type=int, default=1_000_000)
    parser.add_argument("--files", type=int, default=4)
    parser.add_argument("--master", default="local[2]")
    parser.add_argument("--cache", type=Path, default=Path(tempfile.gettempdir()) / "fpi-bench")
    args = parser.parse_args()

    import polars as pl

    dumps = [str(p) for p in split_dump(simulated_dump(args.turns, args.cache), args.files)]
    fpi = [sys.executable, "-m", "fpi"]
    env_python = {"PYSPARK_PYTHON": sys.executable, **os.environ}
    os.environ.update(env_python)
    with tempfile.TemporaryDirectory(dir=args.cache) as scratch:
        local_out = Path(scratch) / "local.parquet"
        spark_out = Path(scratch) / "spark"
        single = timed([*fpi, "triage", *dumps, "--out", str(local_out)])
        spark_engine = ["--engine", "spark", "--master", args.master]
        on_spark = timed([*fpi, "triage", *dumps, "--out", str(spark_out), *spark_engine])
        session = float(
            subprocess.run(
                [sys.executable, "-c", SESSION_ONLY.format(master=args.master)],
                capture_output=True,
                text=True,
                check=True,
            ).stdout.split()[-1]
        )
        local = pl.read_parquet(local_out).select("turn_id", "failure_point")
        spark = pl.read_parquet(spark_out / "**" / "*.parquet").select("turn_id", "failure_point")
        same = local.join(spark, on="turn_id", suffix="_spark")
        agree = (same["failure_point"] == same["failure_point_spark"]).sum()
        shutil.rmtree(spark_out, ignore_errors=True)

    print(f"# {args.turns:,} turns in {args.files} .jsonl.gz files, {os.cpu_count()} cores")
    print("| run | wall s | turns/s | peak RSS MiB |")
    print("|---|---|---|---|")
    for name, (wall, rss) in (
        ("single process (`fpi triage`)", single),
        (f"Spark {args.master} (`--engine spark`)", on_spark),
    ):
        print(f"| {name} | {wall:.1f} | {args.turns / wall:,.0f} | {rss:,.0f} |")
    print(f"| Spark session start and stop alone | {session:.1f} | | |")
    print(f"\nSpark / single process wall time: {on_spark[0] / single[0]:.2f}x")
    print(f"same failure point on {agree:,} of {len(local):,} turns ({len(spark):,} from Spark)")


if __name__ == "__main__":
    main()
