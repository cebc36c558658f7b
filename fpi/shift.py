"""Does the traffic still look like what the model was trained on?

Two measures, both on the training profile's bins (`fpi.profile`):

* per feature, the **population stability index** (PSI) between the reference's share of
  turns per bin and the dump's: sum over bins of (q - p) * ln(q / p), shares floored at
  1e-4; a missing value and a value outside the training range or categories are bins of
  their own. Rule of thumb: below 0.1 stable, 0.1-0.25 moved, above 0.25 moved a lot.
* overall, a **separability score**: the out-of-fold AUC of a small LightGBM classifier told
  to tell the reference's sampled turns from the dump's (4 folds grouped by dialogue).
  0.5 means indistinguishable; the dump counts as shifted at `SHIFT_THRESHOLD` or above.

When the training traffic came from several pipelines (the bundled model's domain-randomised
mixture; `fpi.profile` components), the reference is not the whole mixture, which no single
pipeline resembles, but the training pipelines the dump most resembles: the dump's
composition is estimated as a mixture of the training components (`mixture_weights`: EM on
per-turn naive-Bayes likelihoods over the binned features, Saerens et al. 2002), and the
stored training turns are reweighted so each component carries its estimated weight (PSI
likewise against the weighted mixture of the components' histograms). The classifier is then
additive (stumps), so it measures how far the dump's feature distributions are from that
mixture's, not the joint structure that tells any one pipeline from its neighbours, and the
dump counts as shifted from `MIXTURE_SHIFT_THRESHOLD`.

The dump side is a sample taken while reading (`DumpSample`: whole dialogues, the same ones
whatever the batch size), so triage, evaluate and report pay for a few thousand turns only.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import polars as pl

from fpi.profile import (
    MISSING_CODE,
    BinnedSample,
    Component,
    Profile,
    build_profile,
    confidence_summary,
)

if TYPE_CHECKING:
    from fpi.model import ModelBundle

SHIFT_FORMAT = "fpi-shift/1"
#: Decimals a report keeps of its scores (`ShiftReport.to_dict`).
DECIMALS = 4
TRAINING = "model's training traffic"
#: The separability AUC from which a dump counts as shifted. Chosen with the bundled model on
#: fresh simulated `base` traffic (0.536-0.561 over four seeds) against other scenarios and a
#: real pipeline (newdomain 0.651, farfield 0.882, DSTC2 1.000): benchmarks/bench_shift.py.
SHIFT_THRESHOLD = 0.6
#: The same against a training mixture (a profile of several components), where the score is
#: the additive classifier's (`MIXTURE_CLASSIFIER_LEAVES`); chosen with the bundled model:
#: benchmarks/bench_shift.py and the README's "Does the model fit the traffic?".
MIXTURE_SHIFT_THRESHOLD = 0.75
#: PSI from which one feature counts as moved (the usual "moderate shift" mark).
FEATURE_MOVED = 0.1
FEATURE_MOVED_A_LOT = 0.25
#: Turns sampled from a dump (per ISO week when sampling by week).
SAMPLE_TURNS = 5000
#: Below this many sampled turns there is no verdict (the score is too noisy).
MIN_TURNS = 200
FOLDS = 4
PSI_FLOOR = 1e-4
CLASSIFIER_PARAMS: dict[str, Any] = {
    "objective": "binary",
    "learning_rate": 0.1,
    "num_leaves": 15,
    "min_data_in_leaf": 20,
    "feature_fraction": 0.8,
    "lambda_l2": 1.0,
    "max_cat_to_onehot": 8,
    "num_threads": 1,  # a small fit: threads cost more than they bring, above all on a busy machine
    "deterministic": True,
    "force_row_wise": True,
    "verbosity": -1,
}
CLASSIFIER_ROUNDS = 30
#: Against a training mixture the classifier is additive (stumps): it weighs how far each
#: feature's distribution is from the estimated mixture's, not the joint structure by which
#: any one pipeline is told from its neighbours.
MIXTURE_CLASSIFIER_LEAVES = 2
#: The naive-Bayes log-likelihood of a turn is divided by this in the mixture estimate: the
#: features are far from independent, and untempered the product over ~80 of them lets an
#: unusual turn of a known pipeline claim weight for another (measured: fresh `base` traffic
#: put 0.90 on `base`, 0.97 tempered by 3).
NAIVE_BAYES_TEMPERATURE = 3.0
#: Pseudo-turns of the pooled training shares added to each component's bin counts, so a
#: bin a component never saw is rare there rather than impossible.
COMPONENT_SMOOTHING = 5.0
EM_ITERATIONS = 500
EM_TOLERANCE = 1e-6
#: Components named in a report: the heaviest ones, down to this weight.
REPORTED_COMPONENTS = 5
#: Components below this estimated weight are left out of the reference.
REFERENCE_MIN_WEIGHT = 0.001
REPORTED_WEIGHT = 0.01
NEXT_STEPS = (
    "review a sample of its turns with `fpi review` and adapt the model to them with `fpi adapt`"
)


def psi(reference: np.ndarray, current: np.ndarray, *, floor: float = PSI_FLOOR) -> float:
    """Population stability index between two count (or share) vectors over the same bins."""
    reference, current = np.asarray(reference, float), np.asarray(current, float)
    if reference.sum() == 0 or current.sum() == 0:
        return 0.0
    p = np.maximum(reference / reference.sum(), floor)
    q = np.maximum(current / current.sum(), floor)
    return float(np.sum((q - p) * np.log(q / p)))


def auc(labels: np.ndarray, scores: np.ndarray, weights: np.ndarray | None = None) -> float:
    """Area under the ROC curve (Mann-Whitney, ties counted half); with `weights`, every
    pair of a positive and a negative counts with the product of their weights."""
    labels = np.asarray(labels, bool)
    positives, negatives = int(labels.sum()), int((~labels).sum())
    if not positives or not negatives:
        raise ValueError("AUC needs both classes")
    if weights is None:
        ranks = pl.Series(np.asarray(scores, float)).rank("average").to_numpy()
        return float(
            (ranks[labels].sum() - positives * (positives + 1) / 2) / (positives * negatives)
        )
    weights = np.asarray(weights, float)
    values, which = np.unique(np.asarray(scores, float), return_inverse=True)
    positive = np.bincount(which, weights=np.where(labels, weights, 0.0), minlength=len(values))
    negative = np.bincount(which, weights=np.where(labels, 0.0, weights), minlength=len(values))
    below = np.cumsum(negative) - negative
    total = positive.sum() * negative.sum()
    if total <= 0:
        raise ValueError("AUC needs weight on both classes")
    return float(np.sum(positive * (below + 0.5 * negative)) / total)


def component_log_shares(components: Sequence[Component]) -> list[np.ndarray]:
    """Per feature, a (components, codes) table of each component's log share of turns per
    code, smoothed towards the pooled shares (`COMPONENT_SMOOTHING` pseudo-turns)."""
    tables = []
    for j in range(len(components[0].counts)):
        counts = np.array([c.counts[j] for c in components], dtype=np.float64)
        pooled = (counts.sum(axis=0) + 0.5) / (counts.sum() + 0.5 * counts.shape[1])
        smoothed = counts + COMPONENT_SMOOTHING * pooled
        tables.append(np.log(smoothed / smoothed.sum(axis=1, keepdims=True)))
    return tables


def mixture_weights(components: Sequence[Component], current: BinnedSample) -> np.ndarray:
    """The dump's composition as a mixture of training components: EM on the per-turn
    naive-Bayes likelihood of each component (the product over features of its smoothed bin
    shares, tempered by `NAIVE_BAYES_TEMPERATURE`), updating only the mixture weights
    (Saerens et al. 2002); the weights are the mean posteriors. Sums to 1."""
    tables = component_log_shares(components)
    loglik = np.zeros((len(current), len(components)))
    for j, table in enumerate(tables):
        loglik += table[:, current.codes[:, j]].T
    loglik /= NAIVE_BAYES_TEMPERATURE
    loglik -= loglik.max(axis=1, keepdims=True)
    likelihood = np.exp(loglik)
    weights = np.full(len(components), 1.0 / len(components))
    for _ in range(EM_ITERATIONS):
        posterior = likelihood * weights
        posterior /= posterior.sum(axis=1, keepdims=True)
        updated = posterior.mean(axis=0)
        done = np.abs(updated - weights).max() < EM_TOLERANCE
        weights = updated
        if done:
            break
    return weights


def separability(
    reference: BinnedSample,
    current: BinnedSample,
    categorical: Sequence[bool],
    *,
    folds: int = FOLDS,
    seed: int = 0,
    reference_weights: np.ndarray | None = None,
    additive: bool = False,
) -> float:
    """Out-of-fold AUC of a small classifier separating `current` turns from `reference`
    turns; folds keep each dialogue whole and the two sides get equal total weight.
    `reference_weights` (one per reference turn) weigh the reference turns within their side
    (default: equally), and the AUC counts them so; `additive` makes the classifier stumps."""
    import lightgbm as lgb

    uniform = reference_weights is None
    if reference_weights is None:
        reference_weights = np.ones(len(reference))
    reference_weights = np.asarray(reference_weights, dtype=np.float64)
    keep = reference_weights > 0
    reference = BinnedSample(reference.codes[keep], reference.groups[keep])
    reference_weights = reference_weights[keep]
    codes = np.vstack([reference.codes, current.codes]).astype(np.float64)
    target = np.r_[np.zeros(len(reference)), np.ones(len(current))]
    weight = np.r_[
        0.5 * reference_weights / max(reference_weights.sum(), 1e-300),
        np.full(len(current), 0.5 / max(len(current), 1)),
    ] * len(target)
    groups = np.r_[reference.groups, current.groups + reference.groups.max(initial=0) + 1]
    unique = np.unique(groups)
    fold_of = np.random.default_rng(seed).permutation(len(unique)) % folds
    fold = fold_of[np.searchsorted(unique, groups)]
    categorical_columns = [j for j, c in enumerate(categorical) if c]
    scores = np.zeros(len(target))
    params = {**CLASSIFIER_PARAMS, "seed": seed}
    if additive:
        params["num_leaves"] = MIXTURE_CLASSIFIER_LEAVES
    for k in range(folds):
        test = fold == k
        if not test.any() or test.all():
            continue
        train_set = lgb.Dataset(
            codes[~test],
            label=target[~test],
            weight=weight[~test],
            categorical_feature=categorical_columns,
            free_raw_data=True,
        )
        booster = lgb.train(params, train_set, CLASSIFIER_ROUNDS)
        scores[test] = booster.predict(codes[test])
    if uniform:
        return auc(target.astype(bool), scores)
    return auc(target.astype(bool), scores, weight)


@dataclass(frozen=True)
class ShiftReport:
    """How far a dump is from the reference traffic (the training profile, or other dumps).

    `score` is None when unknown (the bundle has no training profile); `verdict` is then
    "unknown", and "too few turns" below `MIN_TURNS` sampled turns.
    """

    score: float | None
    threshold: float
    features: pl.DataFrame  # name, stage, shift, missing_rate_train, missing_rate_dump
    turns: int = 0
    reference: str = TRAINING
    note: str = ""
    #: The model's top-class confidence on validation turns against on the dump's turns.
    confidence: dict[str, Any] | None = None
    #: Against a training mixture: the components the reference was made of, heaviest first,
    #: as `{"name", "weight"}` (the heaviest `REPORTED_COMPONENTS`); empty otherwise.
    reference_components: tuple[dict[str, Any], ...] = ()

    @property
    def shifted(self) -> bool | None:
        if self.score is None or self.turns < MIN_TURNS:
            return None
        return self.score >= self.threshold

    @property
    def verdict(self) -> str:
        if self.score is None:
            return "unknown"
        if self.turns < MIN_TURNS:
            return "too few turns"
        return "shifted" if self.shifted else "fits"

    @classmethod
    def unknown(cls, note: str, *, threshold: float = SHIFT_THRESHOLD) -> ShiftReport:
        return cls(None, threshold, _feature_frame([]), note=note)

    def moved(self, n: int = 5) -> pl.DataFrame:
        """The `n` most shifted features whose PSI reaches `FEATURE_MOVED`."""
        return self.features.filter(pl.col("shift") >= FEATURE_MOVED).head(n)

    def stages(self) -> list[str]:
        """Stages with a moved feature, most shifted first."""
        moved = self.features.filter(pl.col("shift") >= FEATURE_MOVED)
        return moved.get_column("stage").unique(maintain_order=True).to_list()

    def to_dict(self) -> dict[str, Any]:
        return {
            "format": SHIFT_FORMAT,
            "score": None if self.score is None else round(self.score, DECIMALS),
            "shifted": self.shifted,
            "threshold": self.threshold,
            "verdict": self.verdict,
            "turns": self.turns,
            "reference": self.reference,
            "note": self.note,
            "reference_components": list(self.reference_components),
            "confidence": self.confidence,
            "features": [
                {k: (round(v, DECIMALS) if isinstance(v, float) else v) for k, v in row.items()}
                for row in self.features.iter_rows(named=True)
            ],
        }

    @classmethod
    def from_dict(cls, document: dict[str, Any]) -> ShiftReport:
        return cls(
            score=document.get("score"),
            threshold=float(document.get("threshold", SHIFT_THRESHOLD)),
            features=_feature_frame(document.get("features", [])),
            turns=int(document.get("turns", 0)),
            reference=document.get("reference", TRAINING),
            note=document.get("note", ""),
            confidence=document.get("confidence"),
            reference_components=tuple(document.get("reference_components") or ()),
        )

    @property
    def reference_words(self) -> str:
        """What the reference was, in words: the training pipelines the dump most resembles
        with their weights, or the reference's name."""
        if not self.reference_components:
            return f"the {self.reference}"
        nearest = ", ".join(f"{c['name']} {c['weight']:.2f}" for c in self.reference_components)
        return f"the training pipelines it most resembles ({nearest})"

    def sentence(self, subject: str = "The traffic") -> str:
        """One plain sentence for people (headlines, summaries) about `subject`."""
        if self.score is None:
            return f"Input shift unknown: {self.note or 'no reference profile'}."
        if self.turns < MIN_TURNS:
            return f"Input shift not judged: only {self.turns} turns sampled (need {MIN_TURNS})."
        if not self.shifted:
            return (
                f"{subject} looks like {self.reference_words} "
                f"(separability {self.score:.2f}, shifted from {self.threshold:.2f})."
            )
        features = ", ".join(
            f"{row['name']} (PSI {row['shift']:.2f})" for row in self.moved(3).iter_rows(named=True)
        )
        where = f" in {', '.join(self.stages()[:3])}: {features}" if features else ""
        return (
            f"{subject} does not look like {self.reference_words} (separability "
            f"{self.score:.2f} >= {self.threshold:.2f}); it moved most{where}."
        )

    def warning(self, subject: str = "The traffic") -> str | None:
        """A warning for people when the dump is shifted from the training profile, else None."""
        if not self.shifted:
            return None
        return (
            f"{self.sentence(subject)} The model's failure points and confidences may not hold on "
            f"this traffic: {NEXT_STEPS}."
        )


