"""Reading speed: `fpi.io.read_traces` against plain `pl.read_ndjson` on the same dump.

Generates a JSONL (and .jsonl.gz) dump of realistic nested `fpi-trace/1` records (a few
hand-written turns replicated with varied ids and timestamps), then times each reader in a fresh
subprocess so peak RSS is per reader: plain polars, `read_traces` (all in memory) and
`iter_trace_batches` (streaming; spills to disk above one batch). Prints rows, seconds, rows/s,
peak RSS and the ratio to polars.

    python benchmarks/bench_read.py --rows 1000000 [--out /tmp/fpi-bench] [--gz] [--repeat 2]
"""

from __future__ import annotations

import argparse
import gzip
import json
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

TEMPLATES: list[dict] = [
    {
        "locale": "en-US",
        "device": {"id": "dev-77", "type": "speaker", "has_screen": False},
        "wake": {"mode": "wake_word", "confidence": 0.93, "verifier_confidence": 0.88},
        "asr": {
            "text": "open the garage door",
            "confidence": 0.71,
            "nbest": [
                {"text": "open the garage door", "confidence": 0.71},
                {"text": "open a garage door", "confidence": 0.12},
            ],
            "audio_ms": 1830,
            "snr_db": 18.2,
        },
        "nlu": {
            "domain": "SmartHome",
            "intent": "OpenIntent",
            "confidence": 0.82,
            "nbest": [
                {"domain": "SmartHome", "intent": "OpenIntent", "confidence": 0.82},
                {"domain": "Shopping", "intent": "BuyIntent", "confidence": 0.07},
            ],
            "slots": [{"name": "device", "value": "garage door", "confidence": 0.90}],
        },
        "er": {
            "entities": [
                {
                    "slot": "device",
                    "mention": "garage door",
                    "resolved_value": "Garage Door",
                    "resolved_id": "ep-12",
                    "score": 0.97,
                    "candidates": 3,
                    "status": "resolved",
                }
            ]
        },
        "result": {
            "status": "success",
            "handler": "SmartHomeSkill",
            "action": "OpenDevice",
            "response_text": "Opening the garage door.",
            "latency_ms": 640,
        },
        "tts": {"text": "Opening the garage door.", "duration_ms": 1400},
        "signals": {"barge_in": False, "barge_in_ms": None, "explicit_feedback": None},
        "label": {"failure_point": "correct", "source": "3-annotator-majority"},
        "reference_labels": {"single_annotator": "correct"},
    },
    {
        "locale": "en-GB",
        "device": {"id": "dev-12", "type": "tv", "has_screen": True},
        "wake": {"mode": "wake_word", "confidence": 0.41, "verifier_confidence": 0.22},
        "asr": {
            "text": "and then she said the weather",
            "confidence": 0.38,
            "nbest": [{"text": "and then she said the weather", "confidence": 0.38}],
            "audio_ms": 2410.5,
            "snr_db": 6.4,
        },
        "nlu": {"domain": "Weather", "intent": "GetWeather", "confidence": 0.44, "slots": []},
        "result": {"status": "success", "handler": "WeatherSkill", "latency_ms": 910},
        "tts": {"text": "Right now it is 12 degrees and cloudy.", "duration_ms": 2600},
        "signals": {"barge_in": True, "barge_in_ms": 420, "explicit_feedback": "negative"},
        "label": {"failure_point": "false_wake", "source": "3-annotator-majority"},
    },
    {
        "locale": "de-DE",
        "device": {"id": "dev-3", "type": "car", "has_screen": True},
        "wake": {"mode": "follow_up", "confidence": None, "verifier_confidence": 0.95},
        "asr": {
            "text": "spiele harry potter",
            "confidence": 0.9,
            "nbest": [
                {"text": "spiele harry potter", "confidence": 0.9},
                {"text": "spiele harri potter", "confidence": 0.05},
            ],
            "audio_ms": 1200,
            "snr_db": 22.0,
        },
        "nlu": {
            "domain": "Video",
            "intent": "PlayVideo",
            "confidence": 0.61,
            "nbest": [
                {"domain": "Video", "intent": "PlayVideo", "confidence": 0.61},
                {"domain": "Books", "intent": "PlayAudiobook", "confidence": 0.33},
            ],
            "slots": [{"name": "title", "value": "harry potter", "confidence": 0.8}],
        },
        "er": {
            "entities": [
                {
                    "slot": "title",
                    "mention": "harry potter",
                    "resolved_value": "Harry Potter und der Stein der Weisen",
                    "resolved_id": "mv-881",
                    "score": 0.55,
                    "candidates": 8,
                    "status": "ambiguous",
                }
            ]
        },
        "result": {
            "status": "partial",
            "handler": "VideoSkill",
            "action": "Play",
            "response_text": "Hier ist Harry Potter.",
            "latency_ms": 1200,
        },
        "signals": {"barge_in": False, "explicit_feedback": None},
        "label": {"failure_point": "nlu", "source": "3-annotator-majority"},
        "reference_labels": {"single_annotator": "er", "heuristic": "nlu"},
    },
]

