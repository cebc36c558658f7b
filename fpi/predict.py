"""The one prediction path: what triage, explain and evaluate (and anything else) get from a
bundle for a feature matrix.

1. raw scores from the compiled scorer (`fpi.fastpredict`, bit-identical to LightGBM's);
2. probabilities: the bundle's calibration of the softmax (`fpi.calibration`);
3. the decision: `decide`, the one place a decision rule stored in the bundle applies;
4. reasons: exact TreeSHAP of the decided class's raw score (`fpi.fastshap`), rendered by
   `render_values`, the one reason renderer.

SHAP explains the raw score (log-odds) of the predicted class, before calibration: a reason
says what pushed the model's score up, not how much it moved the calibrated probability
(`REASONS_EXPLAIN_RAW_SCORE` says so wherever reasons are shown).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import polars as pl

from fpi.calibration import softmax
from fpi.errors import ModelError
from fpi.schema import FAILURE_POINTS, REASON

if TYPE_CHECKING:
    from fpi.model import ModelBundle

REASONS_EXPLAIN_RAW_SCORE = (
    "Reasons are SHAP contributions to the model's raw score (log-odds) for the predicted "
    "class, before calibration; the probabilities shown are calibrated."
)


@dataclass(frozen=True)
class Predictions:
    """Per turn (rows) and class (columns, in FAILURE_POINTS order)."""

    raw: np.ndarray  # raw scores: what SHAP explains
    probabilities: np.ndarray  # calibrated
    uncalibrated: np.ndarray  # the plain softmax of the raw scores
    predicted: np.ndarray  # class index chosen by the bundle's decision rule

    @property
    def confidence(self) -> np.ndarray:
        """The calibrated probability of the predicted class."""
        return self.probabilities[np.arange(len(self.predicted)), self.predicted]


def predict(bundle: ModelBundle, matrix: np.ndarray) -> Predictions:
    """Raw scores, calibrated and uncalibrated probabilities and decisions for `matrix`
    (rows from `bundle.matrix`)."""
    raw = bundle.predictor.raw_scores(matrix)
    probabilities = bundle.calibration.apply(raw)
    return Predictions(
        raw=raw,
        probabilities=probabilities,
        uncalibrated=softmax(raw),
        predicted=decide(probabilities, bundle.metadata.get("decision")),
    )


def decide(probabilities: np.ndarray, decision: Mapping[str, Any] | None) -> np.ndarray:
    """The class index per turn from calibrated probabilities: the most probable class unless
    the bundle stores a decision rule (`metadata["decision"]`), which applies here and only
    here."""
    from fpi.decision import decide as offset_decision

    if decision is None:
        return offset_decision(probabilities)
    offsets = decision.get("offsets")
    if not isinstance(offsets, Mapping) or not all(
        isinstance(offsets.get(c, 0.0), int | float) for c in FAILURE_POINTS
    ):
        raise ModelError(f"unknown decision rule {dict(decision)!r} (expected per-class offsets)")
    return offset_decision(
        probabilities, np.array([float(offsets.get(c, 0.0)) for c in FAILURE_POINTS])
    )


def shap_values(bundle: ModelBundle, matrix: np.ndarray, classes: np.ndarray) -> np.ndarray:
    """Contributions (n, features + 1) to the raw score of `classes[i]`; the last column is
    the expected raw score (the base value)."""
    return bundle.explainer.shap_values(matrix, classes)


def top_contributions(
    bundle: ModelBundle, matrix: np.ndarray, classes: np.ndarray, k: int
) -> tuple[np.ndarray, np.ndarray]:
    """Per turn, the feature indices and values of its k largest contributions to the raw
    score of `classes[i]`, largest first (`reason_lists` turns them into reasons)."""
    k = min(k, bundle.explainer.num_features)  # no more reasons than features
    return bundle.explainer.explain_top(matrix, classes, k)


def render_values(bundle: ModelBundle, features: np.ndarray, values: np.ndarray) -> pl.DataFrame:
    """The one reason renderer: name, shown value and reason text for each (feature index,
    encoded value) pair, as the model saw it.

    A categorical code becomes its category name; NaN (a stage that did not run, or a
    category unseen in training) becomes a null value and the feature's "missing" text.
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


def reason_lists(
    matrix: np.ndarray, indices: np.ndarray, contributions: np.ndarray, bundle: ModelBundle
) -> pl.Series:
    """The positive ones of top-k contributions per turn as lists of `REASON` structs.

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
    rendered = render_values(
        bundle,
        distinct.get_column("index").to_numpy(),
        distinct.get_column("bits").to_numpy().view(np.float64),
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
