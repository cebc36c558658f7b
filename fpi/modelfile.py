"""LightGBM's text model format, read and checked by our own code before anything else sees it.

LightGBM's loader trusts its input: a split feature beyond the row, a child index out of
range, `tree_sizes` that do not match the text or a category bitset past its end make it read
out of bounds (wrong probabilities or a crashed process), and the compiled kernels of
`fpi.fastshap` trust the arrays just as much. `parse_model_text` reads the whole format in
plain Python and refuses, with a `ModelError` naming the source and the fault, any text whose
structure is not a forest LightGBM could have written:

- the header has every key LightGBM needs, each once, with well-formed values, and the trees
  are numbered 0, 1, ... with `tree_sizes` equal to the length of each tree's text;
- every array of a tree has the length its `num_leaves` implies; split features lie in
  0..max_feature_idx; the children of the splits form one tree reaching every split and every
  leaf exactly once; the data counts of two children add up to their parent's;
- decision types are known, categorical thresholds index `cat_boundaries`, which rise from 0
  to the length of `cat_threshold`; leaf values are finite and thresholds not NaN;
- the sections after the trees have LightGBM's shapes; the text is ASCII and of bounded size.

What a bundle adds (six classes, the objective, features and categories matching the
metadata) is checked by `fpi.metadata.check_model_fits`.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import polars as pl

from fpi.errors import ModelError

#: A model.txt larger than this is refused before it is read (the bundled one is ~3 MB).
MAX_MODEL_BYTES = 256 * 2**20
MODEL_VERSIONS = ("v2", "v3", "v4")
_HEADER_KEYS = {
    "version",
    "num_class",
    "num_tree_per_iteration",
    "label_index",
    "max_feature_idx",
    "objective",
    "feature_names",
    "feature_infos",
    "tree_sizes",
    "monotone_constraints",
}
_HEADER_REQUIRED = _HEADER_KEYS - {"monotone_constraints"}
_HEADER_FLAGS = {"average_output"}
_SPLIT_KEYS = (
    "split_feature",
    "split_gain",
    "threshold",
    "decision_type",
    "left_child",
    "right_child",
    "internal_value",
    "internal_weight",
    "internal_count",
)
_LEAF_KEYS = ("leaf_value", "leaf_weight", "leaf_count")
_TREE_REQUIRED = {"num_leaves", "num_cat", *_SPLIT_KEYS, *_LEAF_KEYS, "is_linear", "shrinkage"}
_TREE_KEYS = _TREE_REQUIRED | {"cat_boundaries", "cat_threshold"}
#: Values as LightGBM writes them (one space apart), so that our reading is LightGBM's:
#: integers of at most 18 digits, and decimal numbers, inf or nan.
_INTEGERS = re.compile(r"(-?\d{1,18}( -?\d{1,18})*)?")
_NUMBER = r"(-?(\d+\.?\d*|\.\d+)([eE][-+]?\d{1,3})?|-?inf|nan)"
_NUMBERS = re.compile(f"({_NUMBER}( {_NUMBER})*)?")
#: The objective names LightGBM's loader knows (any other makes it refuse the text).
_OBJECTIVES = frozenset(
    {
        "regression",
        "regression_l1",
        "huber",
        "fair",
        "poisson",
        "quantile",
        "mape",
        "gamma",
        "tweedie",
        "binary",
        "multiclass",
        "multiclassova",
        "cross_entropy",
        "cross_entropy_lambda",
        "lambdarank",
        "rank_xendcg",
        "custom",
    }
)
_OPTION = re.compile(r"[a-z_]+:[-+.0-9a-zA-Z_]+")
_MULTICLASS = ("multiclass", "multiclassova")
_CATEGORICAL = 1
_MISSING_TYPES = (0, 1, 2)  # None, Zero, NaN
_PANDAS_KEY = "pandas_categorical:"
_TRAILER_LINE = re.compile(
    r"(|feature_importances:|[^=\s]+=\d+|parameters:|\[[A-Za-z0-9_]+: [^\n]*\]"
    r"|end of parameters|pandas_categorical:.*)"
)


@dataclass(frozen=True)
class Tree:
    """One checked tree. Splits are numbered as LightGBM numbers them; a child >= 0 is a
    split, a child < 0 is the leaf ~child."""

    num_leaves: int
    split_feature: np.ndarray  # int64, per split
    threshold: np.ndarray  # float64; a categorical split's index into cat_boundaries
    decision_type: np.ndarray  # int64: 1 categorical, 2 default left, bits 2-3 missing type
    left_child: np.ndarray  # int64
    right_child: np.ndarray  # int64
    internal_count: np.ndarray  # float64, data count per split
    leaf_value: np.ndarray  # float64
    leaf_count: np.ndarray  # float64, data count per leaf
    cat_boundaries: np.ndarray  # int64, num_cat + 1 word offsets
    cat_threshold: np.ndarray  # uint32 bitset words: the categories that go left


#: The arrays of a tree: name, dtype, whether it has one value per split (else per leaf).
_ARRAYS = (
    ("split_feature", np.int64, True),
    ("split_gain", np.float64, True),
    ("threshold", np.float64, True),
    ("decision_type", np.int64, True),
    ("left_child", np.int64, True),
    ("right_child", np.int64, True),
    ("internal_value", np.float64, True),
    ("internal_weight", np.float64, True),
    ("internal_count", np.float64, True),
    ("leaf_value", np.float64, False),
    ("leaf_weight", np.float64, False),
    ("leaf_count", np.float64, False),
)


@dataclass(frozen=True)
class ModelText:
    """A checked LightGBM text model: its header and its trees' arrays end to end.

    Tree t's splits are `split_*[split_start[t]:split_start[t + 1]]` (likewise leaves with
    `leaf_start`, bitsets with `cat_start` into `cat_boundaries`, whose offsets count from
    `word_start[t]` in `cat_threshold`); `trees` gives them one `Tree` each.
    """

    header: dict[str, str]
    flags: frozenset[str]
    split_start: np.ndarray
    leaf_start: np.ndarray
    cat_start: np.ndarray
    word_start: np.ndarray
    split_feature: np.ndarray
    threshold: np.ndarray
    decision_type: np.ndarray
    left_child: np.ndarray
    right_child: np.ndarray
    internal_count: np.ndarray
    leaf_value: np.ndarray
    leaf_count: np.ndarray
    cat_boundaries: np.ndarray
    cat_threshold: np.ndarray

    @property
    def num_tree_per_iteration(self) -> int:
        return int(self.header["num_tree_per_iteration"])

    @property
    def num_class(self) -> int:
        return int(self.header["num_class"])

    @property
    def num_features(self) -> int:
        return int(self.header["max_feature_idx"]) + 1

    @property
    def feature_names(self) -> list[str]:
        return self.header["feature_names"].split()

    @property
    def objective(self) -> str:
        """The objective's name, e.g. `multiclass` (options such as num_class:6 stripped)."""
        return self.header["objective"].split()[0]

    @property
    def feature_infos(self) -> list[str]:
        return self.header["feature_infos"].split()

    @property
    def split_tree(self) -> np.ndarray:
        """The tree of each split."""
        return np.repeat(np.arange(len(self.split_start) - 1), np.diff(self.split_start))

    @property
    def trees(self) -> tuple[Tree, ...]:
        s, leaf, c, w = self.split_start, self.leaf_start, self.cat_start, self.word_start
        return tuple(
            Tree(
                num_leaves=int(leaf[t + 1] - leaf[t]),
                split_feature=self.split_feature[s[t] : s[t + 1]],
                threshold=self.threshold[s[t] : s[t + 1]],
                decision_type=self.decision_type[s[t] : s[t + 1]],
                left_child=self.left_child[s[t] : s[t + 1]],
                right_child=self.right_child[s[t] : s[t + 1]],
                internal_count=self.internal_count[s[t] : s[t + 1]],
                leaf_value=self.leaf_value[leaf[t] : leaf[t + 1]],
                leaf_count=self.leaf_count[leaf[t] : leaf[t + 1]],
                cat_boundaries=self.cat_boundaries[c[t] : c[t + 1]],
                cat_threshold=self.cat_threshold[w[t] : w[t + 1]],
            )
            for t in range(len(s) - 1)
        )


