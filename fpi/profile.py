"""The training profile of a model bundle: what the model saw, in a few dozen kilobytes of JSON.

Per numeric feature its quantile bins (bin edges, counts, missing rate and a few quantiles),
per categorical feature its most frequent categories, the class mix, the distribution of the
model's own top-class confidence on validation turns, and a small sample of training turns
stored as bin codes (for the classifier-based shift score, `fpi.shift`).

Every feature value maps to a small integer code on the profile's bins: 0 is missing; for a
numeric feature 1 is below the training minimum, 2.. the quantile bins (the maximum a bin of
its own) and the last code above the training maximum; for a categorical one 1 is a category
outside the profile ("other") and 2.. its categories. Shift measures (PSI, the classifier)
work on these codes, so a stored sample and a dump's turns compare on the same footing.

Training traffic drawn from several pipelines (the bundled model's domain-randomised mixture)
is profiled per **component** (`components=`, one pipeline name per turn): each component's
turn count and per-feature bin counts, and the stored sample stratified by component with
every sampled turn's component, so `fpi.shift` can compare a dump with the training pipelines
it most resembles rather than with the whole mixture. Such a profile is an `fpi-profile/2`
document; a profile of one component is written as `fpi-profile/1`, as before.

profile = build_profile(features, labels=..., confidence=..., dialogue_ids=..., components=...)
profile.save(bundle_dir); load_profile(bundle_dir)   # profile.json, or None for old bundles
"""

from __future__ import annotations

import base64
import hashlib
import json
import zlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl

from fpi.errors import ModelError
from fpi.features import CATALOG

PROFILE_FILE = "profile.json"
PROFILE_FORMAT = "fpi-profile/1"
#: The format of a profile with training components (`Component`).
MIXTURE_PROFILE_FORMAT = "fpi-profile/2"
#: Quantile bins per numeric feature (fewer when values repeat, e.g. 0/1 flags).
NUMERIC_BINS = 20
#: Categories kept per categorical feature (the most frequent); the rest count as "other".
MAX_CATEGORIES = 60
#: Training turns stored as bin codes, for the classifier-based shift score.
SAMPLE_TURNS = 4000
#: Training turns stored for a profile of several components, stratified by component ...
MIXTURE_SAMPLE_TURNS = 8_000
#: ... and at least this many of each component (or all it has).
COMPONENT_SAMPLE_TURNS = 150
QUANTILES = (0.01, 0.05, 0.25, 0.5, 0.75, 0.95, 0.99)
CONFIDENCE_BINS = 20
MISSING_CODE = 0
OUTSIDE_CODE = 1  # numeric: below the training minimum; categorical: another category