def _feature_frame(rows: Iterable[dict[str, Any]]) -> pl.DataFrame:
    schema = {
        "name": pl.String,
        "stage": pl.String,
        "shift": pl.Float64,
        "missing_rate_train": pl.Float64,
        "missing_rate_dump": pl.Float64,
    }
    frame = pl.DataFrame(list(rows), schema=schema, orient="row")
    # by the shift as stored, so that a report read back from its dict keeps its order
    return frame.sort(
        [pl.col("shift").round(DECIMALS), "name"], descending=[True, False], nulls_last=True
    )


def compare(
    profile: Profile,
    current: BinnedSample,
    *,
    threshold: float | None = None,
    reference: str = TRAINING,
    seed: int = 0,
) -> ShiftReport:
    """The shift of `current` (binned on `profile`) from the profile's reference traffic: the
    whole of it, or for a profile of several components the mixture of them that the dump most
    resembles (`mixture_weights`), scored by the additive classifier. `threshold` defaults to
    `SHIFT_THRESHOLD`, or `MIXTURE_SHIFT_THRESHOLD` against a mixture."""
    if threshold is None:
        threshold = MIXTURE_SHIFT_THRESHOLD if profile.is_mixture else SHIFT_THRESHOLD
    counts = current.counts([f.n_codes for f in profile.features])
    references = [f.counts for f in profile.features]
    sample_weights, nearest = None, ()
    if profile.is_mixture and len(current):
        weights = mixture_weights(profile.components, current)
        weights = np.where(weights >= REFERENCE_MIN_WEIGHT, weights, 0.0)
        weights /= weights.sum()
        references = [
            sum(
                w * c.counts[j] / max(c.turns, 1)
                for w, c in zip(weights, profile.components, strict=True)
            )
            for j in range(len(profile.features))
        ]
        sampled = np.bincount(profile.sample.components, minlength=len(weights))
        sample_weights = (weights / np.maximum(sampled, 1))[profile.sample.components]
        nearest = tuple(
            {"name": profile.components[k].name, "weight": round(float(weights[k]), 4)}
            for k in np.argsort(-weights, kind="stable")[:REPORTED_COMPONENTS]
            if weights[k] >= REPORTED_WEIGHT
        )
    rows = []
    for feature, reference_counts, dump_counts in zip(
        profile.features, references, counts, strict=True
    ):
        total, seen = dump_counts.sum(), np.sum(reference_counts)
        rows.append(
            {
                "name": feature.name,
                "stage": feature.stage,
                "shift": psi(reference_counts, dump_counts),
                "missing_rate_train": float(reference_counts[MISSING_CODE] / seen) if seen else 0.0,
                "missing_rate_dump": float(dump_counts[MISSING_CODE] / total) if total else 0.0,
            }
        )
    score = None
    if len(current) >= 2 and len(profile.sample) >= 2:
        categorical = [f.categorical for f in profile.features]
        score = separability(
            profile.sample,
            current,
            categorical,
            seed=seed,
            reference_weights=sample_weights,
            additive=profile.is_mixture,
        )
    note = "" if score is not None else "no turns to compare"
    return ShiftReport(
        score,
        threshold,
        _feature_frame(rows),
        len(current),
        reference,
        note,
        reference_components=nearest,
    )


