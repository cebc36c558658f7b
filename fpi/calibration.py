"""Calibrated class probabilities, and how calibrated they are.

The booster's softmax is not calibrated: training weights the rare classes up, and boosting
is over-confident on some turns and shy on others. `fit_calibration` fits two remedies on the
validation split and keeps the one that calibrates better there:

- temperature scaling: softmax(raw / T), one number fitted by maximum likelihood; it keeps
  the ranking of classes, so it never changes a prediction;
- per-class isotonic regression: a non-decreasing map of each class's softmax probability
  onto the observed frequency of that class (pool-adjacent-violators), renormalised so a
  turn's probabilities add up to 1 (a turn's top class may then change).

Both are scored out of fold (two halves of the validation dialogues, each fitted on one and
scored on the other) by expected calibration error and log-loss, and the better by ECE, the
figure we promise, is refitted on the whole validation split. A calibration is plain JSON in
the bundle's metadata (`Calibration.to_json`), never a pickle; a bundle without one applies
the plain softmax.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from fpi.errors import ModelError

#: Equal-width bins of the top-class confidence for ECE and the reliability table.
ECE_BINS = 15
METHODS = ("none", "temperature", "isotonic")
#: The probability floor of isotonic calibration before renormalising (keeps log-loss finite).
_ISOTONIC_FLOOR = 1e-6
_TEMPERATURE_RANGE = (1e-2, 1e2)
#: Knots per class allowed in a stored isotonic map (a fit on 10k turns needs a few hundred).
MAX_KNOTS = 100_000


def softmax(raw: np.ndarray) -> np.ndarray:
    """Row-wise softmax of raw scores (n, classes); LightGBM's multiclass probabilities."""
    shifted = raw - raw.max(axis=1, keepdims=True)
    np.exp(shifted, out=shifted)
    shifted /= shifted.sum(axis=1, keepdims=True)
    return shifted


@dataclass(frozen=True)
class Calibration:
    """A map from raw scores to calibrated probabilities (`none` is the plain softmax)."""

    method: str = "none"
    temperature: float = 1.0
    #: isotonic: per class, the knots (x, y) of a non-decreasing piecewise-linear map.
    knots: tuple[tuple[np.ndarray, np.ndarray], ...] = ()

    def apply(self, raw: np.ndarray) -> np.ndarray:
        """Calibrated probabilities (n, classes) of raw scores; rows add up to 1."""
        raw = np.asarray(raw, dtype=np.float64)
        if self.method == "temperature":
            return softmax(raw / self.temperature)
        proba = softmax(raw)
        if self.method == "isotonic":
            for k, (x, y) in enumerate(self.knots):
                proba[:, k] = np.interp(proba[:, k], x, y)
            np.maximum(proba, _ISOTONIC_FLOOR, out=proba)
            proba /= proba.sum(axis=1, keepdims=True)
        return proba

    def to_json(self) -> dict[str, Any]:
        if self.method == "temperature":
            return {"method": "temperature", "temperature": self.temperature}
        if self.method == "isotonic":
            return {
                "method": "isotonic",
                "knots": [{"x": x.tolist(), "y": y.tolist()} for x, y in self.knots],
            }
        return {"method": "none"}

    @classmethod
    def from_json(cls, value: Any, num_classes: int, source: str) -> Calibration:
        """The calibration stored in a bundle (None: none), checked; `ModelError` if broken."""
        if value is None:
            return cls()
        where = f"{source}: calibration"
        if not isinstance(value, Mapping) or value.get("method") not in METHODS:
            raise ModelError(f"{where} must be an object whose method is one of {METHODS}")
        method = value["method"]
        if method == "temperature":
            t = value.get("temperature")
            low, high = _TEMPERATURE_RANGE
            if isinstance(t, bool) or not isinstance(t, int | float) or not low <= t <= high:
                raise ModelError(f"{where}: temperature must be a number in {low}..{high}")
            return cls("temperature", temperature=float(t))
        if method == "isotonic":
            knots = value.get("knots")
            if not isinstance(knots, list) or len(knots) != num_classes:
                raise ModelError(f"{where}: knots must be a list of {num_classes} objects")
            return cls(
                "isotonic",
                knots=tuple(_knots(k, f"{where}.knots[{i}]") for i, k in enumerate(knots)),
            )
        return cls()


