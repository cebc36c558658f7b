"""Importer speed and memory: Home Assistant runs, Rasa event logs and Lex logs.

Builds inputs by cloning the real-file fixtures of `tests/fixtures/importers/` under fresh ids
(Home Assistant: `--units` runs in conversations of 4 runs; Rasa: `--units` conversations of the
restaurantbot log, 3 turns each; Lex: `--units` entries, sessions of 4), imports each into
JSONL in a fresh process and prints units/s, turns/s and that process's peak RSS.

    python benchmarks/bench_import.py [--units 20000]
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

FIXTURES = Path(__file__).resolve().parents[1] / "tests" / "fixtures" / "importers"


def _homeassistant(path: Path, units: int) -> None:
    runs = [json.loads(line) for line in (FIXTURES / "homeassistant" / "runs.jsonl").open()]
    with path.open("w") as fh:
        for i in range(units):
            run = json.loads(json.dumps(runs[i % len(runs)]))
            run["pipeline_run_id"] = f"run-{i}"
            for event in run["events"]:
                data = event.get("data") or {}
                if "conversation_id" in data:
                    data["conversation_id"] = f"conv-{i // 4}"
            fh.write(json.dumps(run) + "\n")


def _rasa(path: Path, units: int) -> None:
    events = [json.loads(line) for line in (FIXTURES / "rasa" / "rasa_event.log").open()]
    with path.open("w") as fh:
        for i in range(units):
            for event in events:
                fh.write(json.dumps({**event, "sender_id": f"user-{i}"}) + "\n")


def _lex(path: Path, units: int) -> None:
    entries = [json.loads(line) for line in (FIXTURES / "lex" / "speech_session.jsonl").open()]
    with path.open("w") as fh:
        for i in range(units):
            entry = entries[i % len(entries)]
            fh.write(
                json.dumps({**entry, "sessionId": f"s-{i // 4}", "requestId": f"r-{i}"}) + "\n"
            )


BUILDERS = {
    "homeassistant": (_homeassistant, "runs.jsonl"),
    "rasa": (_rasa, "rasa_event.log"),
    "lex": (_lex, "log.jsonl"),
}


def _one(source: str, path: str, out: str) -> None:
    """Import in this (fresh) process and print a JSON line of figures."""
    module = __import__(f"fpi.importers.{source}", fromlist=["SOURCE_SPEC"])
    start = time.perf_counter()
    summary = module.SOURCE_SPEC.import_paths([path], out)
    seconds = time.perf_counter() - start
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(
        json.dumps(
            {
                "units": summary.read,
                "turns": summary.turns,
                "seconds": seconds,
                "peak_mb": peak_mb,
                "skipped": summary.skipped,
            }
        )
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--units", type=int, default=20_000)
    parser.add_argument("--one", nargs=3, metavar=("SOURCE", "PATH", "OUT"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.one:
        _one(*args.one)
        return
    print(
        f"{'source':<14}{'units':>8}{'turns':>8}{'seconds':>9}{'units/s':>9}{'turns/s':>9}"
        f"{'peak MB':>9}"
    )
    with tempfile.TemporaryDirectory() as tmp:
        for source, (build, name) in BUILDERS.items():
            path = Path(tmp) / name
            build(path, args.units)
            out = Path(tmp) / f"{source}.jsonl"
            done = subprocess.run(
                [sys.executable, __file__, "--one", source, str(path), str(out)],
                check=True,
                capture_output=True,
                text=True,
            )
            r = json.loads(done.stdout.strip().splitlines()[-1])
            assert r["skipped"] == 0, r
            print(
                f"{source:<14}{r['units']:>8,}{r['turns']:>8,}{r['seconds']:>9.2f}"
                f"{r['units'] / r['seconds']:>9,.0f}{r['turns'] / r['seconds']:>9,.0f}"
                f"{r['peak_mb']:>9.0f}"
            )


if __name__ == "__main__":
    main()
