"""A realistic voice-assistant trace simulator: the project's demo, test and training data.

`simulate(turns, seed=..., scenario=...)` returns `fpi-trace/1` turns (a `TRACE_SCHEMA`
frame) with gold failure points in `label` and a noisy single annotator in
`reference_labels`. Users with habits talk to devices in dialogues; every stage (wake,
ASR, NLU, ER, result) can fail in a stage-typical way, and users react to failures in the
next turn of the dialogue.
"""

from __future__ import annotations

import json
import zlib
from dataclasses import dataclass
from datetime import UTC, date, datetime
from pathlib import Path

import numpy as np
import polars as pl

from fpi.errors import InputError
from fpi.schema import FAILURE_POINTS, TRACE_JSON_SCHEMA, TRACE_SCHEMA
from fpi.simulate.catalog import (
    BASE_INTENTS,
    DOMAIN_WEIGHTS,
    NEW_DOMAINS,
    NEW_INTENTS,
    cumulative,
)
from fpi.simulate.draws import Draws
from fpi.simulate.pipeline import SCENARIO_SETTINGS, DialogueSimulator, Scenario, annotate
from fpi.simulate.randomize import PipelineConfig, draw_pipeline
from fpi.simulate.users import day_weights, make_users, session_start_ms

SCENARIOS: tuple[str, ...] = ("base", "farfield", "newdomain", "drift")
SOURCE_FILE = "simulated"
LABEL_SOURCE = "simulator"
#: About one user per this many turns: each user has a few dozen dialogues in the window.
TURNS_PER_USER = 45

#: Turns per randomly drawn pipeline in `simulate_randomized` (whole dialogues, so about):
#: measured, more pipelines of fewer turns each transfer better to pipelines never drawn
#: (README: "Transfer: held-out pipelines and DSTC2 zero-shot").
BLOCK_TURNS = 500

__all__ = [
    "SCENARIOS",
    "PipelineConfig",
    "SimulationSummary",
    "draw_pipeline",
    "randomized_pipelines",
    "simulate",
    "simulate_pipeline",
    "simulate_randomized",
    "simulate_to_file",
    "summarize",
]


def simulate(
    turns: int,
    *,
    seed: int = 0,
    scenario: str = "base",
    start: date = date(2026, 11, 2),
    weeks: int = 4,
) -> pl.DataFrame:
    """`turns` simulated turns (a `TRACE_SCHEMA` frame), deterministic per seed and scenario.

    Timestamps fall within `weeks` weeks from `start` (UTC midnight). Dialogue ids embed the
    scenario and seed, so frames of different calls can be concatenated.
    """
    if turns < 0 or weeks < 1 or seed < 0:
        raise ValueError("turns and seed must be >= 0 and weeks >= 1")
    if scenario not in SCENARIOS:
        raise ValueError(f"unknown scenario {scenario!r}; choose from {', '.join(SCENARIOS)}")
    draws = Draws(np.random.default_rng([seed, SCENARIOS.index(scenario)]))
    return _simulate(
        turns, draws, SCENARIO_SETTINGS[scenario], f"{scenario}-{seed}", start, weeks, None
    )


def simulate_pipeline(
    turns: int,
    pipeline: PipelineConfig,
    *,
    seed: int = 0,
    start: date = date(2026, 11, 2),
    weeks: int = 4,
) -> pl.DataFrame:
    """`turns` turns of one (e.g. randomly drawn) pipeline: its world and its way of logging.

    Deterministic per seed and pipeline; dialogue ids embed the pipeline's name and the seed.
    """
    if turns < 0 or weeks < 1 or seed < 0:
        raise ValueError("turns and seed must be >= 0 and weeks >= 1")
    rng = np.random.default_rng([seed, len(SCENARIOS), zlib.crc32(pipeline.name.encode())])
    noise = Draws(
        np.random.default_rng([seed, len(SCENARIOS) + 1, zlib.crc32(pipeline.name.encode())])
    )
    tag = f"{pipeline.name}-{seed}"
    return _simulate(turns, Draws(rng), pipeline.world, tag, start, weeks, (pipeline, noise))


def randomized_pipelines(seed: int, count: int, *, prefix: str = "rand") -> list[PipelineConfig]:
    """`count` pipelines drawn at random (`draw_pipeline`), deterministic per seed."""
    rng = np.random.default_rng([seed, 7919])
    return [draw_pipeline(rng, f"{prefix}{seed}p{i:03d}") for i in range(count)]