def no_profile(source: str) -> ShiftReport:
    return ShiftReport.unknown(
        f"the model bundle {source} has no training profile (retrain it with `fpi train`)"
    )


class DumpSample:
    """A bounded sample of whole dialogues, taken batch by batch while a dump is read.

    Per ISO week (of the dialogue's first turn) it keeps the dialogues with the smallest hash
    of their id until `turns_per_week` turns, so the sample does not depend on batch sizes or
    file order, and holds only those turns' features.
    """

    def __init__(self, turns_per_week: int = SAMPLE_TURNS, *, seed: int = 0) -> None:
        self.turns_per_week = turns_per_week
        self.seed = seed
        self._keys = pl.DataFrame(
            schema={"dialogue_id": pl.String, "week": pl.String, "n": pl.UInt32, "h": pl.UInt64}
        )
        self._limits: dict[str, int] = {}
        self._features: pl.DataFrame | None = None

    def offer(self, traces: pl.DataFrame) -> None:
        """Consider a batch of whole dialogues (a `TRACE_SCHEMA` frame)."""
        from fpi.featurize import extract_features

        if traces.is_empty():
            return
        keys = (
            traces.group_by("dialogue_id")
            .agg(
                pl.col("timestamp").min().dt.strftime("%G-W%V").fill_null("unknown").alias("week"),
                pl.len().alias("n"),
            )
            .with_columns(pl.col("dialogue_id").hash(self.seed).alias("h"))
            .join(self._keys.select("dialogue_id"), on="dialogue_id", how="anti")
        )
        limits = pl.DataFrame(
            {"week": list(self._limits), "limit": list(self._limits.values())},
            schema={"week": pl.String, "limit": pl.UInt64},
        )
        keys = (
            keys.join(limits, on="week", how="left")
            .filter(pl.col("limit").is_null() | (pl.col("h") < pl.col("limit")))
            .drop("limit")
        )
        if keys.is_empty():
            return
        pooled = pl.concat([self._keys, keys.cast(self._keys.schema)]).sort("h")
        position = pl.int_range(pl.len()).over("week")
        within = pl.col("n").cum_sum().over("week") <= self.turns_per_week
        kept = pooled.filter(within | (position == 0))
        full = pooled.group_by("week").len("all").join(kept.group_by("week").len("kept"), on="week")
        for week in full.filter(pl.col("all") > pl.col("kept")).get_column("week"):
            self._limits[week] = int(kept.filter(pl.col("week") == week).get_column("h").max())
        new = traces.filter(pl.col("dialogue_id").is_in(keys.get_column("dialogue_id").implode()))
        new = new.filter(pl.col("dialogue_id").is_in(kept.get_column("dialogue_id").implode()))
        fresh = extract_features(new).with_columns(
            new.get_column("dialogue_id"),
            new.join(kept.select("dialogue_id", "week"), on="dialogue_id", how="left")
            .get_column("week")
            .alias("__week"),
        )
        self._keys = kept
        previous = self._features
        if previous is not None:
            previous = previous.filter(
                pl.col("dialogue_id").is_in(kept.get_column("dialogue_id").implode())
            )
        self._features = fresh if previous is None else pl.concat([previous, fresh])

    @property
    def turns(self) -> int:
        return 0 if self._features is None else len(self._features)

    def weeks(self) -> list[str]:
        return sorted(self._keys.get_column("week").unique().to_list())

    def features(self, week: str | None = None, *, turns: int | None = None) -> pl.DataFrame:
        """The sampled turns' features with their `dialogue_id`: all weeks, or one; `turns`
        keeps the smallest-hash dialogues up to that many turns (a sample across weeks)."""
        from fpi.featurize import feature_schema

        if self._features is None:
            return (
                feature_schema()
                .to_frame()
                .with_columns(pl.lit(None, pl.String).alias("dialogue_id"))
            )
        frame = self._features
        keys = self._keys
        if week is not None:
            keys = keys.filter(pl.col("week") == week)
        if turns is not None:
            keys = keys.filter((pl.col("n").cum_sum() <= turns) | (pl.int_range(pl.len()) == 0))
        return frame.filter(
            pl.col("dialogue_id").is_in(keys.get_column("dialogue_id").implode())
        ).drop("__week")

    def binned_weeks(self, profile: Profile) -> dict[str, BinnedSample]:
        """Every week's sampled turns binned on `profile` (binned once, then split)."""
        frame = self._features
        if frame is None:
            return {}
        everything = profile.bin(frame, frame.get_column("dialogue_id"))
        weeks = frame.get_column("__week").to_numpy()
        return {
            week: BinnedSample(everything.codes[weeks == week], everything.groups[weeks == week])
            for week in self.weeks()
        }

    def binned(self, profile: Profile, *, turns: int | None = None) -> BinnedSample:
        """The sampled turns (up to `turns`, across weeks) binned on `profile`."""
        frame = self.features(turns=turns)
        return profile.bin(frame, frame.get_column("dialogue_id"))


