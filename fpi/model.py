"""The six-class failure-point model: training, the on-disk bundle, and prediction.

A bundle is a directory holding `model.txt` (LightGBM's own text format) and `metadata.json`
(versions, feature names, dtypes and categorical codes, class order, training summary and
validation metrics). Categorical codes are fixed by the bundle: a value never seen in training
is encoded as missing, whatever frame it arrives in.
"""

from __future__ import annotations

import json
import zlib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from functools import cached_property
from importlib import resources
from pathlib import Path
from typing import Any

import lightgbm as lgb
import numpy as np
import polars as pl

from fpi import __version__
from fpi.decision import (
    DECISION_KEY,
    choose_offsets,
    decide,
    decision_metadata,
    offsets_from_metadata,
)
from fpi.errors import ModelError
from fpi.featurize import CATALOG, extract_features
from fpi.schema import FAILURE_POINTS, TRACE_FORMAT

MODEL_FILE = "model.txt"
METADATA_FILE = "metadata.json"
BUNDLE_FORMAT = "fpi-model/1"

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
    runs, machines and library versions.
    """
    unique = dialogue_ids.unique(maintain_order=True)
    points = np.fromiter(
        (zlib.crc32(f"{seed}:{d}".encode()) / 2**32 for d in unique.to_list()),
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


@dataclass
class ModelBundle:
    """A trained booster with everything needed to apply it to new traces."""

    booster: lgb.Booster
    metadata: dict[str, Any]

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
        """Class probabilities, columns in `classes` order."""
        return self.booster.predict(matrix, num_threads=self.num_threads)

    def decide(self, proba: np.ndarray) -> np.ndarray:
        """Class indices from probabilities, by the bundle's decision rule (`fpi.decision`)."""
        return decide(proba, offsets_from_metadata(self.metadata))

    @cached_property
    def explainer(self):
        """Exact TreeSHAP for this booster (`fpi.fastshap.FastExplainer`), built once; it uses
        as many threads as the bundle's LightGBM parameters ask for."""
        from fpi.fastshap import FastExplainer

        return FastExplainer(self.booster, num_threads=self.num_threads)

    @property
    def num_threads(self) -> int:
        return int(self.metadata["params"].get("num_threads", 2))

    def save(self, model_dir: Path | str) -> Path:
        model_dir = Path(model_dir)
        model_dir.mkdir(parents=True, exist_ok=True)
        self.booster.save_model(str(model_dir / MODEL_FILE))
        (model_dir / METADATA_FILE).write_text(json.dumps(self.metadata, indent=2) + "\n")
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


def check_compatible(metadata: Mapping[str, Any], source: str) -> None:
    """Fail clearly when a bundle was made for other code (format, classes or features)."""
    if metadata.get("bundle_format") != BUNDLE_FORMAT:
        raise ModelError(f"{source}: not an {BUNDLE_FORMAT} bundle")
    if metadata.get("trace_format") != TRACE_FORMAT:
        raise ModelError(
            f"{source}: trained for {metadata.get('trace_format')}, this fpi reads {TRACE_FORMAT}"
        )
    if list(metadata.get("classes", [])) != list(FAILURE_POINTS):
        raise ModelError(f"{source}: classes {metadata.get('classes')} != {list(FAILURE_POINTS)}")
    expected = [(f.name, f.categorical) for f in CATALOG]
    found = [(f["name"], f["categorical"]) for f in metadata.get("features", [])]
    if found != expected:
        missing = sorted({n for n, _ in expected} - {n for n, _ in found})
        extra = sorted({n for n, _ in found} - {n for n, _ in expected})
        raise ModelError(
            f"{source}: its features do not match this fpi's feature catalogue "
            f"(missing from the model: {missing or 'none'}; unknown to this code: {extra or 'none'}"
            f"{'; same names, other order or kinds' if not (missing or extra) else ''}). "
            "Retrain it with `fpi train`."
        )


