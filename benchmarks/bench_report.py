"""Report speed: `fpi report` stages on a large synthetic triage output.

Generates (vectorised) a Parquet triage file of `--turns-per-week` turns a week over `--weeks`
ISO weeks (dialogues of 1-6 turns, ~20% defects, ~4% uncertain, 3 reasons a turn, 5,000
distinct utterances), then times reading the report window, `build_report` (with owners) and
`write_report`, as `fpi report` runs them (the read is a lazy scan, so its cost shows up
in `build_report`). Prints seconds per stage and peak RSS.

    python benchmarks/bench_report.py --turns-per-week 1000000 --weeks 8 [--out DIR] [--reuse]
"""

from __future__ import annotations

import argparse
import resource
import time
from datetime import UTC, date, datetime
from pathlib import Path

import numpy as np
import polars as pl

from fpi.owners import load_owners
from fpi.report import build_report, write_report
from fpi.report.inputs import read_report_input
from fpi.report.stats import week_window
from fpi.schema import DEVICE_TYPES, FAILURE_POINTS, TRIAGE_SCHEMA, UNCERTAIN

EXAMPLE_OWNERS = Path(__file__).parents[1] / "examples" / "owners.toml"
MIX = np.array([0.80, 0.03, 0.06, 0.05, 0.03, 0.03])
FEATURES = ["asr__confidence", "nlu__top_margin", "er__min_score", "context__next_gap_s"]


def synthetic_week(week: str, turns: int, rng: np.random.Generator) -> pl.DataFrame:
    year, number = week.split("-W")
    monday = date.fromisocalendar(int(year), int(number), 1)
    start = datetime.combine(monday, datetime.min.time(), tzinfo=UTC)
    lengths = rng.integers(1, 7, size=turns // 3)
    dialogue = np.repeat(np.arange(lengths.size), lengths)[:turns]
    turn_index = np.arange(dialogue.size) - np.searchsorted(dialogue, dialogue)
    n = dialogue.size
    stage = rng.choice(len(FAILURE_POINTS), size=n, p=MIX)
    confidence = rng.uniform(0.3, 1.0, size=n)
    probabilities = rng.dirichlet(np.ones(6), size=n) * (1 - confidence)[:, None]
    probabilities[np.arange(n), stage] = confidence
    predicted = np.array(FAILURE_POINTS)[stage]
    failure_point = np.where(confidence < 0.33, UNCERTAIN, predicted)
    reasons = pl.Series(
        "reasons",
        [
            [
                {
                    "feature": FEATURES[(i + k) % 4],
                    "value": "0.5",
                    "contribution": 1.0 / (k + 1),
                    "text": f"{FEATURES[(i + k) % 4]} was 0.5",
                }
                for k in range(3)
            ]
            for i in range(8)
        ],
        dtype=TRIAGE_SCHEMA["reasons"],
    )
    frame = pl.DataFrame(
        {
            "dialogue_id": f"{week}-" + pl.Series(dialogue).cast(pl.String),
            "turn_index": turn_index,
            "timestamp": pl.from_epoch(
                pl.Series(int(start.timestamp()) + dialogue % 600_000), time_unit="s"
            ),
            "failure_point": failure_point,
            "predicted": predicted,
            "confidence": confidence,
            **{f"p_{c}": probabilities[:, i] for i, c in enumerate(FAILURE_POINTS)},
            "locale": np.array(["en-US", "en-GB", "de-DE", "fr-FR"])[rng.integers(0, 4, n)],
            "device_type": np.array(DEVICE_TYPES)[rng.integers(0, len(DEVICE_TYPES), n)],
            "asr_text": "play song " + pl.Series(rng.integers(0, 5000, n)).cast(pl.String),
            "domain": np.array(["Music", "Weather", "SmartHome", "Shopping"])[
                rng.integers(0, 4, n)
            ],
            "intent": np.array(["Play", "Get", "TurnOn", "Buy", "Stop"])[rng.integers(0, 5, n)],
            "result_status": "success",
            "label": None,
        }
    )
    return (
        frame.with_columns(
            pl.format("{}/{}", "dialogue_id", "turn_index").alias("turn_id"),
            pl.col("timestamp").cast(pl.Datetime("us")).dt.replace_time_zone("UTC"),
            reasons.gather(pl.Series(rng.integers(0, 8, n))).alias("reasons"),
        )
        .select(TRIAGE_SCHEMA.names())
        .cast(dict(TRIAGE_SCHEMA))
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--turns-per-week", type=int, default=1_000_000)
    parser.add_argument("--weeks", type=int, default=8)
    parser.add_argument("--week", default="2026-W47")
    parser.add_argument("--out", type=Path, default=Path("/tmp/fpi-bench-report"))
    parser.add_argument("--reuse", action="store_true", help="Keep an existing triage file.")
    args = parser.parse_args()
    weeks, since, until = week_window(args.week, args.weeks)
    args.out.mkdir(parents=True, exist_ok=True)
    source = args.out / "triage.parquet"
    rng = np.random.default_rng(0)
    if not (args.reuse and source.exists()):
        started = time.perf_counter()
        frames = (synthetic_week(w, args.turns_per_week, rng) for w in weeks)
        pl.concat(frames).write_parquet(source)
        print(f"generated {source} in {time.perf_counter() - started:.1f} s")
    owners = load_owners(EXAMPLE_OWNERS)
    timings = {}
    started = time.perf_counter()
    triaged = read_report_input([source], since=since, until=until)
    timings["read window"] = time.perf_counter() - started
    started = time.perf_counter()
    report = build_report(triaged, week=args.week, weeks_back=args.weeks, owners=owners)
    timings["build_report"] = time.perf_counter() - started
    started = time.perf_counter()
    write_report(report, args.out / "report")
    timings["write_report"] = time.perf_counter() - started
    peak_gb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024**2
    turns = report.tables["trend"].filter(pl.col("failure_point") == "all")["classified"].sum()
    print(f"{turns:,} classified turns over {len(weeks)} weeks")
    for stage, seconds in timings.items():
        print(f"  {stage:<13} {seconds:6.2f} s")
    print(f"  peak RSS      {peak_gb:6.2f} GB")


if __name__ == "__main__":
    main()