def sample_dumps(
    paths: Sequence[str | Path], *, rejects: list | None = None, turns: int = SAMPLE_TURNS
) -> DumpSample:
    """Read dumps once and sample them (`DumpSample`)."""
    from fpi.io import iter_trace_batches

    sample = DumpSample(turns)
    for batch in iter_trace_batches(paths, rejects_sink=rejects):
        sample.offer(batch.traces)
    return sample


def assess(
    sample: DumpSample,
    profile: Profile | None,
    *,
    source: str = "",
    turns: int = SAMPLE_TURNS,
) -> ShiftReport:
    """A dump sample against a training profile (unknown without one)."""
    if profile is None:
        return no_profile(source)
    return compare(profile, sample.binned(profile, turns=turns))


def confidence_shift(bundle: ModelBundle, sample: DumpSample) -> dict[str, Any] | None:
    """The model's top-class confidence on the sampled turns against the validation turns
    of its training profile: both distributions (`fpi.profile.confidence_summary`) and
    the PSI between their histograms. None without a profile or sampled turns."""
    profile = bundle.profile
    if profile is None or profile.confidence is None or not sample.turns:
        return None
    features = sample.features(turns=SAMPLE_TURNS)
    dump = confidence_summary(bundle.predict_proba(bundle.matrix(features)).max(axis=1))
    return {
        "validation": profile.confidence,
        "dump": dump,
        "psi": round(psi(profile.confidence["counts"], dump["counts"]), 4),
    }