def read_model_file(path: Path | str) -> tuple[str, ModelText]:
    """The text of `path` and its checked parse; `ModelError` for anything else."""
    path = Path(path)
    try:
        size = path.stat().st_size
        if size > MAX_MODEL_BYTES:
            raise ModelError(
                f"{path}: {size:,} bytes, more than a model may have ({MAX_MODEL_BYTES:,})"
            )
        data = path.read_bytes()
    except OSError as exc:
        raise ModelError(f"{path}: cannot read the model ({exc.strerror or exc})") from None
    try:
        text = data.decode("ascii")
    except UnicodeDecodeError:
        raise ModelError(
            f"{path}: not a LightGBM text model (binary data, e.g. a pickle, at byte "
            f"{_first_non_ascii(data)})"
        ) from None
    return text, parse_model_text(text, str(path))


def _first_non_ascii(data: bytes) -> int:
    return next(i for i, byte in enumerate(data) if byte > 127)


def parse_model_text(text: str, source: str = "model") -> ModelText:
    """Parse and check LightGBM's text format (see the module docstring for what is checked)."""
    if len(text) > MAX_MODEL_BYTES:
        raise ModelError(f"{source}: more than {MAX_MODEL_BYTES:,} characters")
    if not text.isascii():
        raise ModelError(f"{source}: not a LightGBM text model (non-ASCII text)")
    first_tree = text.find("\nTree=")
    end_of_trees = text.find("\nend of trees\n", max(first_tree, 0))
    if not text.startswith("tree\n") or first_tree < 0 or end_of_trees < 0:
        raise ModelError(
            f"{source}: not a LightGBM text model (truncated, or not starting with 'tree' and "
            "ending its trees with 'end of trees')"
        )
    header, flags = _header(text[: first_tree + 1], source)
    model = _trees(text[first_tree + 1 : end_of_trees + 1], header, flags, source)
    _check_trailer(text[end_of_trees + len("\nend of trees\n") :], source)
    return model


