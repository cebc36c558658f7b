"""One turn explained: its dialogue stage by stage, class probabilities and every SHAP value."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl

from fpi.errors import FpiError
from fpi.schema import FAILURE_POINTS

#: The stage blocks of a trace in pipeline order, with the fields worth showing a person.
STAGE_FIELDS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("device", ("type", "has_screen")),
    ("wake", ("mode", "confidence", "verifier_confidence")),
    ("asr", ("text", "confidence", "audio_ms", "snr_db")),
    ("nlu", ("domain", "intent", "confidence", "slots")),
    ("er", ("entities",)),
    ("result", ("status", "handler", "action", "response_text", "latency_ms")),
    ("tts", ("text", "duration_ms")),
    ("signals", ("barge_in", "barge_in_ms", "explicit_feedback")),
)


@dataclass(frozen=True)
class TurnExplanation:
    """Everything `fpi explain` shows about one turn."""

    turn_id: str
    dialogue: pl.DataFrame  # the turn's dialogue, in turn order (TRACE_SCHEMA)
    position: int  # the turn's row in `dialogue`
    probabilities: dict[str, float]
    predicted: str
    base_value: float  # expected raw score of the predicted class
    #: feature, value, contribution (to the raw score), text; largest |contribution| first
    contributions: pl.DataFrame

    @property
    def turn(self) -> dict[str, Any]:
        return self.dialogue.row(self.position, named=True)

    @property
    def next_turn(self) -> dict[str, Any] | None:
        if self.position + 1 >= len(self.dialogue):
            return None
        return self.dialogue.row(self.position + 1, named=True)


def describe_stages(turn: dict[str, Any]) -> list[tuple[str, str]]:
    """(stage, what it produced) lines for a trace record; a stage that did not run says so."""
    lines = []
    for block, fields in STAGE_FIELDS:
        value = turn.get(block)
        if value is None:
            lines.append((block, "(did not run)"))
            continue
        parts = [
            f"{name}={_short(value.get(name))}" for name in fields if value.get(name) is not None
        ]
        lines.append((block, ", ".join(parts) or "(empty)"))
    return lines


def _short(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.3g}"
    if isinstance(value, list):
        return "[" + "; ".join(_short_item(v) for v in value) + "]"
    return repr(value) if isinstance(value, str) else str(value)


def _short_item(item: Any) -> str:
    if isinstance(item, dict):
        return " ".join(f"{k}={_short(v)}" for k, v in item.items() if v is not None)
    return _short(item)


def explain_turn(traces: pl.DataFrame, turn_id: str, bundle) -> TurnExplanation:
    """Explain `turn_id` (its dialogue must be in `traces`, for the context features).

    Probabilities and the predicted class come from the one prediction path
    (`fpi.predict`), calibrated; the contributions explain the predicted class's raw score,
    every feature rendered as the model saw it (`fpi.predict.render_values`).
    """
    from fpi.featurize import extract_features
    from fpi.predict import predict, render_values, shap_values

    matches = traces.filter(pl.col("turn_id") == turn_id)
    if matches.is_empty():
        raise FpiError(f"turn {turn_id!r} is not in the given dump(s)")
    dialogue_id = matches.get_column("dialogue_id")[0]
    dialogue = traces.filter(pl.col("dialogue_id") == dialogue_id).sort("turn_index", "timestamp")
    position = dialogue.get_column("turn_id").to_list().index(turn_id)
    row = bundle.matrix(extract_features(dialogue))[position : position + 1]
    predictions = predict(bundle, row)
    predicted = int(predictions.predicted[0])
    values = shap_values(bundle, row, predictions.predicted)[0]
    rendered = render_values(bundle, np.arange(row.shape[1]), row[0])
    contributions = rendered.with_columns(
        pl.Series("contribution", values[:-1], dtype=pl.Float64)
    ).select("feature", "value", "contribution", "text")
    contributions = contributions.sort(
        pl.col("contribution").abs(), "feature", descending=[True, False]
    )
    return TurnExplanation(
        turn_id=turn_id,
        dialogue=dialogue,
        position=position,
        probabilities={
            c: float(p) for c, p in zip(FAILURE_POINTS, predictions.probabilities[0], strict=True)
        },
        predicted=FAILURE_POINTS[predicted],
        base_value=float(values[-1]),
        contributions=contributions,
    )


def find_dialogue(paths: Sequence[str | Path], turn_id: str) -> pl.DataFrame:
    """The dialogue holding `turn_id`, read batch by batch from dumps of any size."""
    from fpi.io import iter_trace_batches

    for batch in iter_trace_batches(paths, rejects_sink=lambda _: None):  # skips invalid records
        hit = batch.traces.filter(pl.col("turn_id") == turn_id)
        if not hit.is_empty():
            return batch.traces.filter(pl.col("dialogue_id") == hit.get_column("dialogue_id")[0])
    raise FpiError(f"turn {turn_id!r} is not in {', '.join(map(str, paths))}")


def waterfall_frame(explanation: TurnExplanation, *, max_features: int = 12) -> pl.DataFrame:
    """Rows for the waterfall chart: the base value, the largest contributions, the rest."""
    top = explanation.contributions.head(max_features)
    rest = explanation.contributions.slice(max_features).get_column("contribution").sum()
    labels = [
        f"{t}" if v is not None else f"{f} (missing)"
        for f, v, t in top.select("feature", "value", "text").iter_rows()
    ]
    rows = [("base", f"expected score ({explanation.predicted})", explanation.base_value)]
    rows += [("feature", label, c) for label, c in zip(labels, top["contribution"], strict=True)]
    if len(explanation.contributions) > max_features:
        rows.append(
            ("rest", f"{len(explanation.contributions) - max_features} other features", rest)
        )
    return pl.DataFrame(rows, schema=["kind", "label", "contribution"], orient="row")


def shap_explanation(traces: pl.DataFrame, bundle=None):
    """fpi's exact SHAP values as a `shap.Explanation`, for `shap.plots.waterfall/beeswarm/bar`.

    One row per turn of `traces` (`TRACE_SCHEMA`; whole dialogues, for the context features):
    `values` are the contributions toward the raw score of the turn's predicted class (the
    class's block of LightGBM's `pred_contrib`), `base_values` that class's expected score,
    `data` the feature values the model saw with category names (not codes), `feature_names`
    the bundle's and `instance_names` the turn ids. `bundle` defaults to the bundled model.
    """
    import shap

    from fpi.featurize import extract_features
    from fpi.model import load_bundle

    bundle = load_bundle() if bundle is None else bundle
    features = extract_features(traces)
    matrix = bundle.matrix(features)
    names = bundle.feature_names
    if matrix.shape[0] == 0:
        values = np.empty((0, len(names)))
        return shap.Explanation(values, np.empty(0), data=values, feature_names=names)
    predicted = np.argmax(bundle.predict_proba(matrix), axis=1)
    contributions = bundle.explainer.shap_values(matrix, predicted)
    data = np.empty((matrix.shape[0], len(names)), dtype=object)
    for j, name in enumerate(names):
        column = features.get_column(name)
        data[:, j] = (
            column.to_list()
            if column.dtype == pl.String
            else column.cast(pl.Float64).fill_null(float("nan")).to_numpy()
        )
    return shap.Explanation(
        values=contributions[:, :-1],
        base_values=contributions[:, -1],
        data=data,
        feature_names=names,
        instance_names=traces.get_column("turn_id").to_list(),
    )