@dataclass(frozen=True)
class FeatureProfile:
    """One feature's bins and what the training turns looked like on them."""

    name: str
    stage: str
    categorical: bool
    edges: tuple[float, ...]  # numeric: unique quantile edges, minimum to maximum
    categories: tuple[str, ...]  # categorical: most frequent first
    counts: np.ndarray  # training turns per code
    quantiles: tuple[float | None, ...] = ()

    @property
    def n_codes(self) -> int:
        if self.categorical:
            return 2 + len(self.categories)
        # missing, below the minimum, one bin from each edge to the next (the last edge, the
        # training maximum, a bin of its own: a 0/1 flag gets two), above the maximum
        return 3 + len(self.edges)

    @property
    def missing_rate(self) -> float:
        total = self.counts.sum()
        return float(self.counts[MISSING_CODE] / total) if total else 0.0

    def codes(self, column: pl.Series) -> np.ndarray:
        """The code of every value (see the module docstring)."""
        if self.categorical:
            lookup = {c: i + 2 for i, c in enumerate(self.categories)}
            text = column.cast(pl.String)
            coded = text.replace_strict(lookup, default=OUTSIDE_CODE, return_dtype=pl.UInt8)
            coded = pl.select(pl.when(text.is_null()).then(MISSING_CODE).otherwise(coded))
            return coded.to_series().to_numpy().astype(np.uint8)
        values = column.cast(pl.Float64).fill_nan(None).to_numpy()
        missing = np.isnan(values)
        codes = np.full(len(values), MISSING_CODE, dtype=np.uint8)
        if not self.edges:  # no training value at all: anything present is outside
            codes[~missing] = OUTSIDE_CODE
            return codes
        edges = np.asarray(self.edges)
        present = values[~missing]
        index = np.searchsorted(edges, present, side="right")  # 0 below, len(edges) at max
        index = np.where(present > edges[-1], len(edges) + 1, index)
        codes[~missing] = (index + 1).astype(np.uint8)
        return codes

    def to_dict(self) -> dict[str, Any]:
        entry: dict[str, Any] = {
            "name": self.name,
            "stage": self.stage,
            "kind": "categorical" if self.categorical else "numeric",
            "missing_rate": round(self.missing_rate, 6),
            "counts": self.counts.astype(int).tolist(),
        }
        if self.categorical:
            entry["categories"] = list(self.categories)
        else:
            entry["edges"] = list(self.edges)
            entry["quantiles"] = dict(zip(map(str, QUANTILES), self.quantiles, strict=True))
        return entry

    @classmethod
    def from_dict(cls, entry: Mapping[str, Any]) -> FeatureProfile:
        categorical = entry["kind"] == "categorical"
        quantiles = () if categorical else tuple(entry.get("quantiles", {}).values())
        profile = cls(
            name=entry["name"],
            stage=entry["stage"],
            categorical=categorical,
            edges=() if categorical else tuple(float(e) for e in entry["edges"]),
            categories=tuple(entry["categories"]) if categorical else (),
            counts=np.asarray(entry["counts"], dtype=np.int64),
            quantiles=quantiles,
        )
        if len(profile.counts) != profile.n_codes:
            raise ValueError(f"feature {profile.name}: {len(profile.counts)} counts for its bins")
        return profile


@dataclass(frozen=True)
class BinnedSample:
    """Turns as profile codes: `codes[i, j]` is turn i's code of feature j; `groups[i]` its
    dialogue (an integer), so cross-validation can keep a dialogue's turns together;
    `components[i]`, in a profile's stored sample, the index of its training component."""

    codes: np.ndarray  # (turns, features) uint8
    groups: np.ndarray  # (turns,) int64
    components: np.ndarray | None = None  # (turns,) int64

    def __len__(self) -> int:
        return len(self.groups)

    def counts(self, n_codes: Sequence[int]) -> list[np.ndarray]:
        """Turns per code, feature by feature."""
        return [
            np.bincount(self.codes[:, j], minlength=n).astype(np.int64)
            for j, n in enumerate(n_codes)
        ]

    def to_dict(self) -> dict[str, Any]:
        entry = {
            "turns": len(self),
            "features": int(self.codes.shape[1]),
            "codes": _pack(np.ascontiguousarray(self.codes.T).astype(np.uint8)),
            "groups": _pack(self.groups.astype("<i8")),
        }
        if self.components is not None:
            entry["components"] = _pack(self.components.astype("<u2"))
        return entry

    @classmethod
    def from_dict(cls, entry: Mapping[str, Any]) -> BinnedSample:
        turns, width = int(entry["turns"]), int(entry["features"])
        codes = np.frombuffer(_unpack(entry["codes"]), dtype=np.uint8)
        groups = np.frombuffer(_unpack(entry["groups"]), dtype="<i8").astype(np.int64)
        components = None
        if "components" in entry:
            components = np.frombuffer(_unpack(entry["components"]), dtype="<u2")
            components = components.astype(np.int64)
        if (
            codes.size != turns * width
            or groups.size != turns
            or (components is not None and components.size != turns)
        ):
            raise ValueError("sample sizes do not match its declared turns and features")
        return cls(codes.reshape(width, turns).T.copy(), groups, components)


@dataclass(frozen=True)
class Component:
    """One training component (a pipeline the training traffic came from): its turns and,
    feature by feature, its turns per code on the profile's bins."""

    name: str
    turns: int
    counts: tuple[np.ndarray, ...]


def _pack(array: np.ndarray) -> str:
    return base64.b64encode(zlib.compress(array.tobytes(), 9)).decode("ascii")


