r"""Exact path-dependent TreeSHAP for LightGBM models, one class per row, compiled with numba.

The values equal the asked class's block of LightGBM's ``predict(pred_contrib=True)`` (the
same path-dependent TreeSHAP, cover = data counts) but cost a fraction of it:

- only the trees of the asked class are walked (1/6 of the work for a 6-class model);
- each leaf is explained on its own (as in GPUTreeShap and Fast TreeSHAP v2). For a leaf with
  value v whose root path tests the distinct features P (d of them; a feature tested twice is
  merged, its zero fraction z_j the product of child/parent data counts), a row satisfies the
  conditions of a subset H ("hot") and fails those of P \ H ("cold"). With
  K(T) = sum over S subset of T of |S|!(d-|S|-1)!/d! * prod_{j in T \ S} z_j and
  M(T) = v * K(T) * prod_{j in P \ T} z_j, the leaf adds -M(H) to every cold feature and
  (1 - z_i) / z_i * M(H \ {i}) to each hot feature i. M is tabulated per leaf for all 2^d
  subsets when d <= ``precompute_depth``; deeper leaves compute K per row in O(d^2) from the
  elementary symmetric polynomials of the hot z's;
- identical rows (same bytes, same class) are explained once.

Decisions replicate LightGBM's ``NumericalDecision`` / ``CategoricalDecision`` on float64
input: NaN is read as 0 unless the split's missing type is NaN, zero-as-missing uses
|x| <= 1e-35f, categories are truncated to int and NaN, negative (<= -1), out-of-int-range and
unseen categories go right.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any, NamedTuple

import numba
import numpy as np
from numba import njit, prange

from fpi.errors import ModelError
from fpi.modelfile import ModelText, Tree, parse_model_text

#: Leaves with at most this many distinct path features get a 2^d weight table by default.
DEFAULT_PRECOMPUTE_DEPTH = 10
#: Rows explained per call of the compiled kernel (bounds the memory of ``explain_top``).
DEFAULT_CHUNK_ROWS = 32_768
_MAX_PATH_FEATURES = 62
_MAX_PRECOMPUTE_DEPTH = 16
_ROW_BLOCK = 256

_CATEGORICAL = 1
_DEFAULT_LEFT = 2
_MISSING_ZERO = 1
_MISSING_NAN = 2
_ZERO_THRESHOLD = float(np.float32(1e-35))


class _Forest(NamedTuple):
    """The trees as flat arrays; the trees of class c are ``class_tree_start[c]:[c + 1]``.

    Per tree, internal nodes are numbered by LightGBM's split index (children: >= 0 internal,
    < 0 ~leaf index) and all nodes get a position (see ``_tree_paths``); edge k of a tree leads
    to position k + 1 and fails for a row that the parent's split sends the other way, turning
    that feature's element of every leaf below cold.
    """

    class_tree_start: np.ndarray
    tree_node_start: np.ndarray
    tree_edge_start: np.ndarray
    tree_leaf_start: np.ndarray
    node_feature: np.ndarray
    node_threshold: np.ndarray
    node_flags: np.ndarray  # LightGBM's decision_type: 1 categorical, 2 default left, 12 missing
    node_left: np.ndarray
    node_right: np.ndarray
    node_cat_start: np.ndarray
    node_cat_len: np.ndarray
    cat_words: np.ndarray  # LightGBM's bitsets of the categories that go left
    edge_parent: np.ndarray
    edge_node: np.ndarray
    edge_left: np.ndarray
    edge_elem: np.ndarray
    leaf_value: np.ndarray
    leaf_position: np.ndarray
    leaf_elem_start: np.ndarray  # a leaf's distinct path features: its elements
    leaf_table_start: np.ndarray  # -1: no table
    elem_feature: np.ndarray
    elem_zero: np.ndarray
    elem_ratio: np.ndarray  # (1 - z) / z
    table: np.ndarray
    weights: np.ndarray


class FastExplainer:
    """SHAP values of a LightGBM booster toward one class per row, equal to ``pred_contrib``.

    ``booster`` is a LightGBM Booster or a model already read by `fpi.modelfile` (all its
    trees are used); either way the trees pass `fpi.modelfile`'s checks before any compiled
    kernel reads them. ``num_iteration`` follows ``Booster.predict``: None uses the best
    iteration if one is set, else all. ``precompute_depth`` trades memory (2^d floats per
    leaf) for speed; 0 disables the tables. Single-output boosters (binary, regression) have
    one class, 0. ``num_threads`` caps numba's workers during each call (None or <= 0:
    numba's default, one per core).
    """

    def __init__(
        self,
        booster: Any,
        *,
        num_iteration: int | None = None,
        precompute_depth: int = DEFAULT_PRECOMPUTE_DEPTH,
        num_threads: int | None = None,
    ) -> None:
        self.num_threads = num_threads if num_threads and num_threads > 0 else None
        if num_iteration is None and not isinstance(booster, ModelText):
            num_iteration = booster.best_iteration
        if not 0 <= precompute_depth <= _MAX_PRECOMPUTE_DEPTH:
            raise ValueError(
                f"precompute_depth must be in 0..{_MAX_PRECOMPUTE_DEPTH}, got {precompute_depth}"
            )
        model = (
            booster
            if isinstance(booster, ModelText)
            else parse_model_text(booster.model_to_string(num_iteration=num_iteration), "booster")
        )
        if "average_output" in model.flags:
            raise ModelError("random-forest boosters (average_output) are not supported")
        self.num_classes: int = model.num_tree_per_iteration
        self.num_features: int = model.num_features
        self.feature_names: list[str] = model.feature_names
        self._forest = _flatten(model.trees, self.num_classes, precompute_depth)
        #: Per class, the mean raw score over the training data (the bias column).
        self.expected_values: np.ndarray = _expected_values(model.trees, self.num_classes)

    @property
    def table_bytes(self) -> int:
        """Memory held by the precomputed leaf weight tables."""
        return self._forest.table.nbytes

    def raw_scores(self, X: np.ndarray) -> np.ndarray:
        """Raw scores (n_rows, n_classes), equal to ``booster.predict(X, raw_score=True)``."""
        X = self._check_rows(X)
        out = np.zeros((X.shape[0], self.num_classes))
        with numba_threads(self.num_threads):
            _raw_scores(X, self._forest, out)
        return out

    def shap_values(
        self,
        X: np.ndarray,
        classes: np.ndarray,
        *,
        dedupe: bool = True,
        chunk_rows: int = DEFAULT_CHUNK_ROWS,
    ) -> np.ndarray:
        """Contributions (n_rows, n_features + 1) toward the raw score of ``classes[i]``.

        Column j < n_features is feature j, the last column the expected value, as in the
        class's block of ``pred_contrib``; each row sums to that class's raw score.
        """
        X = self._check_rows(X)
        classes = self._check_classes(classes, X.shape[0])
        out = np.empty((X.shape[0], self.num_features + 1))
        with numba_threads(self.num_threads):
            for start in range(0, X.shape[0], chunk_rows):
                stop = start + chunk_rows
                out[start:stop] = self._explain_chunk(X[start:stop], classes[start:stop], dedupe)
        return out

    def explain_top(
        self,
        X: np.ndarray,
        classes: np.ndarray,
        k: int,
        *,
        dedupe: bool = True,
        chunk_rows: int = DEFAULT_CHUNK_ROWS,
    ) -> tuple[np.ndarray, np.ndarray]:
        """``top_contributions`` of ``shap_values`` in chunks: memory O(chunk_rows + n * k)."""
        X = self._check_rows(X)
        classes = self._check_classes(classes, X.shape[0])
        _check_k(k, self.num_features)
        indices = np.empty((X.shape[0], k), dtype=np.int32)
        contributions = np.empty((X.shape[0], k))
        with numba_threads(self.num_threads):
            for start in range(0, X.shape[0], chunk_rows):
                stop = start + chunk_rows
                values = self._explain_chunk(X[start:stop], classes[start:stop], dedupe)
                _top_k(values[:, :-1], indices[start:stop], contributions[start:stop])
        return indices, contributions

    def _explain_chunk(self, X: np.ndarray, classes: np.ndarray, dedupe: bool) -> np.ndarray:
        if dedupe:
            first, inverse = _unique_rows(X, classes)
            return self._explain(X[first], classes[first])[inverse]
        return self._explain(X, classes)

    def _explain(self, X: np.ndarray, classes: np.ndarray) -> np.ndarray:
        order = np.argsort(classes, kind="stable")
        sorted_classes = classes[order]
        starts = np.arange(0, X.shape[0], _ROW_BLOCK)
        class_starts = np.searchsorted(sorted_classes, np.arange(self.num_classes))
        block_start = np.unique(np.concatenate([starts, class_starts[class_starts < X.shape[0]]]))
        block_class = sorted_classes[block_start]
        block_start = np.append(block_start, X.shape[0])
        out = np.zeros((X.shape[0], self.num_features + 1))
        _shap_blocks(X, order, block_start, block_class, self._forest, out)
        out[:, -1] = self.expected_values[classes]
        return out

    def _check_rows(self, X: np.ndarray) -> np.ndarray:
        X = np.ascontiguousarray(X, dtype=np.float64)
        if X.ndim != 2 or X.shape[1] != self.num_features:
            raise ModelError(
                f"the model expects rows of {self.num_features} features, got shape {X.shape}"
            )
        return X

    def _check_classes(self, classes: np.ndarray, n_rows: int) -> np.ndarray:
        classes = np.asarray(classes)
        if classes.shape != (n_rows,) or (n_rows and classes.dtype.kind not in "iu"):
            raise ValueError(f"classes must be {n_rows} integers, got shape {classes.shape}")
        if n_rows and (classes.min() < 0 or classes.max() >= self.num_classes):
            raise ValueError(
                f"classes must be in 0..{self.num_classes - 1}"
                + (" (a single-output model has one class, 0)" if self.num_classes == 1 else "")
            )
        return classes.astype(np.int64)


@contextmanager
def numba_threads(count: int | None) -> Iterator[None]:
    """Run the block with at most `count` numba workers (None: leave the setting alone)."""
    if count is None:
        yield
        return
    previous = numba.get_num_threads()
    numba.set_num_threads(min(count, numba.config.NUMBA_NUM_THREADS))
    try:
        yield
    finally:
        numba.set_num_threads(previous)


def top_contributions(values: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """The k largest contributions per row, largest first; ties go to the lower index.

    ``values`` holds per-feature contributions (n_rows, n_features): ``shap_values(...)[:, :-1]``
    (without the bias column). Returns feature indices (int32) and contributions, each (n_rows, k).
    """
    values = np.asarray(values, dtype=np.float64)
    _check_k(k, values.shape[1])
    indices = np.empty((values.shape[0], k), dtype=np.int32)
    contributions = np.empty((values.shape[0], k))
    _top_k(values, indices, contributions)
    return indices, contributions


def _unique_rows(X: np.ndarray, classes: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Indices of the distinct (row bytes, class) pairs and, per row, which one it is.

    Rows are grouped by a 64-bit hash of their words, then each repeat is checked word for word
    against its representative; a collision (never seen in practice) falls back to sorting bytes.
    """
    words = X.view(np.uint64)
    multipliers = np.random.default_rng(0).integers(1, 2**63, X.shape[1] + 1, dtype=np.uint64) | 1
    keys = (words * multipliers[:-1]).sum(axis=1, dtype=np.uint64)
    keys += classes.astype(np.uint64) * multipliers[-1]
    _, first, inverse = np.unique(keys, return_index=True, return_inverse=True)
    representative = first[inverse]
    repeats = np.flatnonzero(representative != np.arange(len(X)))
    if np.array_equal(words[repeats], words[representative[repeats]]) and np.array_equal(
        classes[repeats], classes[representative[repeats]]
    ):
        return first, inverse
    keyed = np.column_stack([words, classes.astype(np.uint64)])
    rows = keyed.view(np.dtype((np.void, keyed.itemsize * keyed.shape[1]))).ravel()
    _, first, inverse = np.unique(rows, return_index=True, return_inverse=True)
    return first, inverse