def _header(text: str, source: str) -> tuple[dict[str, str], set[str]]:
    header: dict[str, str] = {}
    flags: set[str] = set()
    for number, line in enumerate(text.splitlines()[1:], start=2):
        if not line:
            continue
        key, sep, value = line.partition("=")
        if not sep:
            if line not in _HEADER_FLAGS:
                raise ModelError(f"{source}: line {number}: unknown header line {line[:60]!r}")
            flags.add(line)
        elif key not in _HEADER_KEYS:
            raise ModelError(f"{source}: line {number}: unknown header key {key[:60]!r}")
        elif key in header:
            raise ModelError(f"{source}: line {number}: header key {key!r} given twice")
        else:
            header[key] = value
    missing = sorted(_HEADER_REQUIRED - set(header))
    if missing:
        raise ModelError(f"{source}: the header lacks {', '.join(missing)}")
    if header["version"] not in MODEL_VERSIONS:
        raise ModelError(f"{source}: unknown model version {header['version'][:20]!r}")
    for key in ("num_class", "num_tree_per_iteration", "max_feature_idx"):
        value = _integer(header[key], f"{source}: header {key}")
        if not 0 <= value < 2**31 or (value == 0 and key != "max_feature_idx"):
            raise ModelError(f"{source}: header {key}={value} is out of range")
    if header["num_tree_per_iteration"] != header["num_class"]:
        raise ModelError(
            f"{source}: num_tree_per_iteration={header['num_tree_per_iteration']} differs "
            f"from num_class={header['num_class']} (one tree per class per iteration)"
        )
    _integer(header["label_index"], f"{source}: header label_index")
    num_features = int(header["max_feature_idx"]) + 1
    for key in ("feature_names", "feature_infos", "monotone_constraints"):
        if key in header and len(header[key].split()) != num_features:
            raise ModelError(
                f"{source}: header {key} has {len(header[key].split())} entries for "
                f"{num_features} features (max_feature_idx={num_features - 1})"
            )
    if "monotone_constraints" in header and not set(header["monotone_constraints"].split()) <= {
        "-1",
        "0",
        "1",
    }:
        raise ModelError(f"{source}: header monotone_constraints must be -1, 0 or 1 each")
    objective, *options = header["objective"].split() or [""]
    if objective not in _OBJECTIVES or not all(_OPTION.fullmatch(o) for o in options):
        raise ModelError(f"{source}: header objective {header['objective'][:40]!r} is malformed")
    if objective in _MULTICLASS and f"num_class:{header['num_class']}" not in options:
        raise ModelError(
            f"{source}: header objective {header['objective'][:40]!r} does not say "
            f"num_class:{header['num_class']}"
        )
    return header, flags


