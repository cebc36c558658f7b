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
import shutil
import subprocess
import sys
import tempfile
import time
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
    with tempfile.TemporaryDirectory(dir=cache) as scratch, gzip.open(
        partial, "wb", compresslevel=GZIP_LEVEL
    ) as out:
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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--turns", type=int, default=1_000_000)
    parser.add_argument("--cache", type=Path, default=Path("/tmp/fpi-bench"))
    args = parser.parse_args()
    started = time.perf_counter()
    path = simulated_dump(args.turns, args.cache)
    print(f"{path} ({time.perf_counter() - started:.0f} s)")


if __name__ == "__main__":
    main()