def _check_k(k: int, num_features: int) -> None:
    if not 1 <= k <= num_features:
        raise ValueError(f"k must be in 1..{num_features}, got {k}")


# ---- reading the model ----------------------------------------------------------------


def _flatten(trees: Sequence[Tree], num_classes: int, precompute_depth: int) -> _Forest:
    by_class = sorted(range(len(trees)), key=lambda t: (t % num_classes, t))
    class_tree_start = np.searchsorted(
        [t % num_classes for t in by_class], np.arange(num_classes + 1)
    )
    node_arrays: dict[str, list[np.ndarray]] = {
        key: []
        for key in ("feature", "threshold", "flags", "left", "right", "cat_start", "cat_len")
    }
    cat_words: list[np.ndarray] = []
    num_words = 0
    edges: list[tuple] = []  # parent position, parent node, goes left, element of the parent
    leaf_value: list[np.ndarray] = []
    leaf_position: list[int] = []
    leaf_elem_start: list[int] = []
    elem_feature: list[int] = []
    elem_zero: list[float] = []
    tree_node_start, tree_edge_start, tree_leaf_start = [0], [0], [0]
    for t in by_class:
        tree = trees[t]
        feature, threshold, flags = tree.split_feature, tree.threshold, tree.decision_type
        left, right = tree.left_child, tree.right_child
        categorical = (flags & _CATEGORICAL) != 0
        cat_start = np.zeros(len(feature), dtype=np.int64)
        cat_len = np.zeros(len(feature), dtype=np.int64)
        if categorical.any():
            bounds = tree.cat_boundaries
            cat_index = threshold[categorical].astype(np.int64)
            cat_start[categorical] = num_words + bounds[cat_index]
            cat_len[categorical] = bounds[cat_index + 1] - bounds[cat_index]
            cat_words.append(tree.cat_threshold)
            num_words += len(tree.cat_threshold)
        for key, column in zip(
            node_arrays, (feature, threshold, flags, left, right, cat_start, cat_len), strict=True
        ):
            node_arrays[key].append(column)
        leaf_value.append(tree.leaf_value)
        tree_edges, tree_leaves = _tree_paths(
            feature.tolist(),
            left.tolist(),
            right.tolist(),
            tree.internal_count.tolist(),
            tree.leaf_count.tolist(),
        )
        edges.extend(tree_edges)
        for position, features, zeros in tree_leaves:
            leaf_position.append(position)
            leaf_elem_start.append(len(elem_feature))
            elem_feature.extend(features)
            elem_zero.extend(zeros)
        tree_node_start.append(tree_node_start[-1] + len(feature))
        tree_edge_start.append(len(edges))
        tree_leaf_start.append(len(leaf_position))

    nodes = {key: np.concatenate(columns) for key, columns in node_arrays.items()}
    edge_columns = list(zip(*edges, strict=True)) if edges else [()] * 4
    values = np.concatenate(leaf_value)
    leaf_elem_start.append(len(elem_feature))
    elem_starts = np.array(leaf_elem_start, dtype=np.int64)
    zeros = np.array(elem_zero, dtype=np.float64)
    weights = _shapley_weights(_MAX_PATH_FEATURES)
    num_elems = np.diff(elem_starts)
    # A table needs z > 0 (hot values divide by z); a data count of 0 is all but impossible.
    leaf_of_elem = np.repeat(np.arange(len(values)), num_elems)
    has_zero = np.bincount(leaf_of_elem[zeros <= 0], minlength=len(values)) > 0
    tabulated = (num_elems > 0) & (num_elems <= precompute_depth) & ~has_zero
    sizes = np.where(tabulated, np.left_shift(1, num_elems), 0)
    leaf_table_start = np.where(tabulated, np.cumsum(sizes) - sizes, -1).astype(np.int64)
    table = np.zeros(int(sizes.sum()))
    _fill_tables(values, elem_starts, leaf_table_start, zeros, weights, table)
    return _Forest(
        class_tree_start=class_tree_start.astype(np.int64),
        tree_node_start=np.array(tree_node_start, dtype=np.int64),
        tree_edge_start=np.array(tree_edge_start, dtype=np.int64),
        tree_leaf_start=np.array(tree_leaf_start, dtype=np.int64),
        node_feature=nodes["feature"],
        node_threshold=nodes["threshold"],
        node_flags=nodes["flags"].astype(np.uint8),
        node_left=nodes["left"],
        node_right=nodes["right"],
        node_cat_start=nodes["cat_start"],
        node_cat_len=nodes["cat_len"],
        cat_words=np.concatenate(cat_words) if cat_words else np.zeros(0, dtype=np.uint32),
        edge_parent=np.array(edge_columns[0], dtype=np.int64),
        edge_node=np.array(edge_columns[1], dtype=np.int64),
        edge_left=np.array(edge_columns[2], dtype=np.bool_),
        edge_elem=np.array(edge_columns[3], dtype=np.int64),
        leaf_value=values,
        leaf_position=np.array(leaf_position, dtype=np.int64),
        leaf_elem_start=elem_starts,
        leaf_table_start=leaf_table_start,
        elem_feature=np.array(elem_feature, dtype=np.int64),
        elem_zero=zeros,
        elem_ratio=np.divide(1.0 - zeros, zeros, out=np.zeros_like(zeros), where=zeros > 0),
        table=table,
        weights=weights,
    )


