"""The six-class failure-point model: training, the on-disk bundle, and prediction.

A bundle is a directory holding `model.txt` (LightGBM's own text format) and `metadata.json`
(versions, feature names, dtypes and categorical codes, class order, training summary,
validation metrics, the calibration and the SHA-256 of model.txt; its schema is
`fpi.metadata.METADATA_SCHEMA`). Categorical codes are fixed by the bundle: a value never seen
in training is encoded as missing, whatever frame it arrives in. Loading checks the metadata,
the hash and every tree (`fpi.modelfile`) before LightGBM or a compiled kernel reads the model.
"""

from __future__ import annotations

import hashlib
import json
import os
import sys
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from functools import cached_property
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING, Any

import lightgbm as lgb
import numpy as np
import polars as pl

from fpi import __version__
from fpi.calibration import Calibration, calibration_scores, fit_calibration
from fpi.decision import DECISION_KEY, choose_offsets, decision_metadata
from fpi.errors import ConfigError, ModelError
from fpi.featurize import CATALOG, extract_features
from fpi.hashing import unit_hash
from fpi.metadata import (
    BUNDLE_FORMAT,
    OBJECTIVE,
    check_model_fits,
    model_sha256,
    read_metadata,
)
from fpi.modelfile import ModelText, read_model_file
from fpi.profile import Profile, build_profile, load_profile
from fpi.schema import FAILURE_POINTS, TRACE_FORMAT

if TYPE_CHECKING:
    from fpi.fastpredict import FastPredictor
    from fpi.fastshap import FastExplainer

MODEL_FILE = "model.txt"
METADATA_FILE = "metadata.json"

#: Defaults chosen for quality per unit of explanation cost (SHAP time follows trees x leaves x
#: depth): see the training benchmark for the measurements behind them.
DEFAULT_PARAMS: dict[str, Any] = {
    "objective": "multiclass",
    "learning_rate": 0.1,
    "num_leaves": 15,
    "max_depth": 6,
    "min_data_in_leaf": 40,
    "feature_fraction": 0.8,
    "bagging_fraction": 0.8,
    "bagging_freq": 1,
    "lambda_l2": 1.0,
    "cat_smooth": 10.0,
    "max_cat_to_onehot": 8,
    "num_threads": 2,
    "deterministic": True,
    "force_row_wise": True,
    "verbosity": -1,
}
DEFAULT_ROUNDS = 400
EARLY_STOPPING_ROUNDS = 30
#: A bag's k-th booster is fitted with LightGBM seed `seed + BAG_SEED_STEP * k`.
BAG_SEED_STEP = 1000
#: A categorical value must be seen this often in training to get its own code.
MIN_CATEGORY_COUNT = 5


def default_model_dir() -> Path:
    """The model bundled with the package (trained on simulated `base` traces)."""
    return Path(str(resources.files("fpi.models").joinpath("default")))


def dialogue_split(
    dialogue_ids: pl.Series, fractions: Mapping[str, float], *, seed: int = 0
) -> pl.Series:
    """Assign every turn to a split by a stable hash of its dialogue, never by turn.

    `fractions` maps split names to shares summing to 1, e.g. {"train": .8, "valid": .1, ...}.
    The assignment depends only on the dialogue id and the seed, so it is reproducible across
    runs, machines and library versions. Splits with different seeds are independent (a
    keyed BLAKE2b hash: a seeded CRC-32 is linear, and nested CRC splits of the same ids,
    such as cross-validation folds inside a training part, were strongly correlated).
    """
    unique = dialogue_ids.unique(maintain_order=True)
    key = str(seed)
    points = np.fromiter(
        (unit_hash(str(d), key) for d in unique.to_list()),
        dtype=np.float64,
        count=len(unique),
    )
    edges = np.cumsum(list(fractions.values()))
    names = list(fractions)
    index = np.minimum(np.searchsorted(edges, points, side="right"), len(names) - 1)
    lookup = pl.DataFrame({"dialogue_id": unique, "split": np.array(names)[index]})
    return (
        dialogue_ids.to_frame("dialogue_id")
        .join(lookup, on="dialogue_id", how="left", maintain_order="left")
        .get_column("split")
    )


