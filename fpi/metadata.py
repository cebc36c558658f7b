"""The declared schema of a bundle's `metadata.json`, and the checks that the model fits it.

`METADATA_SCHEMA` names every key the code reads, its JSON type and whether it is required;
`check_metadata` refuses a document that breaks it, or whose classes, features or categories
are not exactly what this code computes, with a `ModelError` naming the file and the key.
Keys the schema does not name are kept and ignored (a newer fpi may add some).
`check_model_fits` then holds the checked model text (`fpi.modelfile`) against the metadata:
objective, classes, feature names, which features are categorical and which were used, and
every category code the trees can send left lies inside the bundle's category list.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from fpi.calibration import Calibration
from fpi.errors import ModelError
from fpi.featurize import CATALOG
from fpi.modelfile import ModelText
from fpi.schema import FAILURE_POINTS, TRACE_FORMAT

BUNDLE_FORMAT = "fpi-model/1"
#: The objective whose softmax the prediction path applies; any other is refused.
OBJECTIVE = "multiclass"
MAX_METADATA_BYTES = 64 * 2**20
_SHA256 = re.compile(r"[0-9a-f]{64}")


@dataclass(frozen=True)
class Key:
    """One key of a JSON object: its type(s), whether it must be there, and what it means."""

    name: str
    kind: type | tuple[type, ...]
    required: bool = True
    doc: str = ""


METADATA_SCHEMA: tuple[Key, ...] = (
    Key("bundle_format", str, doc=f"always {BUNDLE_FORMAT}"),
    Key("fpi_version", str, doc="the fpi that trained the model"),
    Key("trace_format", str, doc=f"the trace format the features read ({TRACE_FORMAT})"),
    Key("classes", list, doc="the six failure points, in pipeline order"),
    Key("features", list, doc="the feature catalogue in order, one object per feature"),
    Key("params", dict, doc="the LightGBM parameters, rounds and best_iteration"),
    Key("training", dict, doc="what the model was trained on"),
    Key("metrics", dict, doc="validation and held-out test figures"),
    Key("model_sha256", str, required=False, doc="SHA-256 of model.txt (checked on load)"),
    Key("calibration", dict, required=False, doc="fpi.calibration.Calibration.to_json()"),
    Key("decision", dict, required=False, doc="a decision rule over calibrated probabilities"),
    Key("profile", dict, required=False, doc="the training profile (for shift detection)"),
)
FEATURE_SCHEMA: tuple[Key, ...] = (
    Key("name", str),
    Key("stage", str),
    Key("dtype", str, doc="categorical or float64"),
    Key("categorical", bool),
    Key("used", bool, doc="false: left out of training (an ablation), always missing"),
    Key("categories", list, doc="categorical: the codes 0, 1, ... in order; else []"),
)
PARAMS_SCHEMA: tuple[Key, ...] = (
    Key("objective", str, doc=f"must be {OBJECTIVE}"),
    Key("num_threads", int, required=False, doc="threads for prediction and explanation"),
    Key("num_class", int, required=False),
    Key("rounds", int, required=False),
    Key("best_iteration", int, required=False),
    Key("class_weighting", str, required=False, doc="how classes were weighed in training"),
    Key("early_stopping", bool, required=False, doc="rounds stopped by validation log-loss"),
    Key("bag", int, required=False, doc="boosters averaged into the model (average_of)"),
)


def read_metadata(path: Path) -> dict[str, Any]:
    """`metadata.json` decoded (one object, no repeated key, bounded size) and checked."""
    try:
        size = path.stat().st_size
        if size > MAX_METADATA_BYTES:
            raise ModelError(f"{path}: {size:,} bytes, more than metadata may have")
        text = path.read_bytes().decode("utf-8")
        metadata = json.loads(text, object_pairs_hook=_unique_keys)
    except OSError as exc:
        raise ModelError(f"{path}: cannot read the metadata ({exc.strerror or exc})") from None
    except (UnicodeDecodeError, ValueError, RecursionError) as exc:
        reason = "nested too deeply" if isinstance(exc, RecursionError) else str(exc)[:200]
        raise ModelError(f"{path}: unreadable metadata ({reason})") from None
    check_metadata(metadata, str(path))
    return metadata


def _unique_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    seen: dict[str, Any] = {}
    for key, value in pairs:
        if key in seen:
            raise ValueError(f"key {key[:60]!r} appears twice in one object")
        seen[key] = value
    return seen


def check_object(value: Any, schema: tuple[Key, ...], where: str) -> None:
    """`value` is a JSON object with every required key of `schema`, each of its type."""
    if not isinstance(value, dict):
        raise ModelError(f"{where} must be a JSON object, not {_json_type(value)}")
    for key in schema:
        if key.name not in value:
            if key.required:
                raise ModelError(f"{where} lacks {key.name!r}")
            continue
        item = value[key.name]
        kinds = key.kind if isinstance(key.kind, tuple) else (key.kind,)
        # JSON has no separate bool: true is not an integer here.
        if not isinstance(item, kinds) or (isinstance(item, bool) and bool not in kinds):
            expected = " or ".join(_JSON_NAMES[k] for k in kinds)
            raise ModelError(f"{where}: {key.name!r} must be {expected}, not {_json_type(item)}")


_JSON_NAMES: dict[type, str] = {
    str: "a string",
    int: "an integer",
    float: "a number",
    bool: "true or false",
    list: "a list",
    dict: "an object",
}


def _json_type(value: Any) -> str:
    if value is None:
        return "null"
    return next((name for kind, name in _JSON_NAMES.items() if type(value) is kind), "?")


def check_metadata(metadata: Any, source: str) -> None:
    """Refuse metadata that breaks the schema or does not fit this code (`ModelError`)."""
    check_object(metadata, METADATA_SCHEMA, source)
    if metadata["bundle_format"] != BUNDLE_FORMAT:
        raise ModelError(f"{source}: not an {BUNDLE_FORMAT} bundle")
    if metadata["trace_format"] != TRACE_FORMAT:
        raise ModelError(
            f"{source}: trained for {metadata['trace_format']}, this fpi reads {TRACE_FORMAT}"
        )
    if metadata["classes"] != list(FAILURE_POINTS):
        raise ModelError(f"{source}: classes {metadata['classes']} != {list(FAILURE_POINTS)}")
    _check_features(metadata["features"], source)
    params = metadata["params"]
    check_object(params, PARAMS_SCHEMA, f"{source}: params")
    if params["objective"] != OBJECTIVE:
        raise ModelError(
            f"{source}: objective {params['objective']!r}; fpi's probabilities are the softmax "
            f"of a {OBJECTIVE!r} model"
        )
    if params.get("num_threads", 0) < 0:
        raise ModelError(f"{source}: params num_threads must be >= 0")
    if params.get("num_class", len(FAILURE_POINTS)) != len(FAILURE_POINTS):
        raise ModelError(f"{source}: params num_class must be {len(FAILURE_POINTS)}")
    sha = metadata.get("model_sha256")
    if sha is not None and not _SHA256.fullmatch(sha):
        raise ModelError(f"{source}: model_sha256 is not 64 lowercase hex digits")
    Calibration.from_json(metadata.get("calibration"), len(FAILURE_POINTS), source)


def _check_features(features: list[Any], source: str) -> None:
    for i, entry in enumerate(features):
        where = f"{source}: features[{i}]"
        check_object(entry, FEATURE_SCHEMA, where)
        expected_dtype = "categorical" if entry["categorical"] else "float64"
        if entry["dtype"] != expected_dtype:
            raise ModelError(f"{where} ({entry['name']}): dtype must be {expected_dtype}")
        categories = entry["categories"]
        if not entry["categorical"] or not entry["used"]:
            if categories:
                raise ModelError(
                    f"{where} ({entry['name']}): categories of a feature that has none"
                )
        elif not all(isinstance(c, str) for c in categories) or categories != sorted(
            set(categories)
        ):
            raise ModelError(
                f"{where} ({entry['name']}): categories must be distinct strings, sorted"
            )
    expected = [(f.name, f.categorical) for f in CATALOG]
    found = [(f["name"], f["categorical"]) for f in features]
    if found != expected:
        missing = sorted({n for n, _ in expected} - {n for n, _ in found})
        extra = sorted({n for n, _ in found} - {n for n, _ in expected})
        raise ModelError(
            f"{source}: its features do not match this fpi's feature catalogue "
            f"(missing from the model: {missing or 'none'}; unknown to this code: {extra or 'none'}"
            f"{'; same names, other order or kinds' if not (missing or extra) else ''}). "
            "Retrain it with `fpi train`."
        )


def model_sha256(text: str) -> str:
    return hashlib.sha256(text.encode("ascii")).hexdigest()


def check_model_fits(model: ModelText, text: str, metadata: Mapping[str, Any], source: str) -> None:
    """The checked model text agrees with checked metadata (see the module docstring)."""
    expected_sha = metadata.get("model_sha256")
    if expected_sha is not None and model_sha256(text) != expected_sha:
        raise ModelError(
            f"{source}: SHA-256 {model_sha256(text)[:12]}... differs from the metadata's "
            f"{expected_sha[:12]}...: the file was changed after training"
        )
    if model.objective != OBJECTIVE or "average_output" in model.flags:
        raise ModelError(
            f"{source}: objective {model.header['objective'][:40]!r}; only {OBJECTIVE!r} "
            "boosted trees are supported (their softmax is fpi's probability)"
        )
    classes = len(FAILURE_POINTS)
    if model.num_class != classes or model.num_tree_per_iteration != classes:
        raise ModelError(
            f"{source}: {model.num_class} classes and {model.num_tree_per_iteration} trees per "
            f"iteration; the model must have {classes} of each"
        )
    features = metadata["features"]
    names = [f["name"] for f in features]
    if model.feature_names != names:
        raise ModelError(
            f"{source}: its {model.num_features} feature names differ from the metadata's "
            f"{len(names)}"
        )
    _check_feature_infos(model, features, source)
    _check_splits_fit(model, features, source)


def _check_feature_infos(model: ModelText, features: list[dict[str, Any]], source: str) -> None:
    """LightGBM records the category codes it saw in training; a category list shorter than
    the codes (or a used categorical feature without codes) does not fit the model."""
    for info, entry in zip(model.feature_infos, features, strict=True):
        if not entry["categorical"] or info == "none":
            continue
        try:
            codes = [int(code) for code in info.split(":")]
        except ValueError:
            raise ModelError(
                f"{source}: feature_infos of {entry['name']} is not a list of category codes"
            ) from None
        if max(codes) >= len(entry["categories"]):
            raise ModelError(
                f"{source}: the model saw category code {max(codes)} of {entry['name']}, the "
                f"metadata lists {len(entry['categories'])} categories"
            )


def _check_splits_fit(model: ModelText, features: list[dict[str, Any]], source: str) -> None:
    """Every split is on a feature training used, of its kind, and a categorical split's
    bitset sends left only codes the bundle's category list has."""
    used = np.array([f["used"] for f in features], dtype=bool)
    kinds = np.array([f["categorical"] for f in features], dtype=bool)
    sizes = np.array([len(f["categories"]) for f in features], dtype=np.int64)
    feature = model.split_feature
    categorical = (model.decision_type & 1) != 0
    split_tree = model.split_tree
    for bad, problem in (
        (~used[feature], "splits on {}, which training left out"),
        (kinds[feature] != categorical, "splits on {} as the other kind (numeric/categorical)"),
    ):
        if bad.any():
            first = int(np.flatnonzero(bad)[0])
            name = features[feature[first]]["name"]
            raise ModelError(f"{source}: tree {split_tree[first]}: {problem.format(name)}")
    # The words of each categorical split's bitset, end to end; a word's highest set bit is
    # the highest code it sends left.
    trees = split_tree[categorical]
    bitset = model.cat_start[trees] + model.threshold[categorical].astype(np.int64)
    start = model.word_start[trees] + model.cat_boundaries[bitset]
    lengths = model.word_start[trees] + model.cat_boundaries[bitset + 1] - start
    before = np.cumsum(lengths) - lengths
    position = np.arange(int(lengths.sum())) - np.repeat(before, lengths)
    words = model.cat_threshold[np.repeat(start, lengths) + position]
    highest = 32 * position + np.frexp(words.astype(np.float64))[1] - 1
    limit = np.repeat(sizes[feature[categorical]], lengths)
    bad = (words != 0) & (highest >= limit)
    if bad.any():
        split = np.repeat(np.arange(len(trees)), lengths)[np.flatnonzero(bad)[0]]
        entry = features[feature[categorical][split]]
        raise ModelError(
            f"{source}: tree {trees[split]}: sends category code {int(highest[bad][0])} of "
            f"{entry['name']} left, the metadata lists {len(entry['categories'])} categories"
        )