def _unpack(text: str) -> bytes:
    return zlib.decompress(base64.b64decode(text))


def _group_codes(dialogue_ids: pl.Series | Sequence[str] | None, n: int) -> np.ndarray:
    if dialogue_ids is None:
        return np.arange(n, dtype=np.int64)
    series = pl.Series(dialogue_ids, dtype=pl.String)
    if len(series) != n:
        raise ValueError(f"{len(series)} dialogue ids for {n} turns")
    return series.rank("dense").cast(pl.Int64).fill_null(0).to_numpy()


@dataclass(frozen=True)
class Profile:
    """What a model saw in training (see the module docstring)."""

    features: tuple[FeatureProfile, ...]
    turns: int
    sample: BinnedSample
    class_mix: dict[str, int]
    confidence: dict[str, Any] | None = None
    #: The training components (pipelines), when the profile was built with them; the stored
    #: sample's `components` then index this tuple.
    components: tuple[Component, ...] = ()

    @property
    def names(self) -> list[str]:
        return [f.name for f in self.features]

    @property
    def is_mixture(self) -> bool:
        """Whether the training traffic came from more than one component."""
        return len(self.components) > 1

    @cached_property
    def fingerprint(self) -> str:
        """Identifies the bins: samples binned on profiles with the same fingerprint compare."""
        bins = [[f.name, list(f.edges), list(f.categories)] for f in self.features]
        return hashlib.sha256(json.dumps(bins).encode()).hexdigest()[:16]

    def bin(
        self, features: pl.DataFrame, dialogue_ids: pl.Series | Sequence[str] | None = None
    ) -> BinnedSample:
        """A feature frame (columns by name, as `fpi.featurize.extract_features` gives) as codes."""
        missing = [name for name in self.names if name not in features.columns]
        if missing:
            raise ModelError(f"the frame lacks the profiled feature(s) {', '.join(missing)}")
        codes = np.empty((len(features), len(self.features)), dtype=np.uint8)
        for j, feature in enumerate(self.features):
            codes[:, j] = feature.codes(features.get_column(feature.name))
        return BinnedSample(codes, _group_codes(dialogue_ids, len(features)))

    def with_reference(self, sample: BinnedSample) -> Profile:
        """These bins with `sample` as the reference traffic (e.g. last week's turns)."""
        counts = sample.counts([f.n_codes for f in self.features])
        features = tuple(
            FeatureProfile(f.name, f.stage, f.categorical, f.edges, f.categories, c)
            for f, c in zip(self.features, counts, strict=True)
        )
        return Profile(features, len(sample), sample, class_mix={})

    @cached_property
    def document(self) -> str:
        """The profile as compact JSON text (what `save` writes), made once."""
        return json.dumps(self.to_dict(), separators=(",", ":"))

    def to_dict(self) -> dict[str, Any]:
        document = {
            "profile_format": MIXTURE_PROFILE_FORMAT if self.components else PROFILE_FORMAT,
            "fingerprint": self.fingerprint,
            "turns": self.turns,
            "class_mix": self.class_mix,
            "confidence": self.confidence,
            "features": [f.to_dict() for f in self.features],
            "sample": self.sample.to_dict(),
        }
        if self.components:
            counts = np.array([np.concatenate(c.counts) for c in self.components])
            document["components"] = {
                "names": [c.name for c in self.components],
                "turns": [c.turns for c in self.components],
                "counts": _pack(counts.astype("<i4")),  # (components, codes of every feature)
            }
        return document

    @classmethod
    def from_dict(cls, document: Mapping[str, Any]) -> Profile:
        kind = document.get("profile_format")
        if kind not in (PROFILE_FORMAT, MIXTURE_PROFILE_FORMAT):
            raise ValueError(f"not an {PROFILE_FORMAT} or {MIXTURE_PROFILE_FORMAT} document")
        features = tuple(FeatureProfile.from_dict(e) for e in document["features"])
        sample = BinnedSample.from_dict(document["sample"])
        if sample.codes.shape[1] != len(features):
            raise ValueError("the sample's features do not match the profiled features")
        components: tuple[Component, ...] = ()
        if kind == MIXTURE_PROFILE_FORMAT:
            components = _components_from_dict(document["components"], features)
            if sample.components is None or (
                len(sample) and sample.components.max() >= len(components)
            ):
                raise ValueError("the sample's components do not match the profile's")
        return cls(
            features=features,
            turns=int(document["turns"]),
            sample=sample,
            class_mix=dict(document.get("class_mix") or {}),
            confidence=document.get("confidence"),
            components=components,
        )

    def save(self, model_dir: Path | str) -> Path:
        path = Path(model_dir) / PROFILE_FILE
        path.write_text(self.document + "\n")
        return path


