"""Adapt a model to the user's own pipeline from a few hundred human labels.

The default method (`DEFAULT_METHOD`) is the one that won the label-efficiency benchmark
(`benchmarks/bench_label_efficiency.py`, numbers in the README); the others stay selectable
for that measurement:
- `fresh`: a small-data LightGBM on the labelled turns only (`SMALL_DATA_PARAMS`: small
  trees, one-hot categories, inverse class-frequency weights, `ROUNDS` rounds), categorical
  codes taken from all of the user's turns (unlabelled included: codes read no label); `BAG`
  such fits with different seeds and folds, averaged into one booster (`average_of`);
- `continue`: boosting continued from the starting model (LightGBM `init_model`), keeping
  its feature codes;
- `fresh+sim`: `fresh` plus simulated turns as down-weighted extra training data;
- `fresh+self`: `fresh`, then self-training: unlabelled turns the first fit is confident of
  join as pseudo-labels at a lower weight, and the model is refitted.

With no usable label the starting model is returned unchanged (it cannot get worse), and so it
is with too few labels for out-of-fold scores (`MIN_LABELS_FOR_CV`), and when its calibrated
probabilities score a Brier score no worse than the new fit's calibrated out-of-fold ones on
the labelled turns the model did not choose: a pipeline the start model already knows keeps it.
A proper score of probabilities, not macro-F1 of decisions: on 20-100 judged labels (a handful
of rare-class turns) macro-F1 swings with one turn, and it kept a start model scoring 0.32 on
held-out DSTC2 calls against fits scoring ~0.7. Brier, not log-loss: a turn a fit is sure and
wrong about costs at most 2, where its log-loss has no bound (a log-loss guard kept a start
model scoring 0.32 at 250 labels on one DSTC2 split, 1.00 against the fit's 1.14 on 50 judged
labels; README). Only those turns judge fairly: the active queue seats the turns the current
model is least sure of, where the start model is at its worst (on the simulator's `newdomain`
traffic, judged on all 500 active labels, a fit scoring 0.76 on held-out dialogues replaced a
start model scoring 0.86). Labels carry the queue's `seat` (`fpi.queue.SEATS`,
`LabelStore.seated`); a label no queue offered (null seat, e.g. imported for turns picked by
hand) counts as not chosen by the model. With fewer than `MIN_LABELS_TO_JUDGE` such labels the
two are judged on all labels.
A new fit keeps neither the start model's calibration nor its decision offsets (both chosen
for the start model's traffic): it is calibrated on its own out-of-fold scores, and its
per-class decision offsets (`fpi.decision.choose_offsets`) are chosen on them too.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import lightgbm as lgb
import numpy as np
import polars as pl

from fpi.calibration import brier_score, fit_calibration, log_loss
from fpi.decision import DECISION_KEY, choose_offsets, decide, decision_metadata
from fpi.errors import ModelError
from fpi.evaluate import classification_metrics
from fpi.labels import consensus, match_labels
from fpi.model import (
    BAG_SEED_STEP,
    DEFAULT_PARAMS,
    ModelBundle,
    _feature_metadata,
    average_of,
    dialogue_halves,
    encode_features,
    load_bundle,
)
from fpi.profile import build_profile
from fpi.queue import SEAT_MODEL
from fpi.schema import FAILURE_POINTS

METHODS = ("fresh", "continue", "fresh+sim", "fresh+self")
DEFAULT_METHOD = "fresh"
#: Parameters for a few hundred labels: small trees, small leaves, slow learning.
SMALL_DATA_PARAMS: dict[str, Any] = {
    **DEFAULT_PARAMS,
    "learning_rate": 0.05,
    "num_leaves": 7,
    "max_depth": 4,
    "min_data_in_leaf": 3,
    "min_sum_hessian_in_leaf": 1e-3,
    "lambda_l2": 1.0,
    "feature_fraction": 0.7,
    "cat_smooth": 5.0,
    "min_data_per_group": 3,
    # every category its own one-vs-rest split: LightGBM's many-vs-many categorical splits
    # need many rows per category; on 500 DSTC2 labels one-hot scores macro-F1 0.55 against
    # 0.48 (3 splits x 2 draws; `result` F1 0.62 against 0.27)
    "max_cat_to_onehot": 64,
    # one thread: on a few hundred rows a second thread only adds contention (measured 30x
    # slower with 2 threads on a busy 2-core machine)
    "num_threads": 1,
}
#: Boosting rounds of a small-data fit. Fixed: choosing them by cross-validated log-loss
#: stopped at 24-79 rounds and scored macro-F1 0.02 lower on held-out DSTC2 calls (250, 500
#: and 1,000 labels, 3 splits x 2 draws); choosing by cross-validated macro-F1 scored no
#: better than 150 and its choice swung from 25 to 300 between draws.
ROUNDS = 150
#: Small fits averaged into one model (`average_of`), each with its own seed (feature
#: sampling) and folds: one fit's macro-F1 on held-out DSTC2 calls swings by up to 0.05 with
#: the seed alone at 500 labels.
BAG = 5
#: Whether a new fit gets per-class decision offsets chosen on its out-of-fold scores (on 500
#: active DSTC2 labels, with the bag, they lifted held-out macro-F1; README).
TUNE_DECISION = True
#: Out-of-fold scores (for the keep-the-start-model guard and the calibration) need this many
#: labels; with fewer the start model is kept.
MIN_LABELS_FOR_CV = 20
#: Labels the model did not choose needed to judge the start model against a new fit on them
#: alone (fewer: on all labels).
MIN_LABELS_TO_JUDGE = 20
CV_FOLDS = 4
#: Weight of a simulated turn relative to a labelled one (`fresh+sim`).
SIMULATED_WEIGHT = 0.1
SIMULATED_TURNS = 5_000
#: Self-training: confidence a pseudo-label needs, and its weight.
SELF_TRAINING_CONFIDENCE = 0.95
SELF_TRAINING_WEIGHT = 0.3
#: Start-model metadata a new fit does not inherit.
INHERITED_NOT = ("metrics", "training", "decision", "calibration")


def _start_bundle(start: ModelBundle | Path | str | None) -> ModelBundle:
    return start if isinstance(start, ModelBundle) else load_bundle(start)


def labelled_turns(traces: pl.DataFrame, labels: pl.DataFrame) -> tuple[pl.DataFrame, dict]:
    """Gold per labelled turn (consensus of the annotators' matching labels) as turn_id,
    failure_point, seat (null without one), plus counts for the bundle's metadata."""
    if "record_hash" in labels.columns:
        match = match_labels(labels, traces)
        usable, stale, absent = match.matched, match.stale.height, match.absent.height
    else:  # bare (turn_id, failure_point) rows, e.g. from a benchmark's simulated annotator
        usable = labels.join(traces.select("turn_id"), on="turn_id", how="semi")
        stale, absent = 0, labels.height - usable.height
    if "annotator" not in usable.columns:
        usable = usable.with_columns(pl.lit("-").alias("annotator"))
    if "created_at" not in usable.columns:
        usable = usable.with_columns(pl.lit("").alias("created_at"))
    if "seat" not in usable.columns:
        usable = usable.with_columns(pl.lit(None, dtype=pl.String).alias("seat"))
    gold = consensus(usable.select("turn_id", "failure_point", "annotator", "created_at"))
    seats = usable.select("turn_id", "seat").unique("turn_id")
    gold = gold.join(seats, on="turn_id", how="left", maintain_order="left")
    counts = {
        "labels": usable.height,
        "labelled_turns": gold.height,
        "annotators": usable.get_column("annotator").n_unique(),
        "stale_labels_ignored": stale,
        "labels_for_other_turns": absent,
        "label_counts": {
            c: int((gold.get_column("failure_point") == c).sum()) for c in FAILURE_POINTS
        },
    }
    return gold, counts


def _codes(series: pl.Series) -> np.ndarray:
    return series.replace_strict(
        {c: i for i, c in enumerate(FAILURE_POINTS)}, return_dtype=pl.Int32
    ).to_numpy()


def balanced_weights(codes: np.ndarray) -> np.ndarray:
    """Inverse class frequency (each class weighs the same in total). With a few hundred
    labels a rare class has a handful of turns, and `fpi.model`'s square-root weights leave
    them too light to split on: on 500 DSTC2 labels (3 splits x 2 draws, one-hot categories)
    inverse weights score macro-F1 0.567 (random calls) and 0.593 (random turns) against
    0.552 and 0.579, and the same at 1,000 labels."""
    counts = np.bincount(codes, minlength=len(FAILURE_POINTS)).astype(np.float64)
    per_class = counts.sum() / np.maximum(counts, 1.0) / np.count_nonzero(counts)
    return per_class[codes]


def feature_metadata_from(features: pl.DataFrame) -> list[dict[str, Any]]:
    """The catalogue's feature entries with categorical codes learnt from these turns."""
    return _feature_metadata(features, without_stages=())


def _folds(dialogues: np.ndarray, k: int, seed: int) -> list[tuple[np.ndarray, np.ndarray]]:
    unique = np.unique(dialogues)
    rng = np.random.default_rng(seed)
    fold_of = dict(zip(rng.permutation(unique), np.arange(len(unique)) % k, strict=True))
    assigned = np.array([fold_of[d] for d in dialogues])
    return [
        (np.flatnonzero(assigned != f), np.flatnonzero(assigned == f))
        for f in range(k)
        if (assigned == f).any() and (assigned != f).any()
    ]


def fit_small(
    matrix: np.ndarray,
    codes: np.ndarray,
    weights: np.ndarray,
    dialogues: np.ndarray,
    *,
    seed: int,
    bag: int = 1,
    **options: Any,
) -> tuple[lgb.Booster, np.ndarray | None]:
    """A small-data booster of `ROUNDS` rounds, and the out-of-fold raw scores of the labelled
    rows from cross-validation over dialogues (None with fewer than two dialogues, or
    `out_of_fold=False`; `adapt` fits nothing below `MIN_LABELS_FOR_CV` labels); `options` are
    `_fit_one`'s. With `bag` > 1, the average
    (`average_of`) of that many fits with seeds `seed`, `seed + BAG_SEED_STEP`, ..., each with
    its own folds; the out-of-fold scores are averaged too (each member's are out of fold, so
    their mean is)."""
    members = [
        _fit_one(matrix, codes, weights, dialogues, seed=seed + BAG_SEED_STEP * k, **options)
        for k in range(bag)
    ]
    scores = [s for _, s in members if s is not None]
    booster = average_of([b for b, _ in members]) if bag > 1 else members[0][0]
    return booster, np.mean(scores, axis=0) if scores else None


def _fit_one(
    matrix: np.ndarray,
    codes: np.ndarray,
    weights: np.ndarray,
    dialogues: np.ndarray,
    *,
    categorical: list[int],
    names: list[str],
    seed: int,
    init_model: lgb.Booster | None = None,
    extra: tuple[np.ndarray, np.ndarray, np.ndarray] | None = None,
    out_of_fold: bool = True,
) -> tuple[lgb.Booster, np.ndarray | None]:
    """One fit of `fit_small`. `extra` = (matrix, codes, weights) of additional turns used in
    every training fold."""
    params = {**SMALL_DATA_PARAMS, "num_class": len(FAILURE_POINTS), "seed": seed}

    def fitted(rows: np.ndarray | slice) -> lgb.Booster:
        x, y, w = matrix[rows], codes[rows], weights[rows]
        if extra is not None:
            x = np.vstack([x, extra[0]])
            y, w = np.concatenate([y, extra[1]]), np.concatenate([w, extra[2]])
        data = lgb.Dataset(
            x,
            label=y,
            weight=w,
            feature_name=names,
            categorical_feature=categorical,
            params={"verbosity": -1, "min_data_in_bin": 1},
        )
        return lgb.train(params, data, num_boost_round=ROUNDS, init_model=init_model)

    scores = None
    folds = _folds(dialogues, CV_FOLDS, seed)
    if out_of_fold and len(folds) >= 2:
        scores = np.zeros((len(codes), len(FAILURE_POINTS)))
        for train_rows, valid_rows in folds:
            scores[valid_rows] = fitted(train_rows).predict(matrix[valid_rows], raw_score=True)
    return fitted(slice(None)), scores


def adapt(
    traces: pl.DataFrame,
    labels: pl.DataFrame,
    *,
    start: ModelBundle | Path | str | None = None,
    seed: int = 0,
    method: str = DEFAULT_METHOD,
    simulated: pl.DataFrame | None = None,
) -> ModelBundle:
    """A model for the pipeline behind `traces`, fitted on the labelled ones.

    `labels` are store rows (`LabelStore.current()`: stale ones are ignored, several
    annotators reduced to their consensus) or bare (turn_id, failure_point) rows. `start` is
    the starting bundle or its directory (None = the bundled model). `simulated` overrides the
    simulated turns `fresh+sim` draws."""
    from fpi.featurize import extract_features

    if method not in METHODS:
        raise ModelError(f"unknown adapt method {method!r} (one of {', '.join(METHODS)})")
    base = _start_bundle(start)
    gold, counts = labelled_turns(traces, labels)
    start_name = "bundled model" if start is None else str(start)
    if isinstance(start, ModelBundle):
        start_name = "given bundle"
    adaptation: dict[str, Any] = {
        "method": method if gold.height else "none (no usable labels: the starting model)",
        "start": start_name,
        "unlabelled_turns": traces.height - gold.height,
        **counts,
    }
    if gold.height == 0:
        return _unchanged(base, adaptation)
    too_few = f"start model kept (too few labels to judge {method} on)"
    if gold.height < MIN_LABELS_FOR_CV:  # no out-of-fold scores: nothing to fit for
        adaptation["method"] = too_few
        return _unchanged(base, adaptation)
    features = extract_features(traces)
    # rows in the dump's order, whatever order the labels came in: the same fit every time
    order = (
        features.select("turn_id")
        .with_row_index("_row")
        .join(gold, on="turn_id", maintain_order="left")
    )
    rows = order.get_column("_row").to_numpy()
    codes = _codes(order.get_column("failure_point"))
    dialogues = traces.get_column("dialogue_id").to_numpy()[rows]
    if method == "continue":
        feature_meta = base.metadata["features"]
    else:
        feature_meta = feature_metadata_from(features)
    matrix = encode_features(features, feature_meta)
    names = [f["name"] for f in feature_meta]
    categorical = [i for i, f in enumerate(feature_meta) if f["categorical"]]
    weights = balanced_weights(codes)
    # continued boosting would repeat the start model's trees in every member: one fit
    bag = 1 if method == "continue" else BAG
    fit: dict[str, Any] = {"categorical": categorical, "names": names, "seed": seed, "bag": bag}
    extra = None
    if method == "fresh+sim":
        sim = simulated if simulated is not None else _simulated(seed)
        sim_matrix = encode_features(extract_features(sim), feature_meta)
        sim_codes = _codes(sim.get_column("label").struct.field("failure_point"))
        extra = (sim_matrix, sim_codes, balanced_weights(sim_codes) * SIMULATED_WEIGHT)
        adaptation["simulated_turns"] = sim.height
    booster, out_of_fold = fit_small(
        matrix[rows],
        codes,
        weights,
        dialogues,
        init_model=base.booster if method == "continue" else None,
        extra=extra,
        **fit,
    )
    if method == "fresh+self":
        unlabelled = np.setdiff1d(np.arange(len(matrix)), rows)
        proba = booster.predict(matrix[unlabelled])
        sure = proba.max(axis=1) >= SELF_TRAINING_CONFIDENCE
        pseudo = proba[sure].argmax(axis=1).astype(np.int32)
        extra = (
            matrix[unlabelled[sure]],
            pseudo,
            balanced_weights(pseudo) * SELF_TRAINING_WEIGHT if len(pseudo) else np.empty(0),
        )
        booster, _ = fit_small(
            matrix[rows], codes, weights, dialogues, extra=extra, out_of_fold=False, **fit
        )
        adaptation["pseudo_labelled_turns"] = int(sure.sum())
    adaptation["rounds"] = ROUNDS
    adaptation["bag"] = bag
    decision: dict[str, Any] | None = None
    if out_of_fold is None:  # enough labels, but in too few dialogues for folds
        adaptation["method"] = too_few
        return _unchanged(base, adaptation)
    fitted, scores = fit_calibration(
        out_of_fold, codes, dialogue_halves(pl.Series(dialogues, dtype=pl.String))
    )
    calibration = {**fitted.to_json(), "fitted_on": "out-of-fold labels", "out_of_fold": scores}
    calibrated = fitted.apply(out_of_fold)
    offsets = choose_offsets(calibrated, codes) if TUNE_DECISION else None
    if offsets is not None:
        decision = decision_metadata(offsets, FAILURE_POINTS, chosen_on="out-of-fold labels")
    judge = _judged_rows(order.get_column("seat"))
    start_proba = base.predict_proba(base.matrix(features[rows[judge]]))
    adaptation.update(
        judge_start_and_fit(
            codes[judge],
            start_proba,
            base.decide(start_proba),
            calibrated[judge],
            decide(calibrated[judge], offsets),
        )
    )
    adaptation["judged_on"] = (
        f"{len(judge)} labels the model did not choose"
        if len(judge) < len(rows)
        else f"all {len(rows)} labels"
    )
    if adaptation["start_brier_on_labels"] <= adaptation["cv_brier"]:
        adaptation["method"] = f"start model kept (it beat {method} on the labels)"
        return _unchanged(base, adaptation)
    metadata = {
        # not the start model's decision offsets: they were chosen for its own traffic
        **{k: v for k, v in base.metadata.items() if k not in INHERITED_NOT},
        "features": feature_meta,
        "params": {
            **SMALL_DATA_PARAMS,
            "num_class": len(FAILURE_POINTS),
            "seed": seed,
            "best_iteration": booster.current_iteration(),
        },
        "training": {
            "turns": len(rows),
            "dialogues": len(np.unique(dialogues)),
            "label_counts": counts["label_counts"],
            "label_sources": ["label store"],
        },
        "metrics": {},
        "adaptation": adaptation,
    }
    metadata["calibration"] = calibration
    if decision is not None:
        metadata[DECISION_KEY] = decision
    bundle = ModelBundle(booster, metadata)
    # the profile of the traffic it was fitted for: all of the user's turns (fpi shift)
    bundle.profile = build_profile(
        features,
        confidence=bundle.predict_proba(matrix[rows]).max(axis=1),
        dialogue_ids=traces.get_column("dialogue_id"),
        seed=seed,
    )
    return bundle


def judge_start_and_fit(
    codes: np.ndarray,
    start_proba: np.ndarray,
    start_codes: np.ndarray,
    fit_proba: np.ndarray,
    fit_codes: np.ndarray,
) -> dict[str, float]:
    """How the start model and a new fit (its calibrated out-of-fold probabilities and its
    decisions) do on the judged labels: Brier score (what the guard compares), log-loss and
    macro-F1."""
    return {
        "start_brier_on_labels": brier_score(start_proba, codes),
        "cv_brier": brier_score(fit_proba, codes),
        "start_log_loss_on_labels": log_loss(start_proba, codes),
        "cv_log_loss": log_loss(fit_proba, codes),
        "start_macro_f1_on_labels": classification_metrics(codes, start_codes)["macro_f1"],
        "cv_macro_f1": classification_metrics(codes, fit_codes)["macro_f1"],
    }


def _judged_rows(seats: pl.Series) -> np.ndarray:
    """Rows of the labels the start model and a new fit are judged on: those whose turn the
    model did not choose, if there are `MIN_LABELS_TO_JUDGE` of them, else all."""
    fair = np.flatnonzero((seats.is_null() | (seats != SEAT_MODEL)).to_numpy())
    return fair if len(fair) >= MIN_LABELS_TO_JUDGE else np.arange(len(seats))


def _unchanged(base: ModelBundle, adaptation: dict[str, Any]) -> ModelBundle:
    """A copy of the starting model that says why it was kept."""
    booster = lgb.Booster(model_str=base.booster.model_to_string())
    return ModelBundle(booster, {**base.metadata, "adaptation": adaptation}, profile=base.profile)


def _simulated(seed: int) -> pl.DataFrame:
    from fpi.simulate import simulate

    return simulate(SIMULATED_TURNS, seed=seed, scenario="base")


def adapt_summary(metadata: Mapping[str, Any]) -> str:
    """One line on what an adapted bundle was fitted on."""
    a = metadata.get("adaptation", {})
    return (
        f"{a.get('labels', 0)} label(s) on {a.get('labelled_turns', 0)} turn(s) from "
        f"{a.get('annotators', 0)} annotator(s); method {a.get('method', '?')}"
        + (f", {a['rounds']} rounds" if "rounds" in a else "")
        + (f" x {a['bag']} fits averaged" if a.get("bag", 1) > 1 else "")
        + (
            f"; judged on {a['judged_on']}: Brier score {a['start_brier_on_labels']:.3f} "
            f"(start model) against {a['cv_brier']:.3f} (new fit, out of fold)"
            if "cv_brier" in a
            else ""
        )
    )