START = datetime(2026, 11, 17, 8, 0, tzinfo=UTC)


def write_dump(path: Path, rows: int) -> Path:
    """Write `rows` turns in dialogues of 1..6 turns, interleaved the way a live dump is."""
    opener = gzip.open if path.name.endswith(".gz") else open
    with opener(path, "wt", encoding="utf-8") as fh:
        for i in range(rows):
            dialogue, turn = divmod(i, 4)
            record = {
                "dialogue_id": f"d-{dialogue * 7919 % 10_000_019:08d}",
                "turn_index": turn,
                "timestamp": (START + timedelta(milliseconds=i * 1337)).isoformat(
                    timespec="milliseconds"
                ),
                "user_id": f"u-{dialogue % 50_000:05x}",
                **TEMPLATES[(i * 31) % len(TEMPLATES)],
            }
            fh.write(json.dumps(record) + "\n")
    return path


READERS = {
    "polars": "import polars as pl; from fpi.schema import TRACE_JSON_SCHEMA;"
    " rows = len(pl.read_ndjson({path!r}, schema=TRACE_JSON_SCHEMA))",
    "fpi": "from fpi.io import read_traces; rows = len(read_traces([{path!r}]))",
    "fpi-batches": "from fpi.io import iter_trace_batches;"
    " rows = sum(len(b.traces) for b in iter_trace_batches([{path!r}]))",
}


def time_reader(reader: str, path: Path) -> tuple[int, float, float]:
    """(rows, seconds, peak RSS MiB) of one reader in a fresh interpreter."""
    code = (
        "import resource, time, sys\n"
        "t = time.perf_counter()\n"
        f"{READERS[reader].format(path=str(path))}\n"
        "s = time.perf_counter() - t\n"
        "rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024\n"
        "print(rows, s, rss)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    rows, seconds, rss = out.stdout.split()
    return int(rows), float(seconds), float(rss)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--out", type=Path, default=Path("/tmp/fpi-bench"))
    parser.add_argument("--gz", action="store_true", help="also time a .jsonl.gz dump")
    parser.add_argument("--repeat", type=int, default=2, help="runs per reader (best is shown)")
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    suffixes = [".jsonl", ".jsonl.gz"] if args.gz else [".jsonl"]
    header = f"{'file':<28}{'reader':>12}{'rows':>11}{'seconds':>9}{'rows/s':>10}{'RSS MiB':>9}"
    print(f"{header}{'ratio':>7}")
    for suffix in suffixes:
        path = args.out / f"traces-{args.rows}{suffix}"
        if not path.exists():
            started = time.perf_counter()
            write_dump(path, args.rows)
            print(f"# wrote {path} in {time.perf_counter() - started:.1f}s", file=sys.stderr)
        runs: dict[str, list[tuple[int, float, float]]] = {reader: [] for reader in READERS}
        for _ in range(args.repeat):  # interleaved, best of: the machine may be shared
            for reader in READERS:
                runs[reader].append(time_reader(reader, path))
        baseline = min(seconds for _, seconds, _ in runs["polars"])
        for reader, results in runs.items():
            rows, seconds, rss = min(results, key=lambda r: r[1])
            print(
                f"{path.name:<28}{reader:>12}{rows:>11,}{seconds:>9.2f}{rows / seconds:>10,.0f}"
                f"{rss:>9.0f}{seconds / baseline:>7.2f}"
            )


if __name__ == "__main__":
    main()