def simulate_randomized(
    turns: int,
    *,
    seed: int = 0,
    block_turns: int = BLOCK_TURNS,
    start: date = date(2026, 11, 2),
    weeks: int = 4,
) -> pl.DataFrame:
    """`turns` turns from a freshly drawn pipeline every `block_turns` turns (domain
    randomisation): each block has its own failure rates, calibrations, logged fields, status
    meanings and user habits. Deterministic per seed."""
    if block_turns < 1:
        raise ValueError("block_turns must be >= 1")
    blocks = -(-turns // block_turns)
    frames = []
    for i, pipeline in enumerate(randomized_pipelines(seed, blocks)):
        size = min(block_turns, turns - i * block_turns)
        frames.append(simulate_pipeline(size, pipeline, seed=seed, start=start, weeks=weeks))
    if not frames:
        return simulate(0, seed=seed)
    return pl.concat(frames).with_columns(
        pl.int_range(1, pl.len() + 1, dtype=pl.Int64).alias("source_line")
    )


def _simulate(
    turns: int,
    draws: Draws,
    settings: Scenario,
    tag: str,
    start: date,
    weeks: int,
    observer: tuple[PipelineConfig, Draws] | None,
) -> pl.DataFrame:
    intents = BASE_INTENTS + (NEW_INTENTS if settings.new_domain_share else ())
    domains = tuple(dict.fromkeys(i.domain for i in intents))
    weights = _domain_weights(domains, settings.new_domain_share)
    users = make_users(max(20, turns // TURNS_PER_USER), domains, weights, draws, tag)
    simulator = DialogueSimulator(settings, draws, domains)

    start_ms = int(datetime(start.year, start.month, start.day, tzinfo=UTC).timestamp() * 1000)
    days = 7 * weeks
    end_ms = start_ms + days * 86_400_000
    day_cum = day_weights(start_ms, days)
    user_cum = cumulative([u.activity for u in users])
    dialogues = []
    total = 0
    while total < turns:
        user = draws.weighted(users, user_cum)
        begin = session_start_ms(user, draws, start_ms, days, day_cum)
        dialogue = simulator.dialogue(user, begin)[: turns - total]
        dialogues.append((begin, len(dialogues), dialogue))
        total += len(dialogue)
    dialogues.sort(key=lambda item: (item[0], item[1]))

    rows: dict[str, list] = {name: [] for name in TRACE_JSON_SCHEMA.names()}
    timestamps: list[int] = []
    for n, (_, _, dialogue) in enumerate(dialogues):
        dialogue_id = f"sim-{tag}-{n:07d}"
        for index, turn in enumerate(dialogue):
            record, turn_id = turn.record, f"{dialogue_id}/{index}"
            if observer is not None:
                pipeline, noise = observer
                record = pipeline.observe(
                    record, noise.z(), turn_id=turn_id, failure_point=turn.label
                )
            rows["dialogue_id"].append(dialogue_id)
            rows["turn_index"].append(index)
            rows["turn_id"].append(turn_id)
            timestamps.append(min(int(record["t"]), end_ms - 1) * 1000)
            for name in ("locale", "user_id", "device", "wake", "asr", "nlu", "er", "result",
                         "tts", "signals"):  # fmt: skip
                rows[name].append(record[name])
            rows["label"].append({"failure_point": turn.label, "source": LABEL_SOURCE})
            annotator = annotate(turn.label, draws)
            rows["reference_labels"].append(json.dumps({"single_annotator": annotator}))
    rows["timestamp"] = timestamps
    columns = {
        name: pl.Series(name, values, dtype=TRACE_SCHEMA[name] if name != "timestamp" else pl.Int64)
        for name, values in rows.items()
    }
    frame = pl.DataFrame(columns).with_columns(
        pl.col("timestamp").cast(pl.Datetime("us")).dt.replace_time_zone("UTC"),
        pl.lit(SOURCE_FILE).alias("source_file"),
        pl.int_range(1, pl.len() + 1, dtype=pl.Int64).alias("source_line"),
    )
    return frame.select(TRACE_SCHEMA.names()).cast(dict(TRACE_SCHEMA))


def _domain_weights(domains: tuple[str, ...], new_share: float) -> tuple[float, ...]:
    """Global popularity of each domain; new domains together take `new_share` of requests."""
    base = sum(DOMAIN_WEIGHTS[d] for d in domains if d not in NEW_DOMAINS)
    new = [d for d in domains if d in NEW_DOMAINS]
    per_new = base * new_share / (1.0 - new_share) / len(new) if new else 0.0
    return tuple(per_new if d in NEW_DOMAINS else DOMAIN_WEIGHTS[d] for d in domains)


@dataclass(frozen=True, slots=True)
class SimulationSummary:
    """What a simulation produced, for a short report."""

    path: Path | None
    turns: int
    dialogues: int
    first: datetime | None
    last: datetime | None
    class_mix: dict[str, int]  # gold failure point -> turns


def summarize(traces: pl.DataFrame, path: Path | None = None) -> SimulationSummary:
    """Turns, dialogues, date range and gold class mix of a simulated frame."""
    counts = dict(traces.group_by(pl.col("label").struct.field("failure_point")).len().iter_rows())
    return SimulationSummary(
        path=path,
        turns=traces.height,
        dialogues=traces["dialogue_id"].n_unique(),
        first=traces["timestamp"].min(),
        last=traces["timestamp"].max(),
        class_mix={c: counts.get(c, 0) for c in FAILURE_POINTS},
    )


def simulate_to_file(
    path: Path | str,
    turns: int,
    *,
    seed: int = 0,
    scenario: str = "base",
    start: date = date(2026, 11, 2),
    weeks: int = 4,
    randomize: bool = False,
    block_turns: int = BLOCK_TURNS,
) -> SimulationSummary:
    """Simulate and write the traces (format by suffix, see `fpi.io.write_traces`); with
    `randomize`, domain-randomised pipelines (`simulate_randomized`) instead of `scenario`."""
    from fpi.io import DUMP_SUFFIXES, dump_format, write_traces

    if dump_format(path) is None:
        raise InputError(f"{path}: unknown dump format (use {', '.join(DUMP_SUFFIXES)})")
    if randomize:
        traces = simulate_randomized(
            turns, seed=seed, block_turns=block_turns, start=start, weeks=weeks
        )
    else:
        traces = simulate(turns, seed=seed, scenario=scenario, start=start, weeks=weeks)
    try:
        written = write_traces(traces, path)
    except OSError as exc:
        raise InputError(f"{path}: cannot write the dump ({exc.strerror or exc})") from exc
    return summarize(traces, written)