def _tree_paths(
    feature: list[int],
    left: list[int],
    right: list[int],
    counts: list[float],
    leaf_counts: list[float],
) -> tuple[list[tuple], list[tuple]]:
    """One tree's edges and, per leaf in index order, its position and path elements.

    Nodes get positions in the order the walk reaches them (a parent before its children;
    the root is 0); edge k leads to position k + 1: (parent position, parent node, goes left,
    element of the parent's feature). A leaf's elements are its path's distinct features in
    first-seen order and their zero fractions (products of child / parent data counts).
    """
    edges: list[tuple] = []
    leaves: dict[int, tuple] = {}
    stack: list[tuple[int, int, list[int], list[float]]] = [(0 if counts else -1, 0, [], [])]
    while stack:
        node, position, features, zeros = stack.pop()
        if node < 0:
            if len(features) > _MAX_PATH_FEATURES:
                raise ModelError(
                    f"a tree path tests {len(features)} distinct features; "
                    f"at most {_MAX_PATH_FEATURES} are supported"
                )
            leaves[~node] = (position, features, zeros)
            continue
        for child, goes_left in ((right[node], False), (left[node], True)):
            fraction = (counts[child] if child >= 0 else leaf_counts[~child]) / counts[node]
            child_features, child_zeros = list(features), list(zeros)
            if feature[node] in features:
                element = features.index(feature[node])
                child_zeros[element] *= fraction
            else:
                element = len(features)
                child_features.append(feature[node])
                child_zeros.append(fraction)
            edges.append((position, node, goes_left, element))
            stack.append((child, len(edges), child_features, child_zeros))
    return edges, [leaves[leaf] for leaf in range(len(leaves))]


