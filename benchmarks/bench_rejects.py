"""Peak memory on hostile input: `fpi validate --rejects` on floods of rejected lines.

Each case runs `fpi.io.validate_dumps` (what `fpi validate DUMP --rejects FILE` runs) in a
fresh interpreter, so peak RSS is its own: N lines of `{}` (every one a reject, written to the
rejects file as found) for N = 0 (one valid record only), 500k, 1M, 2M; then 300k copies of one
record (all but the first rejected as repeats), one 100 MB line (over the 16 MiB cap), and a
gzip of 1 GiB of newlines. Prints lines, rejects, seconds and peak RSS; flat RSS is the point.

    python benchmarks/bench_rejects.py [--out /tmp/fpi-bench-rejects] [--max 2000000]
"""

from __future__ import annotations

import argparse
import gzip
import json
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

RECORD = {
    "dialogue_id": "d-1",
    "turn_index": 0,
    "timestamp": "2026-11-17T08:15:02Z",
    "asr": {"text": "turn on the lights", "confidence": 0.91},
}


def write_gz(path: Path, write: Callable[[gzip.GzipFile], None]) -> Path:
    if not path.exists():
        with gzip.open(path, "wb", compresslevel=1) as fh:
            write(fh)  # type: ignore[arg-type]
    return path


def empty_records(path: Path, n: int) -> Path:
    def write(fh: gzip.GzipFile) -> None:
        fh.write(json.dumps(RECORD).encode() + b"\n")
        for _ in range(n // 100_000):
            fh.write(b"{}\n" * 100_000)
        fh.write(b"{}\n" * (n % 100_000))

    return write_gz(path, write)


def copies(path: Path, n: int) -> Path:
    return write_gz(path, lambda fh: fh.write((json.dumps(RECORD).encode() + b"\n") * n))


def one_long_line(path: Path, size: int) -> Path:
    def write(fh: gzip.GzipFile) -> None:
        fh.write(json.dumps(RECORD).encode() + b"\n")
        head = json.dumps({**RECORD, "turn_index": 1, "asr": {"text": ""}})[:-3].encode()
        fh.write(head)
        for _ in range(size >> 20):
            fh.write(b"x" * (1 << 20))
        fh.write(b'"}}\n')

    return write_gz(path, write)


def newlines(path: Path, size: int) -> Path:
    def write(fh: gzip.GzipFile) -> None:
        for _ in range(size >> 20):
            fh.write(b"\n" * (1 << 20))

    return write_gz(path, write)


CODE = """
import resource, sys, time
from fpi.io import validate_dumps
t = time.perf_counter()
r = validate_dumps([sys.argv[1]], rejects_path=sys.argv[2])
s = time.perf_counter() - t
rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
print(r.read + r.blank_lines, r.rejected, s, rss)
"""


def measure(path: Path, rejects: Path) -> tuple[int, int, float, float]:
    out = subprocess.run(
        [sys.executable, "-c", CODE, str(path), str(rejects)],
        capture_output=True,
        text=True,
        check=True,
    )
    lines, rejected, seconds, rss = out.stdout.split()
    return int(lines), int(rejected), float(seconds), float(rss)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("/tmp/fpi-bench-rejects"))
    parser.add_argument("--max", type=int, default=2_000_000, help="most rejected lines")
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    counts = [0, args.max // 4, args.max // 2, args.max]
    cases = [
        (f"{n:,} lines of {{}}", empty_records(args.out / f"empty-{n}.jsonl.gz", n)) for n in counts
    ]
    cases += [
        ("300,000 copies of one record", copies(args.out / "copies.jsonl.gz", 300_000)),
        ("one 100 MB line", one_long_line(args.out / "long.jsonl.gz", 100 << 20)),
        ("1 GiB of newlines (gzip)", newlines(args.out / "newlines.jsonl.gz", 1 << 30)),
    ]
    print(f"{'input':<32}{'lines':>13}{'rejected':>11}{'seconds':>9}{'peak RSS MiB':>14}")
    for name, path in cases:
        lines, rejected, seconds, rss = measure(path, args.out / "rejects.jsonl")
        print(f"{name:<32}{lines:>13,}{rejected:>11,}{seconds:>9.1f}{rss:>14.0f}")


if __name__ == "__main__":
    main()