def _trees(text: str, header: dict[str, str], flags: set[str], source: str) -> ModelText:
    """The trees, cut where `tree_sizes` says (as LightGBM cuts them), checked all at once."""
    sizes = _array(header["tree_sizes"], np.int64, f"{source}: header tree_sizes")
    if (sizes <= 0).any() or int(sizes.sum()) != len(text):
        raise ModelError(
            f"{source}: header tree_sizes add up to {int(sizes.sum()):,} characters, "
            f"the trees take {len(text):,}"
        )
    if len(sizes) % int(header["num_tree_per_iteration"]):
        raise ModelError(
            f"{source}: {len(sizes)} trees is not a whole number of iterations of "
            f"{header['num_tree_per_iteration']} trees (one per class)"
        )
    blocks, start = [], 0
    for index, size in enumerate(sizes.tolist()):
        block = text[start : start + size]
        start += size
        title = f"Tree={index}\n"
        if not block.startswith(title):
            raise ModelError(
                f"{source}: tree {index} does not start where tree_sizes says "
                f"(found {block[:20]!r}, expected {title.strip()!r})"
            )
        blocks.append(block[len(title) :])
    fields = [_tree_fields(block, f"{source}: tree {t}") for t, block in enumerate(blocks)]
    num_leaves = _scalars(fields, "num_leaves", source)
    num_cat = _scalars(fields, "num_cat", source)
    for t in np.flatnonzero((num_leaves < 1) | (num_cat < 0))[:1].tolist():
        raise ModelError(f"{source}: tree {t}: num_leaves and num_cat out of range")
    for t, tree in enumerate(fields):
        shrinkage = _array(tree["shrinkage"], np.float64, f"{source}: tree {t}: shrinkage")
        if len(shrinkage) != 1 or not np.isfinite(shrinkage).all():
            raise ModelError(f"{source}: tree {t}: shrinkage must be one finite number")
    arrays = {}
    for key, dtype, per_split in _ARRAYS:
        expected = num_leaves - 1 if per_split else num_leaves
        arrays[key] = _concatenated(fields, key, dtype, expected, source)
    forest = _forest(header, flags, fields, num_leaves, num_cat, arrays, source)
    _check_splits(forest, source)
    _check_categories(forest, num_cat, source)
    return forest