def _expected_values(trees: Sequence[Tree], num_classes: int) -> np.ndarray:
    """Per class, the sum over its trees of the count-weighted mean leaf value."""
    expected = np.zeros(num_classes)
    for t, tree in enumerate(trees):
        values = tree.leaf_value
        if len(values) > 1:
            values = tree.leaf_count / tree.internal_count[0] * values
        expected[t % num_classes] += values.sum()
    return expected


def _shapley_weights(max_features: int) -> np.ndarray:
    """weights[d, s] = s! (d - s - 1)! / d!, the Shapley weight of a subset of s of d features."""
    weights = np.zeros((max_features + 1, max_features + 1))
    for d in range(1, max_features + 1):
        for s in range(d):
            weights[d, s] = 1.0 / (d * math.comb(d - 1, s))
    return weights


# ---- compiled kernels -----------------------------------------------------------------


@njit(cache=True, nogil=True, inline="always")
def _nan_goes_left(threshold, flags):
    """Where NaN goes at a numerical split: missing type NaN or Zero sends it the default way."""
    if (flags >> 2) & 3:
        return (flags & _DEFAULT_LEFT) != 0
    return threshold >= 0.0


@njit(cache=True, nogil=True, inline="always")
def _goes_left(x, threshold, flags, cat_start, cat_len, cat_words):
    if flags & _CATEGORICAL:
        # LightGBM truncates to int: NaN, <= -1 and >= 2^31 become negative and go right.
        if not (x > -1.0 and x < 2147483648.0):
            return False
        category = int(x)
        word = category >> 5
        return word < cat_len and (cat_words[cat_start + word] >> (category & 31)) & 1 != 0
    if np.isnan(x):
        return _nan_goes_left(threshold, flags)
    if (flags >> 2) & 3 == _MISSING_ZERO and -_ZERO_THRESHOLD <= x <= _ZERO_THRESHOLD:
        return (flags & _DEFAULT_LEFT) != 0
    return x <= threshold


