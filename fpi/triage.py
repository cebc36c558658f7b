"""Triage: a failure point, class probabilities and SHAP reasons for every turn.

`triage_traces` works on one in-memory frame; `iter_triage` streams dumps of any size in
bounded batches (a dialogue never straddles two), and `fpi.io.TriageWriter` writes the
batches to Parquet, JSONL or CSV in input order. Filters are plain functions over the triage
frame.
"""

from __future__ import annotations

import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import polars as pl

from fpi.io.triagefile import ORDER, TriageWriter
from fpi.schema import (
    FAILURE_POINTS,
    PROBABILITY_COLUMNS,
    TRIAGE_SCHEMA,
    UNCERTAIN,
    Reject,
    Stage,
)

if TYPE_CHECKING:
    from fpi.io import RejectsSink, TraceBatch
    from fpi.model import ModelBundle
    from fpi.shift import ShiftCheck, ShiftReport

DEFAULT_TOP_K = 5


@dataclass
class PhaseTimes:
    """Seconds spent per phase of a triage run, wall clock and CPU (all threads)."""

    wall: dict[str, float] = field(default_factory=dict)
    cpu: dict[str, float] = field(default_factory=dict)

    @contextmanager
    def phase(self, name: str) -> Iterator[None]:
        wall, cpu = time.perf_counter(), time.process_time()
        try:
            yield
        finally:
            self.wall[name] = self.wall.get(name, 0.0) + time.perf_counter() - wall
            self.cpu[name] = self.cpu.get(name, 0.0) + time.process_time() - cpu

    def frame(self) -> pl.DataFrame:
        """One row per phase, in the order first timed: wall and CPU seconds, share of wall."""
        total = sum(self.wall.values()) or 1.0
        return pl.DataFrame(
            {
                "phase": list(self.wall),
                "wall_s": list(self.wall.values()),
                "cpu_s": [self.cpu[name] for name in self.wall],
                "share": [seconds / total for seconds in self.wall.values()],
            },
            schema={
                "phase": pl.String,
                "wall_s": pl.Float64,
                "cpu_s": pl.Float64,
                "share": pl.Float64,
            },
        )


def triage_traces(
    traces: pl.DataFrame,
    bundle: ModelBundle,
    *,
    top_k: int = DEFAULT_TOP_K,
    abstain_below: float | None = None,
    times: PhaseTimes | None = None,
) -> pl.DataFrame:
    """One `TRIAGE_SCHEMA` row per turn, in input order.

    `failure_point` is the predicted class, or `uncertain` when the model's confidence is below
    `abstain_below` (a queue for human review); `predicted` always holds the model's class.
    `times`, when given, accumulates the seconds of each phase.
    """
    from fpi.featurize import extract_features
    from fpi.predict import predict, reason_lists, top_contributions

    times = times if times is not None else PhaseTimes()
    with times.phase("features"):
        features = extract_features(traces)
    with times.phase("encode"):
        matrix = bundle.matrix(features)
    with times.phase("predict"):
        predictions = predict(bundle, matrix)
        proba, predicted = predictions.probabilities, predictions.predicted
        confidence = predictions.confidence
    with times.phase("explain"):
        indices, contributions = top_contributions(bundle, matrix, predicted, top_k)
    with times.phase("reasons"):
        reasons = reason_lists(matrix, indices, contributions, bundle)
    with times.phase("assemble"):
        predicted_names = pl.Series(FAILURE_POINTS, dtype=pl.String).gather(predicted)
        failure_point = predicted_names
        if abstain_below is not None:
            failure_point = predicted_names.clone().scatter(
                np.flatnonzero(confidence < abstain_below), UNCERTAIN
            )
        get = traces.get_column
        out = pl.DataFrame(
            {
                "turn_id": get("turn_id"),
                "dialogue_id": get("dialogue_id"),
                "turn_index": get("turn_index"),
                "timestamp": get("timestamp"),
                "failure_point": failure_point,
                "predicted": predicted_names,
                "confidence": confidence,
                **{name: proba[:, i] for i, name in enumerate(PROBABILITY_COLUMNS)},
                "reasons": reasons,
                "locale": get("locale"),
                "device_type": get("device").struct.field("type"),
                "asr_text": get("asr").struct.field("text"),
                "domain": get("nlu").struct.field("domain"),
                "intent": get("nlu").struct.field("intent"),
                "result_status": get("result").struct.field("status"),
                "label": get("label").struct.field("failure_point"),
            }
        ).cast(dict(TRIAGE_SCHEMA))
    return out


