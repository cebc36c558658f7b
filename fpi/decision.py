"""The decision rule: which class a turn gets from the model's class probabilities.

The rule is the class of highest log-probability plus a per-class offset. The offsets are
chosen on the validation split for macro-F1 (`choose_offsets`, never on test) and stored in
the bundle's metadata (`DECISION_KEY`), so the majority class is not sacrificed for minority
recall nor the other way round; a bundle without offsets decides by plain argmax.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

#: Where the decision rule lives in a bundle's metadata.
DECISION_KEY = "decision"
#: Offsets searched per class (log-probability units) and coordinate-ascent passes.
OFFSET_GRID = np.round(np.arange(-3.0, 3.0001, 0.1), 2)
PASSES = 3
_FLOOR = 1e-12


def decide(proba: np.ndarray, offsets: np.ndarray | None = None) -> np.ndarray:
    """Class indices: argmax over classes of log(probability) + offset (plain argmax without)."""
    if offsets is None or len(proba) == 0:
        return proba.argmax(axis=1) if len(proba) else np.empty(0, dtype=np.int64)
    return (np.log(np.maximum(proba, _FLOOR)) + offsets).argmax(axis=1)


def macro_f1(y_true: np.ndarray, y_pred: np.ndarray, n_classes: int) -> float:
    """Macro-F1 over the classes present in gold or predictions (as `classification_metrics`)."""
    confusion = np.bincount(y_true * n_classes + y_pred, minlength=n_classes**2).reshape(
        n_classes, n_classes
    )
    tp = np.diag(confusion).astype(np.float64)
    support, predicted = confusion.sum(axis=1), confusion.sum(axis=0)
    present = (support + predicted) > 0
    f1 = np.divide(2 * tp, support + predicted, out=np.zeros(n_classes), where=present)
    return float(f1[present].mean()) if present.any() else 0.0


def choose_offsets(proba: np.ndarray, y_true: np.ndarray) -> np.ndarray:
    """Per-class offsets that maximise macro-F1 of `decide` on these (validation) turns.

    Coordinate ascent over `OFFSET_GRID`, the first class fixed at 0 (only differences
    matter); ties keep the offset closest to 0, so a class without evidence is left alone.
    """
    n_classes = proba.shape[1]
    logp = np.log(np.maximum(proba, _FLOOR))
    offsets = np.zeros(n_classes)
    best = macro_f1(y_true, logp.argmax(axis=1), n_classes)
    by_closeness = OFFSET_GRID[np.argsort(np.abs(OFFSET_GRID), kind="stable")]
    for _ in range(PASSES):
        improved = False
        for k in range(1, n_classes):
            for value in by_closeness:
                trial = offsets.copy()
                trial[k] = value
                score = macro_f1(y_true, (logp + trial).argmax(axis=1), n_classes)
                if score > best + 1e-12:
                    best, offsets, improved = score, trial, True
        if not improved:
            break
    return offsets


def decision_metadata(offsets: np.ndarray, classes: Sequence[str], **summary: Any) -> dict:
    """The bundle metadata entry for a decision rule."""
    return {
        "rule": "argmax of log-probability plus per-class offset",
        "offsets": {c: float(v) for c, v in zip(classes, offsets, strict=True)},
        **summary,
    }


def offsets_from_metadata(metadata: Mapping[str, Any]) -> np.ndarray | None:
    """The bundle's per-class offsets in class order, or None (plain argmax)."""
    entry = metadata.get(DECISION_KEY)
    if not entry:
        return None
    return np.array([float(entry["offsets"].get(c, 0.0)) for c in metadata["classes"]])
