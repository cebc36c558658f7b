"""Start-up: `fpi --help` against a bare Python interpreter (the bar: under 0.5 s).

Each command runs `--repeat` times in a fresh process, interleaved (the machine may be
shared); the best wall time counts, and the best CPU time (user + system, steadier under
load). Also reports which heavy libraries `import fpi.cli` loads: none should be (they are
imported inside the commands).

    python benchmarks/bench_startup.py [--repeat 10]
"""

from __future__ import annotations

import argparse
import subprocess
import sys

from bench_triage import Measured, measure

BAR_SECONDS = 0.5
HEAVY = ("polars", "lightgbm", "shap", "numpy", "numba", "matplotlib", "pyarrow")
COMMANDS = {
    "fpi --help": [sys.executable, "-m", "fpi", "--help"],
    "fpi triage --help": [sys.executable, "-m", "fpi", "triage", "--help"],
}
PEER = [sys.executable, "-c", "pass"]


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
    runs: dict[str, list[Measured]] = {name: [] for name in [*COMMANDS, "python -c pass"]}
    for _ in range(args.repeat):
        for name, command in COMMANDS.items():
            runs[name].append(measure(command))
        runs["python -c pass"].append(measure(PEER))
    print(f"best of {args.repeat}; the bar is {BAR_SECONDS} s\n")
    print("| figure | fpi | peer | ratio |\n|---|---|---|---|")
    for name in COMMANDS:
        for what in ("wall", "cpu"):
            best = min(getattr(run, what) for run in runs[name])
            peer = min(getattr(run, what) for run in runs["python -c pass"])
            print(
                f"| `{name}` {what} s vs `python -c pass` | {best:.3f} | {peer:.3f} "
                f"| {best / peer:.1f} |"
            )
    print(f"\nheavy libraries loaded by `import fpi.cli`: {', '.join(heavy_imports()) or 'none'}")


if __name__ == "__main__":
    main()