def dialogue_halves(dialogue_ids: pl.Series) -> np.ndarray:
    """Two halves of a split's turns, by dialogue (True for one half), from a hash that is
    independent of `dialogue_split`'s (unkeyed, where every split is keyed by its seed)."""
    unique = dialogue_ids.unique(maintain_order=True)
    first = [hashlib.blake2b(str(d).encode(), digest_size=1).digest()[0] % 2 == 1 for d in unique]
    lookup = pl.DataFrame({"dialogue_id": unique, "half": pl.Series(first, dtype=pl.Boolean)})
    return (
        dialogue_ids.to_frame("dialogue_id")
        .join(lookup, on="dialogue_id", how="left", maintain_order="left")
        .get_column("half")
        .to_numpy()
    )


def encode_features(features: pl.DataFrame, feature_meta: list[dict[str, Any]]) -> np.ndarray:
    """A float matrix in `feature_meta` order; categorical values become their fixed codes and
    a value outside the recorded categories becomes missing (NaN). A feature the bundle was
    trained without (`used: false`, an ablation) is all missing."""
    columns = []
    for entry in feature_meta:
        column = features.get_column(entry["name"])
        if not entry["used"]:
            column = pl.repeat(None, len(features), dtype=pl.Float64, eager=True)
        elif entry["categorical"]:
            codes = {c: float(i) for i, c in enumerate(entry["categories"])}
            column = column.replace_strict(codes, default=None, return_dtype=pl.Float64)
        columns.append(column.cast(pl.Float64).fill_null(float("nan")))
    if not columns:
        return np.empty((len(features), 0))
    return np.column_stack([c.to_numpy() for c in columns]).astype(np.float64, copy=False)


def average_of(boosters: list[lgb.Booster]) -> lgb.Booster:
    """One booster whose raw score is the mean of theirs: their trees one after another, each
    leaf (and internal) value divided by their number. They must share data and classes (the
    header, feature infos and parameters are the first one's)."""
    share = 1.0 / len(boosters)
    texts = [b.model_to_string() for b in boosters]
    first = texts[0]
    header = first[: first.index("\nTree=0\n") + 1]
    header = "".join(line for line in header.splitlines(True) if not line.startswith("tree_sizes="))
    trailer = first[first.index("end of trees") :]
    trees: list[str] = []
    for text in texts:
        body = text[text.index("\nTree=0\n") + 1 : text.index("end of trees")]
        for block in body.split("Tree=")[1:]:
            lines = block.splitlines()[1:]  # the first line is the old index
            for i, line in enumerate(lines):
                key, _, values = line.partition("=")
                if key in ("leaf_value", "internal_value") and values:
                    scaled = np.array(values.split(), dtype=np.float64) * share
                    lines[i] = f"{key}=" + " ".join(repr(float(v)) for v in scaled)
            trees.append(f"Tree={len(trees)}\n" + "\n".join(lines) + "\n")
    merged = header + "\n" + "".join(trees) + trailer
    # parsed once and written again, so LightGBM itself writes a consistent `tree_sizes`
    return lgb.Booster(model_str=lgb.Booster(model_str=merged).model_to_string())


@dataclass
class ModelBundle:
    """A trained booster with everything needed to apply it to new traces.

    Predictions go through `fpi.predict` (the one path triage, explain and evaluate share):
    the compiled scorer for raw scores, the bundle's calibration, then its decision rule.
    """

    booster: lgb.Booster
    metadata: dict[str, Any]
    #: The checked model text, when the bundle was loaded from disk (saves parsing it again).
    model: ModelText | None = None
    #: The training profile (`profile.json` beside the model, `fpi.profile`); None for a
    #: bundle made before profiles existed.
    profile: Profile | None = None

    @property
    def feature_names(self) -> list[str]:
        return [f["name"] for f in self.metadata["features"]]

    @property
    def classes(self) -> list[str]:
        return list(self.metadata["classes"])

    def matrix(self, features: pl.DataFrame) -> np.ndarray:
        """The float matrix the booster reads, categorical codes taken from the bundle."""
        return encode_features(features, self.metadata["features"])

    def predict_proba(self, matrix: np.ndarray) -> np.ndarray:
        """Calibrated class probabilities, columns in `classes` order (`fpi.predict.predict`)."""
        from fpi.predict import predict

        return predict(self, matrix).probabilities

    def decide(self, proba: np.ndarray) -> np.ndarray:
        """Class indices from calibrated probabilities, by the bundle's decision rule."""
        from fpi.predict import decide

        return decide(proba, self.metadata.get(DECISION_KEY))

    @cached_property
    def explainer(self) -> FastExplainer:
        """Exact TreeSHAP for this booster (`fpi.fastshap.FastExplainer`), built once; it uses
        as many threads as the bundle's LightGBM parameters ask for."""
        from fpi.fastshap import FastExplainer

        source = self.model if self.model is not None else self.booster
        return FastExplainer(source, num_threads=self.num_threads)

    @cached_property
    def predictor(self) -> FastPredictor:
        """The compiled scorer of the explainer's trees (`fpi.fastpredict.FastPredictor`)."""
        from fpi.fastpredict import FastPredictor

        return FastPredictor(self.explainer)

    @property
    def calibration(self) -> Calibration:
        """Raw scores to probabilities: the bundle's calibration (the softmax if none)."""
        return Calibration.from_json(
            self.metadata.get("calibration"), len(FAILURE_POINTS), "bundle"
        )

    @property
    def num_threads(self) -> int:
        return int(self.metadata["params"].get("num_threads", 2))

    def save(self, model_dir: Path | str) -> Path:
        """Write model.txt and metadata.json (each renamed into place only once written),
        recording the model's SHA-256 in both copies of the metadata (this object's and the
        file's)."""
        from fpi.io import atomic_output

        model_dir = Path(model_dir)
        text = self.booster.model_to_string()
        self.metadata["model_sha256"] = model_sha256(text)
        with (
            atomic_output(model_dir / MODEL_FILE) as model_tmp,
            atomic_output(model_dir / METADATA_FILE) as metadata_tmp,
        ):  # both written before either replaces the old bundle's file
            model_tmp.write_text(text)
            metadata_tmp.write_text(json.dumps(self.metadata, indent=2) + "\n")
            if self.profile is not None:
                self.profile.save(model_dir)
        return model_dir


