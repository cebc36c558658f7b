"""The feature matrix: one row per turn, one column per catalogue feature (`fpi.features`).

Every feature is a polars expression over a trace frame (`fpi.schema.TRACE_SCHEMA`), so the
whole matrix is one vectorised `select`, eager or lazy. Numeric features are Float64 (flags
0.0/1.0); categorical ones stay String, for the model to code with its own fixed categories.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, TypeVar

import polars as pl

from fpi.errors import InputError
from fpi.features import CATALOG, Feature
from fpi.features.context import DIALOGUE_ORDER
from fpi.schema import REQUIRED_FIELDS, TRACE_SCHEMA, Reject

__all__ = [
    "CATALOG",
    "catalogue_frame",
    "extract_features",
    "feature_dtype",
    "feature_schema",
    "render_reason",
    "write_features",
]

Frame = TypeVar("Frame", pl.DataFrame, pl.LazyFrame)
#: Where each row stood in the input, while the frame is in dialogue order.
_INPUT_ROW = "__fpi_input_row"
#: Trace columns no feature may see (nor the sort carry along).
_NEVER_READ = ("label", "reference_labels", "source_file", "source_line")


def feature_dtype(feature: Feature) -> pl.DataType:
    return pl.String() if feature.categorical else pl.Float64()


def feature_schema() -> pl.Schema:
    """The columns `extract_features` returns: `turn_id`, then the catalogue in order."""
    return pl.Schema({"turn_id": pl.String(), **{f.name: feature_dtype(f) for f in CATALOG}})


def extract_features(traces: Frame) -> Frame:
    """The feature matrix of a trace frame: one row per turn, in input order.

    Takes a `TRACE_SCHEMA` DataFrame or LazyFrame and returns the same kind with exactly
    `feature_schema()`. Optional columns that are absent count as null; a stage that did not
    run gives null features, and so does an undefined ratio (never NaN). `label` and
    `reference_labels` are dropped before any feature is computed. Context features look at
    the other turns of each dialogue, so pass whole dialogues: the frame is sorted into
    dialogue order for the selection and put back in input order after.
    """
    present = set(traces.collect_schema().names())
    missing_required = [name for name in REQUIRED_FIELDS if name not in present]
    if missing_required:
        raise InputError(f"traces lack the required column(s) {', '.join(missing_required)}")
    inputs = [
        pl.col(name) if name in present else pl.lit(None, TRACE_SCHEMA[name]).alias(name)
        for name in TRACE_SCHEMA.names()
        if name not in _NEVER_READ
    ]
    turn_id = pl.coalesce(
        pl.col("turn_id"), pl.format("{}/{}", pl.col("dialogue_id"), pl.col("turn_index"))
    )
    matrix = (
        traces.lazy()
        .select(inputs)
        .with_row_index(_INPUT_ROW)
        .sort(*DIALOGUE_ORDER, _INPUT_ROW)
        .select(
            _INPUT_ROW,
            turn_id.alias("turn_id"),
            *(feature.expr.cast(feature_dtype(feature)).alias(feature.name) for feature in CATALOG),
        )
        .sort(_INPUT_ROW)
        .drop(_INPUT_ROW)
        .with_columns(pl.col(pl.Float64).fill_nan(None))
    )
    # the in-memory engine: about a third less CPU than streaming for this query
    return matrix.collect(engine="in-memory") if isinstance(traces, pl.DataFrame) else matrix


class _Formattable:
    """A value for a reason template: besides the usual specs (`{value:.2f}`), the spec
    `when true|when false` picks one of two phrasings by the value's truth (for 0/1 flags)."""

    __slots__ = ("value",)

    def __init__(self, value: Any) -> None:
        self.value = value

    def __format__(self, spec: str) -> str:
        if "|" not in spec:
            return format(self.value, spec)
        when_true, _, when_false = spec.partition("|")
        try:
            truth = float(self.value) != 0.0
        except (TypeError, ValueError):
            truth = bool(self.value)
        return when_true if truth else when_false


def render_reason(feature: Feature, value: Any) -> str:
    """The feature's reason template filled with `value`, e.g. "ASR confidence was 0.31".

    A null (None or NaN) value gives the feature's `missing` text, else "<description>:
    missing"; a value the template cannot format (say, text for a number) gives
    "<description>: <value>". Never raises.
    """
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return feature.missing or f"{feature.description}: missing"
    try:
        return feature.reason.format(value=_Formattable(value))
    except (ValueError, TypeError, KeyError, IndexError, AttributeError):
        return f"{feature.description}: {value}"


def catalogue_frame() -> pl.DataFrame:
    """The catalogue as a table: name, stage, description, categorical."""
    return pl.DataFrame(
        {
            "name": [f.name for f in CATALOG],
            "stage": [f.stage for f in CATALOG],
            "description": [f.description for f in CATALOG],
            "categorical": [f.categorical for f in CATALOG],
        },
        schema={
            "name": pl.String,
            "stage": pl.String,
            "description": pl.String,
            "categorical": pl.Boolean,
        },
    )


def write_features(
    paths: Sequence[str | Path],
    out: str | Path,
    *,
    rejects: list[Reject] | Callable[[Reject], object] | None = None,
    max_line_bytes: int | None = None,
) -> pl.DataFrame:
    """Read trace dumps, write their feature matrix to `out` as Parquet (atomically, rows in
    input order) and return it.

    With `rejects=None` an invalid record raises `InvalidRecordsError`; with a list or a
    callable, invalid records go there and are left out (as in `fpi.io.read_traces`).
    """
    from fpi.io import MAX_LINE_BYTES, atomic_output, read_traces

    traces = read_traces(paths, rejects=rejects, max_line_bytes=max_line_bytes or MAX_LINE_BYTES)
    features = extract_features(traces)
    with atomic_output(out) as tmp:
        features.write_parquet(tmp, compression="zstd")
    return features