def _components_from_dict(
    entry: Mapping[str, Any], features: Sequence[FeatureProfile]
) -> tuple[Component, ...]:
    names, turns = list(entry["names"]), [int(t) for t in entry["turns"]]
    widths = [f.n_codes for f in features]
    counts = np.frombuffer(_unpack(entry["counts"]), dtype="<i4").astype(np.int64)
    if len(names) != len(turns) or counts.size != len(names) * sum(widths):
        raise ValueError("component sizes do not match the profiled features")
    rows = counts.reshape(len(names), sum(widths))
    bounds = np.cumsum([0, *widths])
    return tuple(
        Component(name, n, tuple(np.split(row, bounds[1:-1])))
        for name, n, row in zip(names, turns, rows, strict=True)
    )


def load_profile(model_dir: Path | str) -> Profile | None:
    """The bundle's training profile, or None for a bundle made before profiles existed."""
    path = Path(model_dir) / PROFILE_FILE
    if not path.is_file():
        return None
    try:
        return Profile.from_dict(json.loads(path.read_text()))
    except (ValueError, KeyError, TypeError, zlib.error) as exc:
        raise ModelError(f"{path}: unreadable training profile ({exc})") from None


def _numeric_profile(name: str, stage: str, column: pl.Series) -> FeatureProfile:
    values = column.cast(pl.Float64).fill_nan(None).drop_nulls().to_numpy()
    if len(values):
        edges = tuple(
            float(e) for e in np.unique(np.quantile(values, np.linspace(0, 1, NUMERIC_BINS + 1)))
        )
        quantiles = tuple(float(q) for q in np.quantile(values, QUANTILES))
    else:
        edges, quantiles = (), (None,) * len(QUANTILES)
    empty = FeatureProfile(name, stage, False, edges, (), np.zeros(0, dtype=np.int64), quantiles)
    counts = np.bincount(empty.codes(column), minlength=empty.n_codes).astype(np.int64)
    return FeatureProfile(name, stage, False, edges, (), counts, quantiles)


def _categorical_profile(name: str, stage: str, column: pl.Series) -> FeatureProfile:
    frequent = (
        column.cast(pl.String)
        .drop_nulls()
        .value_counts(sort=True)
        .sort(["count", column.name], descending=[True, False])
        .head(MAX_CATEGORIES)
        .get_column(column.name)
        .to_list()
    )
    empty = FeatureProfile(name, stage, True, (), tuple(frequent), np.zeros(0, dtype=np.int64))
    counts = np.bincount(empty.codes(column), minlength=empty.n_codes).astype(np.int64)
    return FeatureProfile(name, stage, True, (), tuple(frequent), counts)


def confidence_summary(confidence: np.ndarray) -> dict[str, Any]:
    """The distribution of top-class confidences: histogram on [0, 1], quantiles, and the
    share at or above 0.99."""
    confidence = np.asarray(confidence, dtype=np.float64)
    counts, _ = np.histogram(confidence, bins=CONFIDENCE_BINS, range=(0.0, 1.0))
    return {
        "turns": len(confidence),
        "bins": CONFIDENCE_BINS,
        "counts": counts.tolist(),
        "quantiles": dict(
            zip(map(str, QUANTILES), np.quantile(confidence, QUANTILES).tolist(), strict=True)
        )
        if len(confidence)
        else {},
        "share_at_least_0.99": float((confidence >= 0.99).mean()) if len(confidence) else None,
    }