def _feature_metadata(
    features: pl.DataFrame, without_stages: Sequence[str]
) -> list[dict[str, Any]]:
    entries = []
    for feature in CATALOG:
        used = feature.stage not in without_stages
        entry: dict[str, Any] = {
            "name": feature.name,
            "stage": feature.stage,
            "dtype": "categorical" if feature.categorical else "float64",
            "categorical": feature.categorical,
            "used": used,
            "categories": [],
        }
        if feature.categorical and used:
            counts = features.get_column(feature.name).drop_nulls().value_counts()
            entry["categories"] = sorted(
                counts.filter(pl.col("count") >= MIN_CATEGORY_COUNT)
                .get_column(feature.name)
                .to_list()
            )
        entries.append(entry)
    return entries


def load_bundle(model_dir: Path | str | None = None) -> ModelBundle:
    """Load a bundle (default: the bundled model) and check it fits the running code.

    The metadata is checked against its schema, model.txt against its SHA-256 and tree by
    tree (`fpi.modelfile`, `fpi.metadata.check_model_fits`) before LightGBM's loader or any
    compiled kernel is handed the text; every failure is a `ModelError` naming the file.
    """
    model_dir = Path(model_dir) if model_dir is not None else default_model_dir()
    metadata_path, model_path = model_dir / METADATA_FILE, model_dir / MODEL_FILE
    if not metadata_path.is_file() or not model_path.is_file():
        raise ModelError(f"{model_dir}: no model bundle ({MODEL_FILE} and {METADATA_FILE})")
    metadata = read_metadata(metadata_path)
    text, model = read_model_file(model_path)
    check_model_fits(model, text, metadata, str(model_path))
    try:
        booster = lgb.Booster(model_str=text)
    except lgb.basic.LightGBMError as exc:
        raise ModelError(f"{model_path}: unreadable LightGBM model ({exc})") from None
    return ModelBundle(booster, metadata, model=model, profile=load_profile(model_dir))


#: Parameters fpi sets itself, and where to set them instead.
_OWN_PARAMS = {
    "num_class": "fpi always trains the six failure points",
    "seed": "use --seed",
    "num_iterations": "use --rounds",
}


