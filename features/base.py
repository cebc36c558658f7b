"""The contract every stage file follows: a named polars expression with words for people."""

from __future__ import annotations

from dataclasses import dataclass

import polars as pl


@dataclass(frozen=True, slots=True)
class Feature:
    """One model input, computed by `expr` over a trace frame (`fpi.schema.TRACE_SCHEMA`).

    `name` is `<stage>__<feature>`; `reason` is a `str.format` template over `{value}` that
    phrases a SHAP contribution for a person, e.g. "ASR confidence was {value:.2f}"; `missing`
    phrases a null value (what its absence says, e.g. "NLU filled no slots"), and without it a
    null reads "<description>: missing".
    Context features may use window expressions over `dialogue_id` ordered by `turn_index`.
    """

    name: str
    stage: str
    expr: pl.Expr
    description: str
    reason: str
    categorical: bool = False
    missing: str = ""