def _tree_fields(text: str, where: str) -> dict[str, str]:
    fields: dict[str, str] = {}
    for line in text.splitlines():
        if not line:
            continue
        key, sep, value = line.partition("=")
        if not sep:
            raise ModelError(f"{where}: unknown line {line[:60]!r}")
        if key in fields:
            raise ModelError(f"{where}: {key} given twice")
        fields[key] = value
    if fields.get("is_linear", "0") != "0":
        raise ModelError(f"{where}: linear trees (linear_tree=True) are not supported")
    unknown = sorted(set(fields) - _TREE_KEYS)
    if unknown:
        raise ModelError(f"{where}: unknown key {unknown[0][:60]!r}")
    missing = sorted(_TREE_REQUIRED - set(fields))
    if missing:
        raise ModelError(f"{where}: lacks {', '.join(missing)}")
    return fields


def _scalars(fields: list[dict[str, str]], key: str, source: str) -> np.ndarray:
    return np.array(
        [_integer(tree[key], f"{source}: tree {t}: {key}") for t, tree in enumerate(fields)],
        dtype=np.int64,
    )


def _concatenated(
    fields: list[dict[str, str]], key: str, dtype: type, expected: np.ndarray, source: str
) -> np.ndarray:
    """One array of every tree's `key` values, each tree's count checked against `expected`
    (a single leaf may omit its weight, as LightGBM writes it). Read with polars, whose
    number parsing is correctly rounded like LightGBM's, after the syntax check."""
    values = pl.Series([tree.get(key, "") for tree in fields], dtype=pl.String)
    integers = dtype is np.int64
    syntax = _INTEGERS if integers else _NUMBERS
    bad = ~values.str.contains(f"^{syntax.pattern}$")
    if bad.any():
        kind = "integers" if integers else "numbers"
        raise ModelError(f"{source}: tree {bad.arg_true()[0]}: {key} is not a list of {kind}")
    spaces = values.str.count_matches(" ").to_numpy().astype(np.int64)
    lengths = np.where((values != "").to_numpy(), spaces + 1, 0)
    wrong = lengths != expected
    if key == "leaf_weight":
        wrong &= ~((expected == 1) & (lengths == 0))
    for t in np.flatnonzero(wrong)[:1].tolist():
        raise ModelError(
            f"{source}: tree {t}: {key} has {lengths[t]} values, "
            f"num_leaves={int(fields[t]['num_leaves'])} needs {expected[t]}"
        )
    tokens = values.filter(values != "").str.split(" ").explode()
    return tokens.cast(pl.Int64 if integers else pl.Float64).to_numpy().astype(dtype, copy=False)


def _offsets(counts: np.ndarray) -> np.ndarray:
    return np.concatenate([[0], np.cumsum(counts)]).astype(np.int64)


def _forest(header, flags, fields, num_leaves, num_cat, arrays, source) -> ModelText:
    boundaries = []
    words = []
    for t, tree in enumerate(fields):
        if num_cat[t] == 0:
            if "cat_boundaries" in tree or "cat_threshold" in tree:
                raise ModelError(f"{source}: tree {t}: category bitsets without categorical splits")
            continue
        if "cat_boundaries" not in tree or "cat_threshold" not in tree:
            raise ModelError(
                f"{source}: tree {t}: num_cat={num_cat[t]} without cat_boundaries and cat_threshold"
            )
        boundaries.append(
            _array(tree["cat_boundaries"], np.int64, f"{source}: tree {t}: cat_boundaries")
        )
        words.append(_array(tree["cat_threshold"], np.int64, f"{source}: tree {t}: cat_threshold"))
    has_cats = num_cat > 0
    cat_counts = np.zeros(len(fields), dtype=np.int64)
    word_counts = np.zeros(len(fields), dtype=np.int64)
    cat_counts[has_cats] = [len(b) for b in boundaries]
    word_counts[has_cats] = [len(w) for w in words]
    all_words = np.concatenate(words) if words else np.zeros(0, dtype=np.int64)
    if ((all_words < 0) | (all_words >= 2**32)).any():
        raise ModelError(f"{source}: a cat_threshold word is not a 32-bit bitset")
    return ModelText(
        header=header,
        flags=frozenset(flags),
        split_start=_offsets(num_leaves - 1),
        leaf_start=_offsets(num_leaves),
        cat_start=_offsets(cat_counts),
        word_start=_offsets(word_counts),
        split_feature=arrays["split_feature"],
        threshold=arrays["threshold"],
        decision_type=arrays["decision_type"],
        left_child=arrays["left_child"],
        right_child=arrays["right_child"],
        internal_count=arrays["internal_count"],
        leaf_value=arrays["leaf_value"],
        leaf_count=arrays["leaf_count"],
        cat_boundaries=np.concatenate(boundaries) if boundaries else np.zeros(0, dtype=np.int64),
        cat_threshold=all_words.astype(np.uint32),
    )


