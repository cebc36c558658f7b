"""Honest evaluation: the model against gold labels, beside other label sets and a rule baseline."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np
import polars as pl

from fpi.calibration import expected_calibration_error, reliability_table
from fpi.errors import FpiError
from fpi.schema import FAILURE_POINTS, Stage

#: Confidence thresholds of the accuracy/coverage curve (turns below go to people).
COVERAGE_THRESHOLDS = (0.0, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 0.95, 0.99)
#: What the rule baseline calls a bad score, for every stage's own confidence.
RULE_LOW_CONFIDENCE = 0.5
RULE_BAD_RESULT = ("error", "no_content", "partial")


def classification_metrics(
    y_true: Sequence[str] | np.ndarray, y_pred: Sequence[str] | np.ndarray
) -> dict[str, Any]:
    """Accuracy, macro-F1, per-class precision/recall/F1/support and the confusion matrix.

    Integer inputs are read as indices into FAILURE_POINTS. Macro-F1 averages the classes that
    occur in the gold or the predictions. A prediction outside the six classes (e.g.
    `uncertain`) counts as wrong and gets its own confusion column.
    """
    y_true, y_pred = _as_names(y_true), _as_names(y_pred)
    extra = sorted(set(np.unique(y_pred).tolist()) - set(FAILURE_POINTS))
    labels = [*FAILURE_POINTS, *extra]
    index = {c: i for i, c in enumerate(labels)}
    confusion = np.zeros((len(labels), len(labels)), dtype=np.int64)
    if len(y_true):
        np.add.at(
            confusion,
            (np.array([index[c] for c in y_true]), np.array([index[c] for c in y_pred])),
            1,
        )
    per_class: dict[str, dict[str, float | int]] = {}
    for i, name in enumerate(FAILURE_POINTS):
        tp, support, predicted = confusion[i, i], confusion[i].sum(), confusion[:, i].sum()
        precision = tp / predicted if predicted else 0.0
        recall = tp / support if support else 0.0
        f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
        per_class[name] = {
            "precision": float(precision),
            "recall": float(recall),
            "f1": float(f1),
            "support": int(support),
        }
    present = [
        c for i, c in enumerate(FAILURE_POINTS) if confusion[i].sum() or confusion[:, i].sum()
    ]
    n = len(y_true)
    return {
        "n": n,
        "accuracy": float(np.trace(confusion) / n) if n else 0.0,
        "macro_f1": float(np.mean([per_class[c]["f1"] for c in present])) if present else 0.0,
        "per_class": per_class,
        "confusion": {"labels": labels, "matrix": confusion.tolist()},
    }


def _as_names(values: Sequence[str] | np.ndarray) -> np.ndarray:
    array = np.asarray(values)
    if np.issubdtype(array.dtype, np.integer):
        return np.asarray(FAILURE_POINTS, dtype=object)[array]
    return array.astype(object)


def rule_baseline(traces: pl.DataFrame) -> pl.Series:
    """The earliest stage whose own confidence or status looks bad; else `correct`.

    The heuristic a team writes before it has a model: it sees each stage alone, with fixed
    thresholds, and no dialogue context.
    """
    low = RULE_LOW_CONFIDENCE
    wake = pl.col("wake")
    asr, nlu = pl.col("asr"), pl.col("nlu")
    entities = pl.col("er").struct.field("entities")
    woke_badly = (wake.struct.field("mode") == "wake_word") & (
        (wake.struct.field("confidence") < low) | (wake.struct.field("verifier_confidence") < low)
    )
    asr_bad = (asr.struct.field("confidence") < low) | (
        asr.struct.field("text").str.len_chars() == 0
    )
    er_bad = entities.list.eval(
        (pl.element().struct.field("status") != "resolved")
        | (pl.element().struct.field("score") < low)
    ).list.any()
    expression = (
        pl.when(woke_badly.fill_null(False))
        .then(pl.lit(Stage.FALSE_WAKE.value))
        .when(asr_bad.fill_null(False))
        .then(pl.lit(Stage.ASR.value))
        .when((nlu.struct.field("confidence") < low).fill_null(False))
        .then(pl.lit(Stage.NLU.value))
        .when(er_bad.fill_null(False))
        .then(pl.lit(Stage.ER.value))
        .when(pl.col("result").struct.field("status").is_in(RULE_BAD_RESULT).fill_null(False))
        .then(pl.lit(Stage.RESULT.value))
        .otherwise(pl.lit(Stage.CORRECT.value))
    )
    return traces.select(expression.alias("rule_baseline")).to_series()


def coverage_curve(
    y_true: np.ndarray, y_pred: np.ndarray, confidence: np.ndarray
) -> list[dict[str, float]]:
    """Accuracy on the turns kept when those below each confidence threshold go to people."""
    y_true, y_pred = _as_names(y_true), _as_names(y_pred)
    correct = y_true == y_pred
    curve = []
    for threshold in COVERAGE_THRESHOLDS:
        kept = confidence >= threshold
        curve.append(
            {
                "threshold": threshold,
                "coverage": float(kept.mean()) if len(kept) else 0.0,
                "accuracy": float(correct[kept].mean()) if kept.any() else 0.0,
            }
        )
    return curve


def reference_names(traces: pl.DataFrame) -> list[str]:
    """The label sets present under `reference_labels` (e.g. `single_annotator`)."""
    texts = traces.get_column("reference_labels").drop_nulls()
    if texts.is_empty():
        return []
    decoded = texts.str.json_decode(infer_schema_length=None)
    return sorted(decoded.struct.fields) if decoded.dtype == pl.Struct else []


def score_traces(traces: pl.DataFrame, bundle) -> pl.DataFrame:
    """Per turn: gold, the model's decision and confidence from the one prediction path
    (`fpi.predict`, calibrated) and the uncalibrated softmax's, the rule baseline and
    reference labels."""
    from fpi.featurize import extract_features
    from fpi.predict import predict

    predictions = predict(bundle, bundle.matrix(extract_features(traces)))
    classes = np.asarray(FAILURE_POINTS)
    references = {}
    names = reference_names(traces)
    if names:
        decoded = traces.get_column("reference_labels").str.json_decode(
            pl.Struct({n: pl.String for n in names})
        )
        references = {f"reference:{n}": decoded.struct.field(n) for n in names}
    return pl.DataFrame(
        {
            "gold": traces.get_column("label").struct.field("failure_point"),
            "model": classes[predictions.predicted],
            "confidence": predictions.confidence,
            "model_uncalibrated": classes[predictions.uncalibrated.argmax(axis=1)],
            "confidence_uncalibrated": predictions.uncalibrated.max(axis=1, initial=0.0),
            "rule_baseline": rule_baseline(traces),
            **references,
        },
        schema_overrides={
            "model": pl.String,
            "confidence": pl.Float64,
            "model_uncalibrated": pl.String,
            "confidence_uncalibrated": pl.Float64,
        },
    )


def evaluation_report(scored: pl.DataFrame | Iterable[pl.DataFrame]) -> dict[str, Any]:
    """The `fpi evaluate --json` document from scored turns (one frame or per-batch frames)."""
    if not isinstance(scored, pl.DataFrame):
        frames = list(scored)
        if not frames:
            raise FpiError("no turns to evaluate: the input holds no records")
        scored = pl.concat(frames, how="diagonal")
    labelled = scored.filter(pl.col("gold").is_not_null())
    if labelled.is_empty():
        raise FpiError("no turn carries a gold label.failure_point: nothing to evaluate against")
    gold = labelled.get_column("gold").to_numpy()
    predicted = labelled.get_column("model").to_numpy()
    report = classification_metrics(gold, predicted)
    report["references"] = {}
    for column in sorted(c for c in labelled.columns if c.startswith("reference:")):
        rows = labelled.filter(pl.col(column).is_not_null())
        report["references"][column.removeprefix("reference:")] = classification_metrics(
            rows.get_column("gold").to_numpy(), rows.get_column(column).to_numpy()
        )
    report["rule_baseline"] = classification_metrics(
        gold, labelled.get_column("rule_baseline").to_numpy()
    )
    confidence = labelled.get_column("confidence").to_numpy()
    report["coverage"] = coverage_curve(gold, predicted, confidence)
    report.update(calibration_report(labelled))
    return report


def calibration_report(labelled: pl.DataFrame) -> dict[str, Any]:
    """ECE (`ECE_BINS` equal-width bins of the top-class confidence) and the reliability
    table of the model's confidence, after and before calibration."""
    gold = labelled.get_column("gold").to_numpy()
    report: dict[str, Any] = {}
    for suffix in ("", "_uncalibrated"):
        confidence = labelled.get_column("confidence" + suffix).to_numpy()
        correct = labelled.get_column("model" + suffix).to_numpy() == gold
        report["ece" + suffix] = expected_calibration_error(confidence, correct)
        report["reliability" + suffix] = reliability_table(confidence, correct)
    return report