def _knots(value: Any, where: str) -> tuple[np.ndarray, np.ndarray]:
    if not isinstance(value, Mapping) or set(value) != {"x", "y"}:
        raise ModelError(f"{where} must be an object with x and y")
    try:
        x = np.array(value["x"], dtype=np.float64)
        y = np.array(value["y"], dtype=np.float64)
    except (TypeError, ValueError):
        raise ModelError(f"{where}: x and y must be lists of numbers") from None
    if (
        x.ndim != 1
        or x.shape != y.shape
        or not 1 <= len(x) <= MAX_KNOTS
        or not (np.isfinite(x).all() and np.isfinite(y).all())
        or (np.diff(x) <= 0).any()
        or (np.diff(y) < 0).any()
        or y.min() < 0
        or y.max() > 1
    ):
        raise ModelError(
            f"{where}: x must rise strictly and y (in 0..1) never fall, "
            f"with as many (1..{MAX_KNOTS}) finite values each"
        )
    return x, y


def fit_temperature(raw: np.ndarray, labels: np.ndarray) -> Calibration:
    """The temperature of least log-loss. The log-loss of softmax(raw * b) is convex in
    b = 1 / T: its derivative mean(E_p[raw] - raw[label]) rises with b, and bisection finds
    its zero (clamped to the temperatures 0.01..100)."""
    raw = np.asarray(raw, dtype=np.float64)
    true_score = raw[np.arange(len(raw)), labels]

    def slope(b: float) -> float:
        return float(np.mean((softmax(raw * b) * raw).sum(axis=1) - true_score))

    low, high = 1 / _TEMPERATURE_RANGE[1], 1 / _TEMPERATURE_RANGE[0]
    if slope(low) >= 0:
        return Calibration("temperature", temperature=_TEMPERATURE_RANGE[1])
    if slope(high) <= 0:
        return Calibration("temperature", temperature=_TEMPERATURE_RANGE[0])
    for _ in range(60):
        middle = (low * high) ** 0.5
        if slope(middle) < 0:
            low = middle
        else:
            high = middle
    return Calibration("temperature", temperature=float(2 / (low + high)))


def fit_isotonic(raw: np.ndarray, labels: np.ndarray) -> Calibration:
    """Per class, the non-decreasing map of its softmax probability that fits the 0/1
    indicator of that class best in squared error (pool-adjacent-violators)."""
    proba = softmax(np.asarray(raw, dtype=np.float64))
    knots = tuple(
        _isotonic_knots(proba[:, k], (labels == k).astype(np.float64))
        for k in range(proba.shape[1])
    )
    return Calibration("isotonic", knots=knots)