def check_params(params: Mapping[str, Any]) -> dict[str, Any]:
    """LightGBM parameter overrides under their canonical names, or a `ConfigError` saying
    why not: an unknown name, a parameter fpi sets itself, an objective other than
    multiclass, random forests or linear trees (which fpi cannot explain), or a value
    LightGBM refuses (tried on a tiny dataset, so it fails in milliseconds, not mid-run)."""
    aliases = lgb.basic._ConfigAliases._get_all_param_aliases()
    canonical_of = {alias: name for name, names in aliases.items() for alias in names}
    checked: dict[str, Any] = {}
    for key, value in params.items():
        name = canonical_of.get(key)
        if name is None:
            raise ConfigError(f"--param {key}: not a LightGBM parameter")
        if name in _OWN_PARAMS:
            raise ConfigError(f"--param {key}: {_OWN_PARAMS[name]}")
        if name in checked:
            raise ConfigError(f"--param {key}: {name} given twice (under two names)")
        checked[name] = value
    objective = checked.get("objective", OBJECTIVE)
    if objective != OBJECTIVE:
        raise ConfigError(
            f"--param objective={objective}: fpi's probabilities are the softmax of a "
            f"{OBJECTIVE!r} model; other objectives are refused"
        )
    if checked.get("boosting", "gbdt") not in ("gbdt", "gbrt", "dart"):
        raise ConfigError(f"--param boosting={checked['boosting']}: use gbdt or dart")
    if checked.get("linear_tree") not in (None, False, 0, "false"):
        raise ConfigError("--param linear_tree: linear trees cannot be explained by fpi")
    threads = checked.get("num_threads", 0)
    if isinstance(threads, bool) or not isinstance(threads, int) or threads < 0:
        raise ConfigError(f"--param num_threads={threads}: must be a whole number >= 0")
    rows = np.random.default_rng(0).normal(size=(60, 2))
    probe = lgb.Dataset(rows, label=np.arange(60) % len(FAILURE_POINTS), params={"verbosity": -1})
    try:
        with _lightgbm_quiet():
            lgb.Booster(
                {**DEFAULT_PARAMS, **checked, "num_class": len(FAILURE_POINTS), "verbosity": -1},
                probe,
            )
    except (lgb.basic.LightGBMError, TypeError, ValueError) as exc:
        reason = str(exc).split(" at ", 1)[0].strip()
        raise ConfigError(f"--param: LightGBM refuses {checked}: {reason}") from None
    return checked


@contextmanager
def _lightgbm_quiet() -> Iterator[None]:
    """Keep LightGBM's native "[Fatal] ..." line (written to file descriptor 2 before it
    raises) off the terminal: the error comes back as an exception, said once, by us."""
    sys.stderr.flush()
    saved = os.dup(2)
    try:
        with open(os.devnull, "wb") as devnull:
            os.dup2(devnull.fileno(), 2)
            yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)


#: How training weighs each class against its frequency: the power of the inverse frequency.
#: `sqrt` tempers imbalance (the default: on large, mildly imbalanced traffic full weights buy
#: rare-class recall with the majority's precision); `inverse` gives every class the same
#: total weight (a class of 60 turns in 11,677 weighs as much as the majority: on DSTC2 it
#: lifts the 5-class macro-F1 of the grouped out-of-fold predictions by ~0.03); `none` weighs
#: every turn alike.
CLASS_WEIGHTINGS: dict[str, float] = {"sqrt": 0.5, "inverse": 1.0, "none": 0.0}


def check_class_weighting(weighting: str) -> float:
    """The inverse-frequency power a class weighting names, or a `ConfigError`."""
    if weighting not in CLASS_WEIGHTINGS:
        raise ConfigError(
            f"unknown class weighting {weighting!r} (known: {', '.join(CLASS_WEIGHTINGS)})"
        )
    return CLASS_WEIGHTINGS[weighting]


def class_weights(labels: np.ndarray, n_classes: int, weighting: str = "sqrt") -> np.ndarray:
    """Per-turn weights against class imbalance: inverse class frequency to the power that
    `weighting` names in `CLASS_WEIGHTINGS`."""
    power = check_class_weighting(weighting)
    counts = np.bincount(labels, minlength=n_classes).astype(np.float64)
    inverse = counts.sum() / np.maximum(counts, 1.0) / n_classes
    return (inverse**power)[labels]


def label_codes(traces: pl.DataFrame) -> np.ndarray:
    """Gold failure points as class indices; every turn must carry a known label."""
    labels = traces.get_column("label").struct.field("failure_point")
    unknown = labels.is_null() | ~labels.is_in(list(FAILURE_POINTS))
    if unknown.any():
        raise ModelError(
            f"{int(unknown.sum())} training turn(s) without a known label.failure_point "
            "(training needs gold labels on every turn)"
        )
    return labels.replace_strict(
        {c: i for i, c in enumerate(FAILURE_POINTS)}, return_dtype=pl.Int32
    ).to_numpy()


