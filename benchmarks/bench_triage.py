"""End-to-end triage: `fpi triage` on a simulated gzipped JSONL dump against polars' parse.

Makes (once, cached in `--cache`) a dump of `--turns` simulated `base` turns, then times in
fresh subprocesses, so that peak RSS is per run: `pl.read_ndjson` on the .gz and on the
decompressed bytes (the peer), and `fpi triage DUMP --out triaged.parquet` (read, validate,
features, predict, explain top-5, write). Then profiles the phases of `triage_traces` in this
process on one batch, and optionally (`--scale 5`) runs `fpi triage` on a dump `--scale` times
larger (renamed copies) to show that peak memory stays flat. Prints a table: figure, fpi, peer,
ratio.

    python benchmarks/bench_triage.py [--turns 1000000] [--scale 5] [--cache /tmp/fpi-bench]
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

PIECE_TURNS = 100_000
GZIP_LEVEL = 5


def simulated_dump(turns: int, cache: Path) -> Path:
    """A .jsonl.gz of `turns` simulated `base` turns (pieces of 100k with seeds 0, 1, ...)."""
    path = cache / f"sim-base-{turns}.jsonl.gz"
    if path.exists():
        return path
    from fpi.io import write_traces
    from fpi.simulate import simulate

    cache.mkdir(parents=True, exist_ok=True)
    partial = path.with_suffix(".partial")
    with (
        tempfile.TemporaryDirectory(dir=cache) as scratch,
        gzip.open(partial, "wb", compresslevel=GZIP_LEVEL) as out,
    ):
        for seed, start in enumerate(range(0, turns, PIECE_TURNS)):
            piece = Path(scratch) / "piece.jsonl"
            write_traces(simulate(min(PIECE_TURNS, turns - start), seed=seed), piece)
            with piece.open("rb") as fh:
                shutil.copyfileobj(fh, out, 16 << 20)
            print(f"# simulated {min(start + PIECE_TURNS, turns):,} turns", file=sys.stderr)
    partial.rename(path)
    return path


def scaled_dump(source: Path, copies: int) -> Path:
    """`copies` renamed copies of a dump in one .jsonl.gz (copy c prefixes its ids with `c<c>-`)."""
    path = source.with_name(source.name.replace(".jsonl.gz", f"-x{copies}.jsonl.gz"))
    if path.exists():
        return path
    partial = path.with_suffix(".partial")
    with gzip.open(partial, "wb", compresslevel=1) as out:
        for copy in range(copies):
            with gzip.open(source, "rb") as fh:
                while block := fh.read(64 << 20):
                    block += fh.readline()
                    if copy:
                        for key in (b'"dialogue_id":"', b'"turn_id":"'):
                            block = block.replace(key, key + b"c%d-" % copy)
                    out.write(block)
    partial.rename(path)
    return path


PEERS = {
    "polars .gz": "import polars as pl, time; from fpi.schema import TRACE_JSON_SCHEMA\n"
    "t = time.perf_counter(); rows = len(pl.read_ndjson({path!r}, schema=TRACE_JSON_SCHEMA))\n"
    "print(rows, time.perf_counter() - t)",
    "polars bytes": "import gzip, polars as pl, time; from fpi.schema import TRACE_JSON_SCHEMA\n"
    "data = gzip.open({path!r}).read()\n"
    "t = time.perf_counter(); rows = len(pl.read_ndjson(data, schema=TRACE_JSON_SCHEMA))\n"
    "print(rows, time.perf_counter() - t)",
}
PROFILE = """import json, time
from pathlib import Path
from fpi.model import load_bundle
from fpi.triage import run_triage
t = time.perf_counter()
run = run_triage([{path!r}], load_bundle(), out=Path({out!r}))
print(json.dumps({{"turns": run.read, "seconds": time.perf_counter() - t,
                  "wall": run.times.wall, "cpu": run.times.cpu}}))
