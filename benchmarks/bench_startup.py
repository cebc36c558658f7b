"""Start-up: `fpi --help` against a bare Python interpreter (the bar: under 0.5 s).

Each command runs `--repeat` times in a fresh process, interleaved (the machine may be
shared); the best wall time counts. Also reports which heavy libraries `import fpi.cli`
loads: none should be (they are imported inside the commands).

    python benchmarks/bench_startup.py [--repeat 10]
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time

BAR_SECONDS = 0.5
HEAVY = ("polars", "lightgbm", "shap", "numpy", "numba", "matplotlib", "pyarrow")
COMMANDS = {
    "fpi --help": [sys.executable, "-m", "fpi", "--help"],
    "fpi triage --help": [sys.executable, "-m", "fpi", "triage", "--help"],
}
PEER = [sys.executable, "-c", "pass"]


def wall(command: list[str]) -> float:
    started = time.perf_counter()
    subprocess.run(command, check=True, capture_output=True)
    return time.perf_counter() - started


def heavy_imports() -> list[str]:
    """Heavy libraries in `sys.modules` after `import fpi.cli`, in a fresh interpreter."""
    code = f"import sys, fpi.cli; print(' '.join(m for m in {HEAVY!r} if m in sys.modules))"
    return subprocess.run(
        [sys.executable, "-c", code], check=True, capture_output=True, text=True
    ).stdout.split()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=10)
    args = parser.parse_args()
    times: dict[str, list[float]] = {name: [] for name in [*COMMANDS, "python -c pass"]}
    for _ in range(args.repeat):
        for name, command in COMMANDS.items():
            times[name].append(wall(command))
        times["python -c pass"].append(wall(PEER))
    peer = min(times["python -c pass"])
    print(f"best of {args.repeat}; the bar is {BAR_SECONDS} s\n")
    print("| figure | fpi | peer | ratio |\n|---|---|---|---|")
    for name in COMMANDS:
        best = min(times[name])
        print(
            f"| `{name}` wall s vs `python -c pass` | {best:.3f} | {peer:.3f} | {best / peer:.1f} |"
        )
    print(f"\nheavy libraries loaded by `import fpi.cli`: {', '.join(heavy_imports()) or 'none'}")


if __name__ == "__main__":
    main()