def _summary(traces: pl.DataFrame, split: pl.Series) -> dict[str, Any]:
    labels = traces.get_column("label").struct.field("failure_point")
    sources = traces.get_column("label").struct.field("source").drop_nulls().unique().sort()
    return {
        "turns": len(traces),
        "dialogues": traces.get_column("dialogue_id").n_unique(),
        "split_turns": dict(sorted(split.value_counts().iter_rows())),
        "label_counts": {c: int((labels == c).sum()) for c in FAILURE_POINTS},
        "label_sources": sources.to_list(),
        "first_timestamp": str(traces.get_column("timestamp").min()),
        "last_timestamp": str(traces.get_column("timestamp").max()),
    }


def train(
    traces: pl.DataFrame,
    *,
    params: Mapping[str, Any] | None = None,
    rounds: int = DEFAULT_ROUNDS,
    seed: int = 0,
    split_fractions: Mapping[str, float] | None = None,
    without_stages: Sequence[str] = (),
    on_iteration: Callable[[int, int], None] | None = None,
    tune_decision: bool = True,
    components: pl.Series | Sequence[str] | None = None,
    class_weighting: str = "sqrt",
    early_stopping: bool = True,
    bag: int = 1,
) -> ModelBundle:
    """Train the six-class model on labelled traces.

    Turns are split train/valid/test by dialogue; early stopping watches the validation split,
    the calibration is fitted on it (`fpi.calibration.fit_calibration`), and the validation
    and held-out test metrics (accuracy, F1, ECE and log-loss before and after calibration)
    are stored in the bundle's metadata. `params` are LightGBM overrides (`check_params`).
    `without_stages` leaves out every feature of those stages (for ablations): the bundle
    keeps the full catalogue but encodes them as missing, so it never splits on them.
    `on_iteration(done, total)` is called after every boosting round (for progress displays).
    With `tune_decision`, per-class decision offsets are chosen on the validation split for
    macro-F1 (`fpi.decision`) and stored in the metadata; else the bundle decides by argmax.
    `components` (one name per trace row: the pipeline it came from) profiles the training
    traffic per pipeline (`fpi.profile`), for the shift check. `class_weighting` names how
    classes are weighed against their frequency (`CLASS_WEIGHTINGS`). Without
    `early_stopping` it boosts exactly `rounds` rounds: with inverse class weights the
    validation log-loss turns up long before macro-F1 stops rising (on DSTC2 after 25 rounds,
    where grouped cross-validation's macro-F1 peaks near 150), so choose them by
    cross-validation instead. With `bag` > 1 it fits that many boosters on the same split,
    with LightGBM seeds `seed`, `seed + 1000`, ... (so each samples its own rows and features),
    and keeps their average (`average_of`: one LightGBM model, explained like any other, with
    `bag` times the trees); on DSTC2 one booster's false-wake F1 swings by 0.05-0.1 with the
    seed alone.
    """
    if bag < 1:
        raise ModelError(f"bag must be at least 1, not {bag}")
    overrides = check_params(params or {})
    check_class_weighting(class_weighting)
    if components is not None and len(components) != traces.height:
        raise ModelError(f"{len(components)} component names for {traces.height} turns")
    fractions = dict(split_fractions or {"train": 0.8, "valid": 0.1, "test": 0.1})
    split = dialogue_split(traces.get_column("dialogue_id"), fractions, seed=seed)
    if not {"train", "valid"} <= set(split.unique().to_list()):
        raise ModelError("too few dialogues to split into train and validation sets")
    labels = label_codes(traces)
    features = extract_features(traces)
    unknown = set(without_stages) - {f.stage for f in CATALOG}
    if unknown:
        raise ModelError(f"unknown feature stage(s) {sorted(unknown)} in without_stages")
    feature_meta = _feature_metadata(features.filter(split == "train"), without_stages)
    metadata: dict[str, Any] = {
        "bundle_format": BUNDLE_FORMAT,
        "fpi_version": __version__,
        "trace_format": TRACE_FORMAT,
        "classes": list(FAILURE_POINTS),
        "features": feature_meta,
    }
    matrix = encode_features(features, feature_meta)
    names = [f["name"] for f in feature_meta]
    masks = {name: (split == name).to_numpy() for name in fractions}
    categorical = [i for i, f in enumerate(feature_meta) if f["categorical"]]
    lgb_params = {
        **DEFAULT_PARAMS,
        **overrides,
        "num_class": len(FAILURE_POINTS),
        "seed": seed,
    }

    def dataset(name: str, reference: lgb.Dataset | None = None) -> lgb.Dataset:
        mask = masks[name]
        return lgb.Dataset(
            matrix[mask],
            label=labels[mask],
            weight=class_weights(labels[mask], len(FAILURE_POINTS), class_weighting),
            feature_name=names,
            categorical_feature=categorical,
            reference=reference,
            free_raw_data=True,
        )

    def member(k: int) -> lgb.Booster:
        train_set = dataset("train")
        valid_set = dataset("valid", reference=train_set)
        callbacks = []
        if early_stopping:
            callbacks.append(lgb.early_stopping(EARLY_STOPPING_ROUNDS, verbose=False))
        if on_iteration is not None:
            callbacks.append(
                lambda env: on_iteration(k * rounds + env.iteration + 1, bag * env.end_iteration)
            )
        booster = lgb.train(
            {**lgb_params, "seed": seed + BAG_SEED_STEP * k},
            train_set,
            num_boost_round=rounds,
            valid_sets=[valid_set],
            valid_names=["valid"],
            callbacks=callbacks,
        )
        # best_iteration is 0 without early stopping: then every round is kept
        return lgb.Booster(model_str=booster.model_to_string(num_iteration=booster.best_iteration))

    members = [member(k) for k in range(bag)]
    booster = average_of(members) if bag > 1 else members[0]
    metadata["params"] = {
        **lgb_params,
        "rounds": rounds,
        # with a bag, the members' rounds side by side
        "best_iteration": booster.current_iteration(),
        "class_weighting": class_weighting,
        "early_stopping": early_stopping,
        "bag": bag,
    }
    bundle = ModelBundle(booster, metadata)
    fold = dialogue_halves(traces.get_column("dialogue_id").filter(pl.Series(masks["valid"])))
    valid_raw = bundle.predictor.raw_scores(matrix[masks["valid"]])
    calibration, out_of_fold = fit_calibration(valid_raw, labels[masks["valid"]], fold)
    metadata["calibration"] = {
        **calibration.to_json(),
        "fitted_on": "valid",
        "out_of_fold": out_of_fold,
    }
    if tune_decision:
        from fpi.evaluate import classification_metrics

        valid_proba = bundle.predict_proba(matrix[masks["valid"]])  # calibrated
        offsets = choose_offsets(valid_proba, labels[masks["valid"]])
        metadata[DECISION_KEY] = decision_metadata(
            offsets,
            FAILURE_POINTS,
            chosen_on="valid",
            valid_macro_f1_argmax=classification_metrics(
                labels[masks["valid"]], valid_proba.argmax(axis=1)
            )["macro_f1"],
        )
    metadata["training"] = _summary(traces, split)
    metadata["metrics"] = {
        name: split_metrics(bundle, matrix[masks[name]], labels[masks[name]])
        for name in fractions
        if name != "train" and masks[name].any()
    }
    bundle.profile = training_profile(
        bundle, traces, features, labels, masks, seed=seed, components=components
    )
    return bundle