def load_bundle(model_dir: Path | str | None = None) -> ModelBundle:
    """Load a bundle (default: the bundled model) and check it fits the running code."""
    model_dir = Path(model_dir) if model_dir is not None else default_model_dir()
    metadata_path, model_path = model_dir / METADATA_FILE, model_dir / MODEL_FILE
    if not metadata_path.is_file() or not model_path.is_file():
        raise ModelError(f"{model_dir}: no model bundle ({MODEL_FILE} and {METADATA_FILE})")
    try:
        metadata = json.loads(metadata_path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ModelError(f"{metadata_path}: unreadable metadata ({exc})") from None
    check_compatible(metadata, str(model_dir))
    try:
        booster = lgb.Booster(model_file=str(model_path))
    except lgb.basic.LightGBMError as exc:
        raise ModelError(f"{model_path}: unreadable LightGBM model ({exc})") from None
    if booster.num_feature() != len(metadata["features"]):
        raise ModelError(f"{model_path}: model and metadata disagree on the number of features")
    return ModelBundle(booster, metadata)


def class_weights(labels: np.ndarray, n_classes: int) -> np.ndarray:
    """Per-turn weights that temper class imbalance (square root of inverse frequency)."""
    counts = np.bincount(labels, minlength=n_classes).astype(np.float64)
    per_class = np.sqrt(counts.sum() / np.maximum(counts, 1.0) / n_classes)
    return per_class[labels]


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
) -> ModelBundle:
    """Train the six-class model on labelled traces.

    Turns are split train/valid/test by dialogue; early stopping watches the validation split
    and the held-out test split's metrics are stored in the bundle's metadata.
    `without_stages` leaves out every feature of those stages (for ablations): the bundle
    keeps the full catalogue but encodes them as missing, so it never splits on them.
    `on_iteration(done, total)` is called after every boosting round (for progress displays).
    With `tune_decision`, per-class decision offsets are chosen on the validation split for
    macro-F1 (`fpi.decision`) and stored in the metadata; else the bundle decides by argmax.
    """
    from fpi.evaluate import classification_metrics

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
        **(params or {}),
        "num_class": len(FAILURE_POINTS),
        "seed": seed,
    }

    def dataset(name: str, reference: lgb.Dataset | None = None) -> lgb.Dataset:
        mask = masks[name]
        return lgb.Dataset(
            matrix[mask],
            label=labels[mask],
            weight=class_weights(labels[mask], len(FAILURE_POINTS)),
            feature_name=names,
            categorical_feature=categorical,
            reference=reference,
            free_raw_data=True,
        )

    train_set = dataset("train")
    valid_set = dataset("valid", reference=train_set)
    callbacks = [lgb.early_stopping(EARLY_STOPPING_ROUNDS, verbose=False)]
    if on_iteration is not None:
        callbacks.append(lambda env: on_iteration(env.iteration + 1, env.end_iteration))
    booster = lgb.train(
        lgb_params,
        train_set,
        num_boost_round=rounds,
        valid_sets=[valid_set],
        valid_names=["valid"],
        callbacks=callbacks,
    )
    booster = lgb.Booster(model_str=booster.model_to_string(num_iteration=booster.best_iteration))
    metadata["params"] = {
        **lgb_params,
        "rounds": rounds,
        "best_iteration": booster.current_iteration(),
    }
    bundle = ModelBundle(booster, metadata)
    if tune_decision:
        valid_proba = bundle.predict_proba(matrix[masks["valid"]])
        offsets = choose_offsets(valid_proba, labels[masks["valid"]])
        metadata[DECISION_KEY] = decision_metadata(
            offsets,
            FAILURE_POINTS,
            chosen_on="valid",
            valid_macro_f1_argmax=classification_metrics(
                labels[masks["valid"]], valid_proba.argmax(axis=1)
            )["macro_f1"],
        )
    metrics = {}
    for name in fractions:
        if name == "train" or not masks[name].any():
            continue
        predicted = bundle.decide(bundle.predict_proba(matrix[masks[name]]))
        metrics[name] = classification_metrics(labels[masks[name]], predicted)
    metadata["training"] = _summary(traces, split)
    metadata["metrics"] = metrics
    return bundle