@dataclass(frozen=True)
class TriageFilter:
    """Which triaged turns to keep; an empty field keeps everything."""

    components: tuple[str, ...] = ()
    min_confidence: float | None = None
    domains: tuple[str, ...] = ()
    intents: tuple[str, ...] = ()
    device_types: tuple[str, ...] = ()
    since: datetime | None = None
    until: datetime | None = None
    owners: tuple[str, ...] = ()

    def apply(self, triaged: pl.DataFrame) -> pl.DataFrame:
        conditions = []
        for column, allowed in (
            ("failure_point", self.components),
            ("domain", self.domains),
            ("intent", self.intents),
            ("device_type", self.device_types),
            ("owner", self.owners),
        ):
            if allowed:
                conditions.append(pl.col(column).is_in(list(allowed)).fill_null(False))
        if self.min_confidence is not None:
            conditions.append(pl.col("confidence") >= self.min_confidence)
        if self.since is not None:
            conditions.append(pl.col("timestamp") >= _utc(self.since))
        if self.until is not None:
            conditions.append(pl.col("timestamp") < _utc(self.until))
        return triaged.filter(*conditions) if conditions else triaged


def _utc(moment: datetime) -> pl.Expr:
    return pl.lit(moment).dt.replace_time_zone("UTC") if moment.tzinfo is None else pl.lit(moment)


@dataclass
class TriageRun:
    """What a streamed triage did: the nothing-lost counts, the class mix and, per failure
    point, its most confident defects (so every stage owner sees their own)."""

    read: int = 0
    triaged: int = 0
    rejected: int = 0
    kept: int = 0
    per_failure_point: dict[str, int] = field(default_factory=dict)
    top_defects: pl.DataFrame = field(default_factory=TRIAGE_SCHEMA.to_frame)
    times: PhaseTimes = field(default_factory=PhaseTimes)
    shift: ShiftReport | None = None

    def add(
        self, batch: TraceBatch, triaged: pl.DataFrame, kept: pl.DataFrame, per_stage: int
    ) -> None:
        self.read += batch.read
        self.triaged += len(triaged)
        self.rejected += batch.rejected
        self.kept += len(kept)
        for name, count in kept.get_column("failure_point").value_counts().iter_rows():
            self.per_failure_point[name] = self.per_failure_point.get(name, 0) + count
        defects = kept.filter(~pl.col("failure_point").is_in([Stage.CORRECT.value, UNCERTAIN]))
        pipeline_order = pl.col("failure_point").replace_strict(
            {name: i for i, name in enumerate(FAILURE_POINTS)}, return_dtype=pl.Int32
        )
        best = (
            pl.concat([self.top_defects, defects], how="diagonal_relaxed")
            .sort("confidence", "turn_id", descending=[True, False])
            .group_by("failure_point", maintain_order=True)
            .head(per_stage)
            .sort(pipeline_order, maintain_order=True)
        )
        # Rebuilt from its rows: a slice's strings are views that would keep every batch's
        # string buffers alive, and memory would grow with the number of batches.
        self.top_defects = pl.DataFrame(best.rows(), schema=best.schema, orient="row")