def _first_tree(starts: np.ndarray, bad: np.ndarray) -> int:
    """The tree holding the first flagged element (of arrays laid out by `starts`)."""
    return int(np.searchsorted(starts, np.flatnonzero(bad)[0], side="right") - 1)


def _check_splits(forest: ModelText, source: str) -> None:
    """Features, values and decision types in range; children forming one tree per tree;
    data counts adding up."""
    f = forest
    split_tree = f.split_tree
    feature, decision = f.split_feature, f.decision_type
    bad = (feature < 0) | (feature >= f.num_features)
    if bad.any():
        raise ModelError(
            f"{source}: tree {_first_tree(f.split_start, bad)}: split_feature "
            f"{int(feature[bad][0])} is outside the model's {f.num_features} features"
        )
    bad = ~np.isfinite(f.leaf_value)
    if bad.any():
        raise ModelError(
            f"{source}: tree {_first_tree(f.leaf_start, bad)}: a leaf value is not finite"
        )
    bad = np.isnan(f.threshold)
    if bad.any():
        raise ModelError(f"{source}: tree {_first_tree(f.split_start, bad)}: a threshold is NaN")
    bad = (decision < 0) | (decision > 15) | ~np.isin((decision >> 2) & 3, _MISSING_TYPES)
    if bad.any():
        raise ModelError(
            f"{source}: tree {_first_tree(f.split_start, bad)}: unknown decision_type "
            f"{int(decision[bad][0])} (0..15, missing type 0..2)"
        )
    # The children: LightGBM numbers a split after its parent, so a tree is exactly this:
    # every child split has a higher index than its parent and every split but the root and
    # every leaf is a child once (2 (L - 1) child slots for L - 2 splits and L leaves).
    num_leaves = np.diff(f.leaf_start)[split_tree]
    local = np.arange(len(split_tree)) - f.split_start[split_tree]
    for side, child in (("left_child", f.left_child), ("right_child", f.right_child)):
        bad = (child < -num_leaves) | ((child >= 0) & (child <= local)) | (child >= num_leaves - 1)
        if bad.any():
            t = _first_tree(f.split_start, bad)
            raise ModelError(
                f"{source}: tree {t}: {side} {int(child[bad][0])} is out of range for "
                f"{int(num_leaves[bad][0])} leaves (a split's child split has a higher index, "
                f"leaves are -1..-{int(num_leaves[bad][0])})"
            )
    children = np.concatenate([f.left_child, f.right_child])
    trees = np.concatenate([split_tree, split_tree])
    node = np.where(
        children >= 0,
        f.split_start[trees] + children,
        len(split_tree) + f.leaf_start[trees] + ~np.minimum(children, -1),
    )
    times = np.bincount(node, minlength=len(split_tree) + len(f.leaf_value))
    if (times > 1).any():
        t = int(trees[np.flatnonzero(times[node] > 1)[0]])
        raise ModelError(f"{source}: tree {t}: a split or leaf is the child of two splits")
    if (f.internal_count <= 0).any() or (f.leaf_count < 0).any():
        raise ModelError(f"{source}: a data count is negative (or zero at a split)")
    counts = np.concatenate([f.internal_count, f.leaf_count])[node]
    total = counts[: len(split_tree)] + counts[len(split_tree) :]
    bad = total != f.internal_count
    if bad.any():
        raise ModelError(
            f"{source}: tree {_first_tree(f.split_start, bad)}: internal_count is not the sum "
            "of its children's counts"
        )