def assess_against(
    sample: DumpSample, other: DumpSample, *, turns: int = SAMPLE_TURNS
) -> ShiftReport:
    """A dump sample against another (e.g. last week's dump): bins from the other one."""
    reference_frame = other.features(turns=turns)
    if reference_frame.is_empty():
        return ShiftReport.unknown("the other dumps hold no turns")
    reference = build_profile(
        reference_frame,
        dialogue_ids=reference_frame.get_column("dialogue_id"),
        sample_turns=len(reference_frame),
    )
    return compare(reference, sample.binned(reference, turns=turns), reference="other dumps")


@dataclass
class ShiftCheck:
    """The streaming side of a shift check inside another command: offer every batch, then
    ask for the report (the bundle's profile, or unknown)."""

    profile: Profile | None
    source: str = ""
    sample: DumpSample = field(default_factory=DumpSample)

    def offer(self, traces: pl.DataFrame) -> None:
        if self.profile is not None:
            self.sample.offer(traces)

    def report(self) -> ShiftReport:
        return assess(self.sample, self.profile, source=self.source)


#: Parquet key-value metadata keys a triage output carries (see `triage_metadata`).
META_SHIFT, META_PROFILE, META_SAMPLE = "fpi.shift", "fpi.profile", "fpi.input_sample"


