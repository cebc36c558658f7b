"""Triage: a failure point, class probabilities and SHAP reasons for every turn.

`triage_traces` works on one in-memory frame; `iter_triage` streams dumps of any size in
bounded batches (a dialogue never straddles two), and `TriageWriter` appends the batches to
Parquet, JSONL or CSV. Filters are plain functions over the triage frame.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
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
    from fpi.io import TraceBatch
    from fpi.model import ModelBundle

DEFAULT_TOP_K = 5


def _reason_values(
    values: np.ndarray, features: np.ndarray, metadata: list[dict]
) -> tuple[list[str | None], list[str | float | None]]:
    """Each value as shown to a person, and as its reason template reads it.

    A categorical code becomes its category name; NaN (a stage that did not run, or a
    category unseen in training) becomes None.
    """
    shown: list[str | None] = []
    typed: list[str | float | None] = []
    for value, index in zip(values.tolist(), features.tolist(), strict=True):
        entry = metadata[index]
        if value != value:
            shown.append(None)
            typed.append(None)
        elif entry["categorical"]:
            category = entry["categories"][int(value)]
            shown.append(category)
            typed.append(category)
        else:
            shown.append(f"{value:.4g}")
            typed.append(value)
    return shown, typed


def _reasons(
    matrix: np.ndarray, indices: np.ndarray, contributions: np.ndarray, bundle: ModelBundle
) -> pl.Series:
    """The top-k positive contributions per turn as `REASON` structs with filled templates."""
    from fpi.featurize import CATALOG, render_reason

    n, k = indices.shape
    rows = np.repeat(np.arange(n), k)
    flat_features, flat_contrib = indices.ravel(), contributions.ravel()
    keep = flat_contrib > 0
    rows, flat_features, flat_contrib = rows[keep], flat_features[keep], flat_contrib[keep]
    raw = matrix[rows, flat_features]
    metadata = bundle.metadata["features"]
    catalogue = {f.name: f for f in CATALOG}
    names = [metadata[i]["name"] for i in range(len(metadata))]
    shown, typed = _reason_values(raw, flat_features, metadata)
    texts = [
        render_reason(catalogue[names[i]], value)
        for i, value in zip(flat_features.tolist(), typed, strict=True)
    ]
    long = pl.DataFrame(
        {
            "row": rows,
            "feature": [names[i] for i in flat_features.tolist()],
            "value": shown,
            "contribution": flat_contrib.astype(np.float64),
            "text": texts,
        },
        schema={
            "row": pl.Int64,
            "feature": pl.String,
            "value": pl.String,
            "contribution": pl.Float64,
            "text": pl.String,
        },
    )
    grouped = long.group_by("row", maintain_order=True).agg(
        pl.struct([f.name for f in REASON.fields]).alias("reasons")
    )
    return (
        pl.DataFrame({"row": np.arange(n)})
        .join(grouped, on="row", how="left", maintain_order="left")
        .get_column("reasons")
        .fill_null(pl.lit([], dtype=pl.List(REASON)))
        .cast(pl.List(REASON))
    )


def triage_traces(
    traces: pl.DataFrame,
    bundle: ModelBundle,
    *,
    top_k: int = DEFAULT_TOP_K,
    abstain_below: float | None = None,
) -> pl.DataFrame:
    """One `TRIAGE_SCHEMA` row per turn, in input order.

    `failure_point` is the predicted class, or `uncertain` when the model's confidence is below
    `abstain_below` (a queue for human review); `predicted` always holds the model's class.
    """
    from fpi.fastshap import top_contributions
    from fpi.featurize import extract_features

    matrix = bundle.matrix(extract_features(traces))
    proba = bundle.predict_proba(matrix).reshape(len(traces), len(FAILURE_POINTS))
    predicted = proba.argmax(axis=1)
    confidence = proba[np.arange(len(traces)), predicted]
    values = bundle.explainer.shap_values(matrix, predicted)
    indices, contributions = top_contributions(values[:, :-1], top_k)
    predicted_names = np.asarray(FAILURE_POINTS, dtype=object)[predicted]
    if abstain_below is not None:
        failure_point = np.where(confidence < abstain_below, UNCERTAIN, predicted_names)
    else:
        failure_point = predicted_names
    get = traces.get_column
    out = pl.DataFrame(
        {
            "turn_id": get("turn_id"),
            "dialogue_id": get("dialogue_id"),
            "turn_index": get("turn_index"),
            "timestamp": get("timestamp"),
            "failure_point": pl.Series(failure_point.tolist(), dtype=pl.String),
            "predicted": pl.Series(predicted_names.tolist(), dtype=pl.String),
            "confidence": confidence,
            **{name: proba[:, i] for i, name in enumerate(PROBABILITY_COLUMNS)},
            "reasons": _reasons(matrix, indices, contributions, bundle),
            "locale": get("locale"),
            "device_type": get("device").struct.field("type"),
            "asr_text": get("asr").struct.field("text"),
            "domain": get("nlu").struct.field("domain"),
            "intent": get("nlu").struct.field("intent"),
            "result_status": get("result").struct.field("status"),
            "label": get("label").struct.field("failure_point"),
        }
    )
    return out.cast(dict(TRIAGE_SCHEMA))


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
    """What a streamed triage did: the nothing-lost counts, the class mix and the top defects."""

    read: int = 0
    triaged: int = 0
    rejected: int = 0
    kept: int = 0
    per_failure_point: dict[str, int] = field(default_factory=dict)
    top_defects: pl.DataFrame = field(default_factory=TRIAGE_SCHEMA.to_frame)

    def add(self, batch: TraceBatch, triaged: pl.DataFrame, kept: pl.DataFrame, top: int) -> None:
        self.read += batch.read
        self.triaged += len(triaged)
        self.rejected += len(batch.rejects)
        self.kept += len(kept)
        for name, count in kept.get_column("failure_point").value_counts().iter_rows():
            self.per_failure_point[name] = self.per_failure_point.get(name, 0) + count
        defects = kept.filter(~pl.col("failure_point").is_in([Stage.CORRECT.value, UNCERTAIN]))
        self.top_defects = (
            pl.concat([self.top_defects, defects], how="diagonal_relaxed")
            .sort("confidence", "turn_id", descending=[True, False])
            .head(top)
        )


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
    top_defects: int = 20,
    on_batch=None,
) -> TriageRun:
    """Triage dumps end to end: batches in, filtered rows to `out` (if given), counts back.

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
        ):
            kept = keep.apply(triaged)
            if writer is not None:
                writer.write(kept)
            run.add(batch, triaged, kept, top_defects)
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
) -> Iterator[tuple[TraceBatch, pl.DataFrame]]:
    """Triage dumps batch by batch, yielding each input batch with its triage frame.

    `transform(triaged) -> triaged` runs on every batch before it is yielded (e.g. adding
    owners). With `rejects=None` an invalid record stops the run; otherwise rejects are
    collected there and the run goes on.
    """
    from fpi.io import iter_trace_batches

    for batch in iter_trace_batches(paths, batch_turns=batch_turns, rejects_sink=rejects):
        triaged = triage_traces(batch.traces, bundle, top_k=top_k, abstain_below=abstain_below)
        yield batch, (transform(triaged) if transform is not None else triaged)


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