def build_profile(
    features: pl.DataFrame,
    *,
    labels: Sequence[str] | pl.Series | None = None,
    confidence: np.ndarray | None = None,
    dialogue_ids: pl.Series | Sequence[str] | None = None,
    components: pl.Series | Sequence[str] | None = None,
    sample_turns: int | None = None,
    seed: int = 0,
) -> Profile:
    """The profile of the turns in `features` (an `extract_features` frame: one row per turn,
    catalogue features by name; other columns are ignored).

    `labels` (failure points of the same turns) gives the class mix; `confidence` (the model's
    top-class probability on validation turns) its confidence distribution; `dialogue_ids`
    (one per row) groups the stored sample's turns by dialogue; `components` (one name per
    row: the pipeline a turn came from) profiles each component too. At most `sample_turns`
    turns (`SAMPLE_TURNS`, or `MIXTURE_SAMPLE_TURNS` with several components, stratified by
    component), drawn at random with `seed`, are stored as codes.
    """
    profiled = []
    for feature in CATALOG:
        if feature.name not in features.columns:
            continue
        column = features.get_column(feature.name)
        make = _categorical_profile if feature.categorical else _numeric_profile
        profiled.append(make(feature.name, feature.stage, column))
    if not profiled:
        raise ModelError("no catalogue feature in the frame: nothing to profile")
    groups = _group_codes(dialogue_ids, len(features))
    rng = np.random.default_rng(seed)
    partial = Profile(tuple(profiled), len(features), BinnedSample(np.empty((0, 0)), groups), {})
    names, index = _component_index(components, len(features))
    if names:
        total = MIXTURE_SAMPLE_TURNS if sample_turns is None else sample_turns
        rows = _stratified_rows(index, len(names), total, rng)
    else:
        total = SAMPLE_TURNS if sample_turns is None else sample_turns
        rows = np.sort(rng.permutation(len(features))[:total])
    sample = partial.bin(features[rows])
    stored = BinnedSample(sample.codes, groups[rows], index[rows] if names else None)
    profile_components: tuple[Component, ...] = ()
    if names:
        whole = partial.bin(features).codes
        widths = [f.n_codes for f in profiled]
        profile_components = tuple(
            Component(
                name,
                int((index == k).sum()),
                tuple(
                    np.bincount(column, minlength=n).astype(np.int64)
                    for column, n in zip(whole[index == k].T, widths, strict=True)
                ),
            )
            for k, name in enumerate(names)
        )
    class_mix = {}
    if labels is not None:
        label_series = pl.Series(labels, dtype=pl.String).drop_nulls()
        class_mix = dict(sorted(label_series.value_counts().iter_rows()))
    return Profile(
        features=tuple(profiled),
        turns=len(features),
        sample=stored,
        class_mix=class_mix,
        confidence=confidence_summary(confidence) if confidence is not None else None,
        components=profile_components,
    )


def _component_index(
    components: pl.Series | Sequence[str] | None, n: int
) -> tuple[list[str], np.ndarray]:
    """Component names (sorted) and every row's index into them; no names for one component."""
    if components is None:
        return [], np.zeros(n, dtype=np.int64)
    series = pl.Series(components, dtype=pl.String)
    if len(series) != n:
        raise ValueError(f"{len(series)} component names for {n} turns")
    if series.null_count():
        raise ValueError("a turn without a component name")
    names = sorted(series.unique().to_list())
    if len(names) < 2:
        return [], np.zeros(n, dtype=np.int64)
    index = series.replace_strict({name: i for i, name in enumerate(names)}, return_dtype=pl.Int64)
    return names, index.to_numpy()


def _stratified_rows(
    index: np.ndarray, n_components: int, total: int, rng: np.random.Generator
) -> np.ndarray:
    """About `total` rows, each component's share in proportion to its turns but at least
    `COMPONENT_SAMPLE_TURNS` (or all it has), drawn at random within the component."""
    sizes = np.bincount(index, minlength=n_components)
    wanted = np.maximum(np.round(total * sizes / max(sizes.sum(), 1)), COMPONENT_SAMPLE_TURNS)
    rows = [
        rng.permutation(np.flatnonzero(index == k))[: int(min(wanted[k], sizes[k]))]
        for k in range(n_components)
    ]
    return np.sort(np.concatenate(rows))