def split_metrics(bundle: ModelBundle, matrix: np.ndarray, labels: np.ndarray) -> dict[str, Any]:
    """Classification metrics of the bundle's decisions, with ECE and log-loss of its
    probabilities after and before calibration (`*_uncalibrated`)."""
    from fpi.evaluate import classification_metrics
    from fpi.predict import predict

    predictions = predict(bundle, matrix)
    metrics = classification_metrics(labels, predictions.predicted)
    for suffix, proba in (
        ("", predictions.probabilities),
        ("_uncalibrated", predictions.uncalibrated),
    ):
        for key, value in calibration_scores(proba, labels).items():
            metrics[key + suffix] = value
    return metrics


def training_profile(
    bundle: ModelBundle,
    traces: pl.DataFrame,
    features: pl.DataFrame,
    labels: np.ndarray,
    masks: Mapping[str, np.ndarray],
    *,
    seed: int = 0,
    components: pl.Series | Sequence[str] | None = None,
) -> Profile:
    """The profile `train` stores: the training split's features, classes and components,
    and the model's top-class confidence on the validation split."""
    train_rows = pl.Series(masks["train"])
    if components is not None:
        components = pl.Series(components, dtype=pl.String).filter(train_rows)
    return build_profile(
        features.filter(train_rows),
        labels=np.asarray(FAILURE_POINTS)[labels[masks["train"]]],
        confidence=bundle.predict_proba(
            bundle.matrix(features.filter(pl.Series(masks["valid"])))
        ).max(axis=1),
        dialogue_ids=traces.get_column("dialogue_id").filter(train_rows),
        components=components,
        seed=seed,
    )
