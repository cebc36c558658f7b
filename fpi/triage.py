"""Triage: a failure point, class probabilities and SHAP reasons for every turn.

`triage_traces` works on one in-memory frame; `iter_triage` streams dumps of any size in
bounded batches (a dialogue never straddles two), and `TriageWriter` appends the batches to
Parquet, JSONL or CSV. Filters are plain functions over the triage frame.
"""

from __future__ import annotations

import functools
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import polars as pl

from fpi.errors import FpiError
from fpi.schema import (
    FAILURE_POINTS,
    PROBABILITY_COLUMNS,
    REASON,
    TRIAGE_SCHEMA,
    UNCERTAIN,
    Reject,
    Stage,
)

if TYPE_CHECKING:
    from fpi.fastpredict import FastPredictor
    from fpi.fastshap import FastExplainer
    from fpi.io import TraceBatch
    from fpi.model import ModelBundle

DEFAULT_TOP_K = 5


def _rendered(features: np.ndarray, values: np.ndarray, bundle: ModelBundle) -> pl.DataFrame:
    """Name, shown value and reason text for each (feature index, value) pair.

    A categorical code becomes its category name; NaN (a stage that did not run, or a
    category unseen in training) becomes a null value and a "missing" reason.
    """
    from fpi.featurize import CATALOG, render_reason

    metadata = bundle.metadata["features"]
    catalogue = {f.name: f for f in CATALOG}
    names, shown, texts = [], [], []
    for index, value in zip(features.tolist(), values.tolist(), strict=True):
        entry = metadata[index]
        typed: str | float | None
        if value != value:
            typed = display = None
        elif entry["categorical"]:
            typed = display = entry["categories"][int(value)]
        else:
            typed, display = value, f"{value:.4g}"
        names.append(entry["name"])
        shown.append(display)
        texts.append(render_reason(catalogue[entry["name"]], typed))
    return pl.DataFrame(
        {"feature": names, "value": shown, "text": texts},
        schema={"feature": pl.String, "value": pl.String, "text": pl.String},
    )


def _reasons(
    matrix: np.ndarray, indices: np.ndarray, contributions: np.ndarray, bundle: ModelBundle
) -> pl.Series:
    """The top-k positive contributions per turn as lists of `REASON` structs.

    Each distinct (feature, value) pair is rendered once (a batch repeats most of them),
    then the reasons are cut into one list per turn by offsets: the positive contributions
    are a prefix of each turn's top-k, which comes sorted largest first.
    """
    import pyarrow as pa

    n, k = indices.shape
    positive = contributions > 0
    rows = np.repeat(np.arange(n), k)[positive.ravel()]
    features = indices[positive]
    values = matrix[rows, features]
    reasons = pl.DataFrame(
        {
            "index": features.astype(np.int32),
            "bits": values.view(np.int64),  # the exact value: -0.0 and NaN payloads stay apart
            "contribution": contributions[positive],
        }
    )
    distinct = reasons.select("index", "bits").unique(maintain_order=True)
    rendered = _rendered(
        distinct.get_column("index").to_numpy(),
        distinct.get_column("bits").to_numpy().view(np.float64),
        bundle,
    )
    structs = (
        reasons.join(
            pl.concat([distinct, rendered], how="horizontal"),
            on=["index", "bits"],
            how="left",
            maintain_order="left",
        )
        .select(pl.struct([f.name for f in REASON.fields]).alias("reasons"))
        .get_column("reasons")
        .rechunk()
    )
    offsets = np.zeros(n + 1, dtype=np.int32)
    np.cumsum(positive.sum(axis=1), out=offsets[1:])
    lists = pa.ListArray.from_arrays(pa.array(offsets), structs.to_arrow())
    return pl.Series("reasons", lists).cast(pl.List(REASON))