def _check_categories(forest: ModelText, num_cat: np.ndarray, source: str) -> None:
    """Per tree: as many bitsets as categorical splits, each split its own; cat_boundaries
    rising from 0 to the tree's number of words."""
    f = forest
    categorical = (f.decision_type & _CATEGORICAL) != 0
    split_tree = f.split_tree
    per_tree = np.bincount(split_tree[categorical], minlength=len(num_cat))
    bad = per_tree != num_cat
    if bad.any():
        t = int(np.flatnonzero(bad)[0])
        raise ModelError(
            f"{source}: tree {t}: num_cat={num_cat[t]}, but {per_tree[t]} categorical splits"
        )
    bounds_per_tree = np.diff(f.cat_start)
    words_per_tree = np.diff(f.word_start)
    has = num_cat > 0
    first, last = f.cat_start[:-1], f.cat_start[1:] - 1
    flagged = has & (bounds_per_tree != num_cat + 1)
    if not flagged.any():
        rising = np.ones(len(f.cat_boundaries), dtype=bool)
        rising[1:] = np.diff(f.cat_boundaries) > 0
        rising[first[has]] = True  # a tree's first offset follows another tree's last
        flagged[has] = (f.cat_boundaries[first[has]] != 0) | (
            f.cat_boundaries[last[has]] != words_per_tree[has]
        )
        bounds_tree = np.repeat(np.arange(len(num_cat)), bounds_per_tree)
        flagged[bounds_tree[~rising]] = True
    if flagged.any():
        t = int(np.flatnonzero(flagged)[0])
        raise ModelError(
            f"{source}: tree {t}: cat_boundaries must rise from 0 to the {words_per_tree[t]} "
            f"words of cat_threshold in {num_cat[t] + 1} steps"
        )
    index = f.threshold[categorical]
    trees = split_tree[categorical]
    bad = (index != np.floor(index)) | (index < 0) | (index >= num_cat[trees])
    if bad.any():
        raise ModelError(
            f"{source}: tree {int(trees[bad][0])}: a categorical threshold does not index "
            "cat_boundaries"
        )
    bitset = _offsets(num_cat)[trees] + index.astype(np.int64)  # global bitset number
    if len(np.unique(bitset)) != len(bitset):
        raise ModelError(f"{source}: two categorical splits of one tree share a bitset")


def _check_trailer(text: str, source: str) -> None:
    """LightGBM's sections after the trees; the Python package decodes the last line's
    `pandas_categorical:` as JSON, so it must be JSON."""
    for line in text.splitlines():
        if not _TRAILER_LINE.fullmatch(line):
            raise ModelError(f"{source}: unexpected line after the trees: {line[:60]!r}")
        if line.startswith(_PANDAS_KEY):
            try:
                json.loads(line[len(_PANDAS_KEY) :])
            except (ValueError, RecursionError):
                raise ModelError(f"{source}: {_PANDAS_KEY} is not JSON") from None


def _integer(value: str, where: str) -> int:
    try:
        return int(value)
    except ValueError:
        raise ModelError(f"{where}: {value[:30]!r} is not an integer") from None


def _array(value: str, dtype: type, where: str) -> np.ndarray:
    if not (_INTEGERS if dtype is np.int64 else _NUMBERS).fullmatch(value):
        kind = "integers" if dtype is np.int64 else "numbers"
        raise ModelError(f"{where}: not a list of {kind}")
    return np.fromstring(value, dtype=dtype, sep=" ") if value else np.zeros(0, dtype)