def triage_metadata(check: ShiftCheck, report: ShiftReport) -> dict[str, str]:
    """What a triage output records about its input: the shift report, and (with a profile)
    the profile and each ISO week's sampled turns as codes, so `fpi report` can judge any
    week against the training traffic and against the week before without the dumps."""
    metadata = {META_SHIFT: json.dumps(report.to_dict())}
    if check.profile is not None:
        weeks = {w: s.to_dict() for w, s in check.sample.binned_weeks(check.profile).items()}
        metadata[META_PROFILE] = check.profile.document
        metadata[META_SAMPLE] = json.dumps({"weeks": weeks}, separators=(",", ":"))
    return metadata


@dataclass(frozen=True)
class RecordedInput:
    """What a triage output recorded about its input (`triage_metadata`), read back."""

    shift: ShiftReport | None
    profile: Profile | None
    weeks: dict[str, BinnedSample]


def read_recorded_input(path: str | Path) -> RecordedInput:
    """The input record of a Parquet triage output (empty for other files or older outputs)."""
    import pyarrow.parquet as pq

    from fpi.errors import InputError

    try:
        raw = pq.read_metadata(path).metadata or {}
    except (OSError, ValueError) as exc:
        raise InputError(f"{path}: not a readable Parquet file ({exc})") from None
    text = {k.decode(): v.decode() for k, v in raw.items() if k.decode().startswith("fpi.")}
    try:
        shift = profile = None
        if META_SHIFT in text:
            shift = ShiftReport.from_dict(json.loads(text[META_SHIFT]))
        if META_PROFILE in text:
            profile = Profile.from_dict(json.loads(text[META_PROFILE]))
        weeks = {}
        if profile is not None and META_SAMPLE in text:
            for week, entry in json.loads(text[META_SAMPLE])["weeks"].items():
                weeks[week] = BinnedSample.from_dict(entry)
    except (ValueError, KeyError, TypeError) as exc:
        raise InputError(f"{path}: unreadable fpi input record in its metadata ({exc})") from None
    return RecordedInput(shift, profile, weeks)