def run_triage(
    paths: Sequence[str | Path],
    bundle: ModelBundle,
    *,
    out: Path | None = None,
    keep: TriageFilter = TriageFilter(),
    top_k: int = DEFAULT_TOP_K,
    abstain_below: float | None = None,
    rejects: RejectsSink | None = None,
    batch_turns: int = 200_000,
    transform=None,
    defects_per_stage: int = 4,
    on_batch=None,
    max_line_bytes: int | None = None,
    shift: ShiftCheck | None = None,
) -> TriageRun:
    """Triage dumps end to end: batches in, filtered rows to `out` (if given) in input order,
    counts back, with the `defects_per_stage` most confident defects of each failure point.

    `out` is replaced only when the run succeeds. `on_batch(run)` is called after every
    batch (for progress displays). With `shift`, every batch is offered to it and `run.shift`
    holds its report; a Parquet output records it in its file metadata
    (`fpi.shift.triage_metadata`).
    """
    run = TriageRun()
    writer = TriageWriter(out) if out is not None else None
    try:
        for batch, triaged in iter_triage(
            paths,
            bundle,
            top_k=top_k,
            abstain_below=abstain_below,
            rejects=rejects,
            batch_turns=batch_turns,
            transform=transform,
            times=run.times,
            max_line_bytes=max_line_bytes,
        ):
            with run.times.phase("filter"):
                kept = keep.apply(triaged.with_columns(batch.order.alias(ORDER)))
            if writer is not None:
                with run.times.phase("write"):
                    writer.write(kept)
            with run.times.phase("summary"):
                run.add(batch, triaged, kept.drop(ORDER), defects_per_stage)
            if shift is not None:
                with run.times.phase("shift"):
                    shift.offer(batch.traces)
            if on_batch is not None:
                on_batch(run)
        if shift is not None:
            from fpi.shift import triage_metadata

            with run.times.phase("shift"):
                run.shift = shift.report()
                if writer is not None:
                    writer.metadata.update(triage_metadata(shift, run.shift))
    except BaseException:
        if writer is not None:
            writer.abort()
        raise
    if writer is not None:
        with run.times.phase("write"):
            writer.close()
    return run


def iter_triage(
    paths: Sequence[str | Path],
    bundle: ModelBundle,
    *,
    top_k: int = DEFAULT_TOP_K,
    abstain_below: float | None = None,
    rejects: RejectsSink | None = None,
    batch_turns: int = 200_000,
    transform=None,
    times: PhaseTimes | None = None,
    max_line_bytes: int | None = None,
) -> Iterator[tuple[TraceBatch, pl.DataFrame]]:
    """Triage dumps batch by batch, yielding each input batch with its triage frame.

    `transform(triaged) -> triaged` runs on every batch before it is yielded (e.g. adding
    owners). With `rejects=None` an invalid record stops the run; otherwise rejects are
    collected there (a list, or a callable such as `fpi.io.RejectsWriter`) and the run goes
    on. `times`, when given, accumulates phase seconds.
    """
    from fpi.io import MAX_LINE_BYTES, iter_trace_batches

    times = times if times is not None else PhaseTimes()
    batches = iter_trace_batches(
        paths,
        batch_turns=batch_turns,
        rejects_sink=rejects,
        max_line_bytes=max_line_bytes or MAX_LINE_BYTES,
    )
    while True:
        with times.phase("read"):
            batch = next(batches, None)
        if batch is None:
            return
        triaged = triage_traces(
            batch.traces, bundle, top_k=top_k, abstain_below=abstain_below, times=times
        )
        if transform is not None:
            with times.phase("transform"):
                triaged = transform(triaged)
        yield batch, triaged


def triage_paths(
    paths: Sequence[str | Path],
    *,
    model_dir: Path | str | None = None,
    rejects: list[Reject] | None = None,
    top_k: int = DEFAULT_TOP_K,
    abstain_below: float | None = None,
) -> pl.DataFrame:
    """Triage whole dumps into one in-memory frame (for notebooks and reports)."""
    from fpi.model import load_bundle

    bundle = load_bundle(model_dir)
    frames = [
        triaged
        for _, triaged in iter_triage(
            paths, bundle, top_k=top_k, abstain_below=abstain_below, rejects=rejects
        )
    ]
    return pl.concat(frames) if frames else TRIAGE_SCHEMA.to_frame()