@njit(cache=True, nogil=True, inline="always")
def _leaf_of(x, f, t):
    """The leaf (its index within tree `t`) that the feature values `x` fall into."""
    n0 = f.tree_node_start[t]
    node = 0 if f.tree_node_start[t + 1] > n0 else -1
    while node >= 0:
        i = n0 + node
        left = _goes_left(
            x[f.node_feature[i]],
            f.node_threshold[i],
            f.node_flags[i],
            f.node_cat_start[i],
            f.node_cat_len[i],
            f.cat_words,
        )
        node = f.node_left[i] if left else f.node_right[i]
    return ~node


@njit(cache=True, nogil=True, parallel=True)
def _raw_scores(X, f, out):
    for r in prange(X.shape[0]):
        for c in range(f.class_tree_start.shape[0] - 1):
            for t in range(f.class_tree_start[c], f.class_tree_start[c + 1]):
                out[r, c] += f.leaf_value[f.tree_leaf_start[t] + _leaf_of(X[r], f, t)]


@njit(cache=True, nogil=True)
def _fill_tables(leaf_value, leaf_elem_start, leaf_table_start, elem_zero, weights, table):
    """table[start + T] = v * K(T) * prod_{e not in T} z_e for each proper subset T of a
    tabulated leaf's features (the full set, never weighted, stays 0)."""
    max_d = 0
    for leaf in range(leaf_value.shape[0]):
        if leaf_table_start[leaf] >= 0:
            max_d = max(max_d, leaf_elem_start[leaf + 1] - leaf_elem_start[leaf])
    # poly[T, j]: the j-th elementary symmetric polynomial of the zero fractions in T.
    poly = np.zeros((1 << max_d, max_d + 1))
    poly[0, 0] = 1.0
    for leaf in range(leaf_value.shape[0]):
        start = leaf_table_start[leaf]
        if start < 0:
            continue
        e0 = leaf_elem_start[leaf]
        d = leaf_elem_start[leaf + 1] - e0
        for mask in range(1, 1 << d):
            e = 0
            while not (mask >> e) & 1:
                e += 1
            rest = mask ^ (1 << e)
            z = elem_zero[e0 + e]
            poly[mask, 0] = 1.0
            for j in range(1, d + 1):
                poly[mask, j] = poly[rest, j] + z * poly[rest, j - 1]
        full = (1 << d) - 1
        for mask in range(full):
            size = 0
            cold_zero = 1.0
            for e in range(d):
                if (mask >> e) & 1:
                    size += 1
                else:
                    cold_zero *= elem_zero[e0 + e]
            table[start + mask] = leaf_value[leaf] * _k_of(poly[mask], size, d, weights) * cold_zero