"""
PHASES = {
    "read+validate": ("read",),
    "features": ("features",),
    "encode": ("encode",),
    "predict": ("predict",),
    "explain": ("explain",),
    "reasons": ("reasons",),
    "write": ("write",),
    "other": ("assemble", "filter", "summary", "transform"),
}


@dataclass
class Measured:
    """One subprocess: wall clock, CPU (user + system) and peak RSS, with what it printed."""

    wall: float
    cpu: float
    rss_mib: float
    stdout: str


def measure(command: list[str]) -> Measured:
    """Run `command` and read its own resource usage (`os.wait4`, not the children's sum)."""
    started = time.perf_counter()
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
    stdout = process.stdout.read().decode() if process.stdout else ""
    _, status, usage = os.wait4(process.pid, 0)
    process.returncode = os.waitstatus_to_exitcode(status)
    if process.returncode:
        raise SystemExit(f"{' '.join(command)} failed with exit code {process.returncode}")
    wall = time.perf_counter() - started
    return Measured(wall, usage.ru_utime + usage.ru_stime, usage.ru_maxrss / 1024, stdout)


def triage_command(dump: Path, out: Path) -> list[str]:
    return [sys.executable, "-m", "fpi", "triage", str(dump), "--out", str(out)]


def row(figure: str, fpi: str, peer: str, ratio: str) -> str:
    return f"| {figure} | {fpi} | {peer} | {ratio} |"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--turns", type=int, default=1_000_000)
    parser.add_argument("--scale", type=int, default=0, help="also run on this many copies")
    parser.add_argument("--cache", type=Path, default=Path("/tmp/fpi-bench"))
    args = parser.parse_args()
    dump = simulated_dump(args.turns, args.cache)
    print(f"# {dump}: {dump.stat().st_size / 2**20:,.0f} MiB; load average {os.getloadavg()}")
    with tempfile.TemporaryDirectory(dir=args.cache) as scratch:
        out = Path(scratch) / "triaged.parquet"
        peers = {}
        for name, code in PEERS.items():
            run = measure([sys.executable, "-c", code.format(path=str(dump))])
            rows, seconds = run.stdout.split()
            peers[name] = (int(rows), float(seconds), run)
        cli = measure(triage_command(dump, out))
        profile_run = measure([sys.executable, "-c", PROFILE.format(path=str(dump), out=str(out))])
        profile = json.loads(profile_run.stdout)
        scaled = None
        if args.scale > 1:
            big = scaled_dump(dump, args.scale)
            scaled = measure(triage_command(big, out))
    turns = profile["turns"]
    gz_rows, gz_seconds, gz_run = peers["polars .gz"]
    _, bytes_seconds, _ = peers["polars bytes"]
    assert gz_rows == turns, (gz_rows, turns)
    print(f"\n{turns:,} turns; load average after: {os.getloadavg()}\n")
    print("| figure | fpi | peer | ratio |\n|---|---|---|---|")
    print(row("`fpi triage` vs `pl.read_ndjson(.gz)`, wall s", f"{cli.wall:.1f}",
              f"{gz_seconds:.1f}", f"{cli.wall / gz_seconds:.2f}"))  # fmt: skip
    print(row("`fpi triage` vs `pl.read_ndjson(bytes)`, wall s", f"{cli.wall:.1f}",
              f"{bytes_seconds:.1f}", f"{cli.wall / bytes_seconds:.2f}"))  # fmt: skip
    print(row("CPU s (user + sys) vs polars .gz", f"{cli.cpu:.1f}", f"{gz_run.cpu:.1f}",
              f"{cli.cpu / gz_run.cpu:.2f}"))  # fmt: skip
    print(row("turns/s", f"{turns / cli.wall:,.0f}", f"{turns / gz_seconds:,.0f}", ""))
    print(row("peak RSS MiB vs polars .gz", f"{cli.rss_mib:,.0f}", f"{gz_run.rss_mib:,.0f}",
              f"{cli.rss_mib / gz_run.rss_mib:.2f}"))  # fmt: skip
    if scaled is not None:
        print(row(f"peak RSS MiB, {args.scale}x turns vs 1x", f"{scaled.rss_mib:,.0f}",
                  f"{cli.rss_mib:,.0f}", f"{scaled.rss_mib / cli.rss_mib:.2f}"))  # fmt: skip
        print(row(f"wall s, {args.scale}x turns vs 1x", f"{scaled.wall:.1f}", f"{cli.wall:.1f}",
                  f"{scaled.wall / cli.wall:.2f}"))  # fmt: skip
    print(f"\nphases of `run_triage` ({profile['seconds']:.1f} s in-process):\n")
    print("| phase | wall s | CPU s | share of wall |\n|---|---|---|---|")
    total = sum(profile["wall"].values())
    for phase, keys in PHASES.items():
        wall = sum(profile["wall"].get(k, 0.0) for k in keys)
        cpu = sum(profile["cpu"].get(k, 0.0) for k in keys)
        print(f"| {phase} | {wall:.1f} | {cpu:.1f} | {wall / total:.0%} |")


if __name__ == "__main__":
    main()
