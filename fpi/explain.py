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
    contributions: pl.DataFrame  # feature, value, contribution, text; largest |contribution| first

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
    """Explain `turn_id` (its dialogue must be in `traces`, for the context features)."""
    from fpi.featurize import CATALOG, extract_features, render_reason

    matches = traces.filter(pl.col("turn_id") == turn_id)
    if matches.is_empty():
        raise FpiError(f"turn {turn_id!r} is not in the given dump(s)")
    dialogue_id = matches.get_column("dialogue_id")[0]
    dialogue = traces.filter(pl.col("dialogue_id") == dialogue_id).sort("turn_index", "timestamp")
    position = dialogue.get_column("turn_id").to_list().index(turn_id)
    features = extract_features(dialogue)
    matrix = bundle.matrix(features)
    proba = bundle.predict_proba(matrix)[position]
    predicted = int(bundle.decide(proba[None, :])[0])
    values = bundle.explainer.shap_values(matrix[position : position + 1], np.array([predicted]))[0]
    catalogue = {f.name: f for f in CATALOG}
    row = features.row(position, named=True)
    names = bundle.feature_names
    contributions = pl.DataFrame(
        {
            "feature": names,
            "value": [None if row[n] is None else str(row[n]) for n in names],
            "contribution": values[:-1],
            "text": [render_reason(catalogue[n], row[n]) for n in names],
        },
        schema_overrides={"value": pl.String},
    ).sort(pl.col("contribution").abs(), "feature", descending=[True, False])
    return TurnExplanation(
        turn_id=turn_id,
        dialogue=dialogue,
        position=position,
        probabilities={c: float(p) for c, p in zip(FAILURE_POINTS, proba, strict=True)},
        predicted=FAILURE_POINTS[predicted],
        base_value=float(values[-1]),
        contributions=contributions,
    )


def find_dialogue(paths: Sequence[str | Path], turn_id: str) -> pl.DataFrame:
    """The dialogue holding `turn_id`, read batch by batch from dumps of any size."""
    from fpi.io import iter_trace_batches

    for batch in iter_trace_batches(paths, rejects_sink=[]):
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