@njit(cache=True, nogil=True, inline="always")
def _k_of(poly, size, d, weights):
    """K(T) of a set T of ``size`` of the leaf's d features, from T's symmetric polynomials."""
    total = 0.0
    for j in range(size + 1):
        total += weights[d, size - j] * poly[j]
    return total


@njit(cache=True, nogil=True, parallel=True)
def _shap_blocks(X, order, block_start, block_class, f, out):
    """Adds the contributions of rows ``order[block_start[b]:block_start[b + 1]]`` toward
    class ``block_class[b]`` to ``out``, tree by tree so each tree's data stays in cache."""
    max_nodes = 1
    for t in range(f.tree_node_start.shape[0] - 1):
        max_nodes = max(max_nodes, f.tree_node_start[t + 1] - f.tree_node_start[t])
    max_rows = 1
    for b in range(block_start.shape[0] - 1):
        max_rows = max(max_rows, block_start[b + 1] - block_start[b])
    for b in prange(block_start.shape[0] - 1):
        first = block_start[b]
        num_rows = block_start[b + 1] - first
        # The block's rows transposed, so each split is decided over contiguous values.
        block_x = np.empty((X.shape[1], max_rows))
        for j in range(num_rows):
            block_x[:, j] = X[order[first + j]]
        goes_left = np.empty((max_nodes, max_rows), dtype=np.bool_)
        hot_at = np.empty(2 * max_nodes + 1, dtype=np.int64)  # hot elements per position
        hot_at[0] = -1
        poly = np.empty(_MAX_PATH_FEATURES + 1)
        deflated = np.empty(_MAX_PATH_FEATURES + 1)
        c = block_class[b]
        for t in range(f.class_tree_start[c], f.class_tree_start[c + 1]):
            n0 = f.tree_node_start[t]
            for i in range(f.tree_node_start[t + 1] - n0):
                x = block_x[f.node_feature[n0 + i]]
                threshold = f.node_threshold[n0 + i]
                flags = f.node_flags[n0 + i]
                if flags & _CATEGORICAL:
                    for j in range(num_rows):
                        goes_left[i, j] = _goes_left(
                            x[j],
                            threshold,
                            flags,
                            f.node_cat_start[n0 + i],
                            f.node_cat_len[n0 + i],
                            f.cat_words,
                        )
                elif (flags >> 2) & 3 == _MISSING_ZERO:
                    for j in range(num_rows):
                        goes_left[i, j] = _goes_left(x[j], threshold, flags, 0, 0, f.cat_words)
                else:
                    nan_left = _nan_goes_left(threshold, flags)
                    for j in range(num_rows):
                        goes_left[i, j] = x[j] <= threshold or (nan_left and np.isnan(x[j]))
            k0 = f.tree_edge_start[t]
            num_edges = f.tree_edge_start[t + 1] - k0
            l0 = f.tree_leaf_start[t]
            num_leaves = f.tree_leaf_start[t + 1] - l0
            for j in range(num_rows):
                r = order[first + j]
                for k in range(num_edges):
                    disagree = np.int64(goes_left[f.edge_node[k0 + k], j] != f.edge_left[k0 + k])
                    hot_at[k + 1] = hot_at[f.edge_parent[k0 + k]] & ~(
                        disagree << f.edge_elem[k0 + k]
                    )
                for q in range(num_leaves):
                    e0 = f.leaf_elem_start[l0 + q]
                    d = f.leaf_elem_start[l0 + q + 1] - e0
                    hot = hot_at[f.leaf_position[l0 + q]] & ((1 << d) - 1)
                    start = f.leaf_table_start[l0 + q]
                    if start >= 0:
                        cold = -f.table[start + hot]
                        for e in range(d):
                            hot_value = f.elem_ratio[e0 + e] * f.table[start + (hot ^ (1 << e))]
                            out[r, f.elem_feature[e0 + e]] += hot_value if (hot >> e) & 1 else cold
                    elif d > 0:
                        _explain_leaf(
                            out[r],
                            hot,
                            f.leaf_value[l0 + q],
                            f.elem_feature[e0 : e0 + d],
                            f.elem_zero[e0 : e0 + d],
                            f.weights,
                            poly,
                            deflated,
                        )