def _isotonic_knots(x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Knots of the isotonic fit of y on x: each pooled block contributes its lowest and
    highest x at the block's mean y (np.interp is linear between blocks, flat beyond)."""
    order = np.argsort(x, kind="stable")
    x, y = x[order], y[order]
    distinct, first = np.unique(x, return_index=True)
    weight = np.diff(np.append(first, len(x))).astype(np.float64)
    total = np.add.reduceat(y, first)
    # Pool adjacent violators over the distinct x values: a stack of blocks.
    block_total: list[float] = []
    block_weight: list[float] = []
    block_start: list[int] = []
    for i in range(len(distinct)):
        t, w, s = float(total[i]), float(weight[i]), i
        while block_total and block_total[-1] / block_weight[-1] >= t / w:
            t += block_total.pop()
            w += block_weight.pop()
            s = block_start.pop()
        block_total.append(t)
        block_weight.append(w)
        block_start.append(s)
    starts = np.array(block_start)
    ends = np.append(starts[1:], len(distinct)) - 1
    means = np.array(block_total) / np.array(block_weight)
    knot_x = np.column_stack([distinct[starts], distinct[ends]]).ravel()
    knot_y = np.repeat(means, 2)
    keep = np.append(True, np.diff(knot_x) > 0)
    return knot_x[keep], np.clip(knot_y[keep], 0.0, 1.0)


def log_loss(proba: np.ndarray, labels: np.ndarray) -> float:
    """Mean negative log-likelihood of the true classes (probabilities clipped at 1e-15)."""
    if not len(labels):
        return 0.0
    picked = proba[np.arange(len(labels)), labels]
    return float(-np.mean(np.log(np.clip(picked, 1e-15, 1.0))))


def brier_score(proba: np.ndarray, labels: np.ndarray) -> float:
    """Mean over turns of the squared distance between the class probabilities and the true
    class's indicator (0 is perfect, 2 the worst): a turn the model is sure of and wrong
    about costs at most 2, where its log-loss has no bound."""
    truth = np.eye(proba.shape[1])[labels]
    return float(np.mean(np.sum((proba - truth) ** 2, axis=1)))


def reliability_table(
    confidence: np.ndarray, correct: np.ndarray, *, bins: int = ECE_BINS
) -> list[dict[str, Any]]:
    """Per equal-width confidence bin: its edges, turn count, mean confidence and accuracy
    (None for an empty bin)."""
    confidence = np.asarray(confidence, dtype=np.float64)
    correct = np.asarray(correct, dtype=np.float64)
    index = np.clip((confidence * bins).astype(np.int64), 0, bins - 1)
    counts = np.bincount(index, minlength=bins)
    confidence_sum = np.bincount(index, weights=confidence, minlength=bins)
    correct_sum = np.bincount(index, weights=correct, minlength=bins)
    table = []
    for b in range(bins):
        n = int(counts[b])
        table.append(
            {
                "low": b / bins,
                "high": (b + 1) / bins,
                "count": n,
                "mean_confidence": float(confidence_sum[b] / n) if n else None,
                "accuracy": float(correct_sum[b] / n) if n else None,
            }
        )
    return table


def expected_calibration_error(
    confidence: np.ndarray, correct: np.ndarray, *, bins: int = ECE_BINS
) -> float:
    """ECE: the turn-weighted mean over equal-width bins of the top-class confidence of
    |accuracy - mean confidence|; 0 for no turns."""
    total = len(confidence)
    if not total:
        return 0.0
    return float(
        sum(
            row["count"] / total * abs(row["accuracy"] - row["mean_confidence"])
            for row in reliability_table(confidence, correct, bins=bins)
            if row["count"]
        )
    )


def calibration_scores(proba: np.ndarray, labels: np.ndarray) -> dict[str, float]:
    """ECE (top class) and log-loss of probabilities against class indices."""
    predicted = proba.argmax(axis=1)
    return {
        "ece": expected_calibration_error(proba.max(axis=1), predicted == labels),
        "log_loss": log_loss(proba, labels),
    }


_FITTERS = {
    "none": lambda raw, labels: Calibration(),
    "temperature": fit_temperature,
    "isotonic": fit_isotonic,
}


def fit_calibration(
    raw: np.ndarray, labels: np.ndarray, fold: np.ndarray
) -> tuple[Calibration, dict[str, dict[str, float]]]:
    """The best calibration of validation raw scores, and each method's out-of-fold scores.

    `fold` (bool per turn, split by dialogue) cuts the validation turns in two; each method is
    fitted on one half and scored on the other, both ways, and the method with the lowest
    pooled ECE is refitted on all turns. With too few turns in a half, nothing is fitted.
    """
    raw = np.asarray(raw, dtype=np.float64)
    labels = np.asarray(labels, dtype=np.int64)
    fold = np.asarray(fold, dtype=bool)
    if min(fold.sum(), (~fold).sum()) < 50:
        return Calibration(), {}
    scores = {}
    for method, fitter in _FITTERS.items():
        out_of_fold = np.empty_like(raw)
        for half in (fold, ~fold):
            fitted = fitter(raw[~half], labels[~half])
            out_of_fold[half] = fitted.apply(raw[half])
        scores[method] = calibration_scores(out_of_fold, labels)
    best = min(scores, key=lambda m: (scores[m]["ece"], scores[m]["log_loss"]))
    return _FITTERS[best](raw, labels), scores