@functools.lru_cache(maxsize=4)
def _predictor(explainer: FastExplainer) -> FastPredictor:
    from fpi.fastpredict import FastPredictor

    return FastPredictor(explainer)


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

    times = times if times is not None else PhaseTimes()
    with times.phase("features"):
        features = extract_features(traces)
    with times.phase("encode"):
        matrix = bundle.matrix(features)
    with times.phase("predict"):
        proba = _predictor(bundle.explainer).predict_proba(matrix)
        predicted = proba.argmax(axis=1)
        confidence = proba[np.arange(len(traces)), predicted]
    with times.phase("explain"):
        k = min(top_k, bundle.explainer.num_features)  # no more reasons than features
        indices, contributions = bundle.explainer.explain_top(matrix, predicted, k)
    with times.phase("reasons"):
        reasons = _reasons(matrix, indices, contributions, bundle)
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

    def add(
        self, batch: TraceBatch, triaged: pl.DataFrame, kept: pl.DataFrame, per_stage: int
    ) -> None:
        self.read += batch.read
        self.triaged += len(triaged)
        self.rejected += len(batch.rejects)
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
    rejects: list[Reject] | None = None,
    batch_turns: int = 200_000,
    transform=None,
    defects_per_stage: int = 4,
    on_batch=None,
) -> TriageRun:
    """Triage dumps end to end: batches in, filtered rows to `out` (if given), counts back,
    with the `defects_per_stage` most confident defects of each failure point.

    `on_batch(run)` is called after every batch (for progress displays).
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
        ):
            with run.times.phase("filter"):
                kept = keep.apply(triaged)
            if writer is not None:
                with run.times.phase("write"):
                    writer.write(kept)
            with run.times.phase("summary"):
                run.add(batch, triaged, kept, defects_per_stage)
            if on_batch is not None:
                on_batch(run)
    finally:
        if writer is not None:
            writer.close()
    return run


def iter_triage(
    paths: Sequence[str | Path],
    bundle: ModelBundle,
    *,
    top_k: int = DEFAULT_TOP_K,
    abstain_below: float | None = None,
    rejects: list[Reject] | None = None,
    batch_turns: int = 200_000,
    transform=None,
    times: PhaseTimes | None = None,
) -> Iterator[tuple[TraceBatch, pl.DataFrame]]:
    """Triage dumps batch by batch, yielding each input batch with its triage frame.

    `transform(triaged) -> triaged` runs on every batch before it is yielded (e.g. adding
    owners). With `rejects=None` an invalid record stops the run; otherwise rejects are
    collected there and the run goes on. `times`, when given, accumulates phase seconds.
    """
    from fpi.io import iter_trace_batches

    times = times if times is not None else PhaseTimes()
    batches = iter_trace_batches(paths, batch_turns=batch_turns, rejects_sink=rejects)
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


def flatten_reasons(triaged: pl.DataFrame) -> pl.DataFrame:
    """Reasons as one text column ("text (+0.42); ..."), for flat formats such as CSV."""
    text = pl.col("reasons").list.eval(
        pl.format(
            "{} ({})",
            pl.element().struct.field("text"),
            pl.element().struct.field("contribution").round(3).cast(pl.String),
        )
    )
    return triaged.with_columns(text.list.join("; ").alias("reasons"))


class TriageWriter:
    """Append triage batches to one file; the format follows the suffix."""

    SUFFIXES = (".parquet", ".jsonl", ".csv")

    def __init__(self, path: Path | str) -> None:
        self.path = Path(path)
        self.suffix = self.path.suffix.lower()
        if self.suffix not in self.SUFFIXES:
            raise FpiError(f"{self.path}: unknown output format (use {', '.join(self.SUFFIXES)})")
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._parquet = None
        self._handle = None
        self._header = True

    def write(self, triaged: pl.DataFrame) -> None:
        if self.suffix == ".parquet":
            import pyarrow.parquet as pq

            table = triaged.to_arrow()
            if self._parquet is None:
                self._parquet = pq.ParquetWriter(self.path, table.schema, compression="zstd")
            self._parquet.write_table(table)
            return
        if self._handle is None:
            self._handle = self.path.open("wb")
        if self.suffix == ".jsonl":
            triaged.write_ndjson(self._handle)
        else:
            flatten_reasons(triaged).write_csv(self._handle, include_header=self._header)
            self._header = False

    def close(self) -> None:
        if self._parquet is None and self._handle is None:
            self.write(TRIAGE_SCHEMA.to_frame())
        if self._parquet is not None:
            self._parquet.close()
        if self._handle is not None:
            self._handle.close()

    def __enter__(self) -> TriageWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