@njit(cache=True, nogil=True, inline="always")
def _explain_leaf(phi, hot, value, features, zeros, weights, poly, deflated):
    """One leaf's contributions without a table: K from the hot z's symmetric polynomials."""
    d = features.shape[0]
    size = 0
    cold_zero = 1.0
    poly[0] = 1.0
    for e in range(d):
        if (hot >> e) & 1:
            size += 1
            poly[size] = 0.0
            for j in range(size, 0, -1):
                poly[j] += zeros[e] * poly[j - 1]
        else:
            cold_zero *= zeros[e]
    cold = -value * _k_of(poly, size, d, weights) * cold_zero if size < d else 0.0
    for e in range(d):
        if (hot >> e) & 1:
            deflated[0] = 1.0
            for j in range(1, size):
                deflated[j] = poly[j] - zeros[e] * deflated[j - 1]
            k = _k_of(deflated, size - 1, d, weights)
            phi[features[e]] += value * (1.0 - zeros[e]) * k * cold_zero
        else:
            phi[features[e]] += cold


@njit(cache=True, nogil=True, parallel=True)
def _top_k(values, indices, contributions):
    """Insertion into a descending list of k; a tie never displaces an earlier feature."""
    k = indices.shape[1]
    for r in prange(values.shape[0]):
        filled = 0
        for f in range(values.shape[1]):
            v = values[r, f]
            if filled == k and v <= contributions[r, k - 1]:
                continue
            pos = min(filled, k - 1)
            while pos > 0 and contributions[r, pos - 1] < v:
                contributions[r, pos] = contributions[r, pos - 1]
                indices[r, pos] = indices[r, pos - 1]
                pos -= 1
            contributions[r, pos] = v
            indices[r, pos] = f
            filled = min(filled + 1, k)
