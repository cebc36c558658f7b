"""Exact path-dependent TreeSHAP for LightGBM models, one class per row, compiled with numba.

The values equal the asked class's block of LightGBM's ``predict(pred_contrib=True)`` (the
same path-dependent TreeSHAP, cover = data counts) but cost a fraction of it:

- only the trees of the asked class are walked (1/6 of the work for a 6-class model);
- each leaf is explained on its own (as in GPUTreeShap and Fast TreeSHAP v2). For a leaf with
  value v whose root path tests the distinct features P (d of them; a feature tested twice is
  merged, its zero fraction z_j the product of child/parent data counts), a row satisfies the
  conditions of a subset H ("hot") and fails those of C = P \\ H. With
  K(T) = sum over S subset of T of |S|!(d-|S|-1)!/d! * prod_{j in T \\ S} z_j, the leaf adds
  -v * K(H) * prod_C z to every cold feature and v * (1 - z_i) * K(H \\ {i}) * prod_C z to each
  hot feature i. v * K is tabulated per leaf for all 2^d subsets when d <= ``precompute_depth``
  (deeper leaves compute it per row in O(d^2) from elementary symmetric polynomials);
- identical rows (same bytes, same class) are explained once.

Decisions replicate LightGBM's ``NumericalDecision`` / ``CategoricalDecision`` on float64
input: NaN is read as 0 unless the split's missing type is NaN, zero-as-missing uses
|x| <= 1e-35f, categories are truncated to int and NaN, negative (<= -1), out-of-int-range and
unseen categories go right.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
from numba import njit, prange

from fpi.errors import ModelError

#: Leaves with at most this many distinct path features get a 2^d weight table by default.
DEFAULT_PRECOMPUTE_DEPTH = 10
#: Rows explained per call of the compiled kernel (bounds the memory of ``explain_top``).
DEFAULT_CHUNK_ROWS = 32_768
_MAX_PATH_FEATURES = 62
_ROW_BLOCK = 64

_CATEGORICAL = 1
_DEFAULT_LEFT = 2
_MISSING_ZERO = 1
_MISSING_NAN = 2
_MISSING_TYPES = {"None": 0, "Zero": _MISSING_ZERO, "NaN": _MISSING_NAN}
_ZERO_THRESHOLD = float(np.float32(1e-35))


@dataclass(frozen=True)
class _Forest:
    """The trees as flat arrays, trees of class c at ``class_tree_start[c]:[c + 1]``."""

    class_tree_start: np.ndarray
    tree_node_start: np.ndarray
    tree_leaf_start: np.ndarray
    node_feature: np.ndarray
    node_threshold: np.ndarray
    node_flags: (
        np.ndarray
    )  # LightGBM's decision_type: bit 0 categorical, 1 default left, 2-3 missing
    node_left: np.ndarray  # tree-local: >= 0 internal node, < 0 ~leaf
    node_right: np.ndarray
    node_cat_start: np.ndarray
    node_cat_len: np.ndarray
    cat_left: np.ndarray
    leaf_value: np.ndarray
    leaf_elem_start: np.ndarray
    leaf_step_start: np.ndarray
    leaf_table_start: np.ndarray
    elem_feature: np.ndarray
    elem_zero: np.ndarray
    step_node: np.ndarray
    step_left: np.ndarray
    step_elem: np.ndarray
    table: np.ndarray
    weights: np.ndarray


class FastExplainer:
    """SHAP values of a LightGBM booster toward one class per row, equal to ``pred_contrib``.

    ``num_iteration`` follows ``Booster.predict``: None uses the best iteration if one is set,
    else all. ``precompute_depth`` trades memory (2^d floats per leaf) for speed; 0 disables the
    tables. Single-output boosters (binary, regression) have one class, 0.
    """

    def __init__(
        self,
        booster: Any,
        *,
        num_iteration: int | None = None,
        precompute_depth: int = DEFAULT_PRECOMPUTE_DEPTH,
    ) -> None:
        if num_iteration is None:
            num_iteration = booster.best_iteration
        dump = booster.dump_model(num_iteration=num_iteration)
        self.num_classes: int = dump["num_tree_per_iteration"]
        self.num_features: int = dump["max_feature_idx"] + 1
        self.feature_names: list[str] = dump["feature_names"]
        if dump.get("average_output"):
            raise ModelError("random-forest boosters (average_output) are not supported")
        if not 0 <= precompute_depth <= 20:
            raise ValueError(f"precompute_depth must be in 0..20, got {precompute_depth}")
        self._forest = _flatten(dump, self.num_classes, precompute_depth)
        #: Per class, the mean raw score over the training data (the bias column).
        self.expected_values: np.ndarray = _expected_values(dump, self.num_classes)

    @property
    def table_bytes(self) -> int:
        """Memory held by the precomputed leaf weight tables."""
        return self._forest.table.nbytes

    def raw_scores(self, X: np.ndarray) -> np.ndarray:
        """Raw scores (n_rows, n_classes), equal to ``booster.predict(X, raw_score=True)``."""
        X = self._check_rows(X)
        f = self._forest
        out = np.zeros((X.shape[0], self.num_classes))
        _raw_scores(
            X,
            f.class_tree_start,
            f.tree_node_start,
            f.tree_leaf_start,
            f.node_feature,
            f.node_threshold,
            f.node_flags,
            f.node_left,
            f.node_right,
            f.node_cat_start,
            f.node_cat_len,
            f.cat_left,
            f.leaf_value,
            out,
        )
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
        for start in range(0, X.shape[0], chunk_rows):
            stop = start + chunk_rows
            values = self._explain_chunk(X[start:stop], classes[start:stop], dedupe)
            _top_k(values, self.num_features, indices[start:stop], contributions[start:stop])
        return indices, contributions

    def _explain_chunk(self, X: np.ndarray, classes: np.ndarray, dedupe: bool) -> np.ndarray:
        if dedupe:
            keyed = np.ascontiguousarray(np.column_stack([X, classes.astype(np.float64)]))
            rows = keyed.view(np.dtype((np.void, keyed.dtype.itemsize * keyed.shape[1])))
            _, first, inverse = np.unique(rows.ravel(), return_index=True, return_inverse=True)
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
        f = self._forest
        _shap_blocks(
            X,
            order,
            block_start,
            block_class,
            f.class_tree_start,
            f.tree_node_start,
            f.tree_leaf_start,
            f.node_feature,
            f.node_threshold,
            f.node_flags,
            f.node_left,
            f.node_right,
            f.node_cat_start,
            f.node_cat_len,
            f.cat_left,
            f.leaf_value,
            f.leaf_elem_start,
            f.leaf_step_start,
            f.leaf_table_start,
            f.elem_feature,
            f.elem_zero,
            f.step_node,
            f.step_left,
            f.step_elem,
            f.table,
            f.weights,
            out,
        )
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


def top_contributions(values: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """The k largest feature contributions per row of ``shap_values`` output, largest first.

    ``values`` is (n_rows, n_features + 1) with the bias in the last column, which is never
    picked. Returns feature indices (int32) and contributions, each (n_rows, k); equal
    contributions are ordered by feature index.
    """
    values = np.ascontiguousarray(values, dtype=np.float64)
    num_features = values.shape[1] - 1
    _check_k(k, num_features)
    indices = np.empty((values.shape[0], k), dtype=np.int32)
    contributions = np.empty((values.shape[0], k))
    _top_k(values, num_features, indices, contributions)
    return indices, contributions


def _check_k(k: int, num_features: int) -> None:
    if not 1 <= k <= num_features:
        raise ValueError(f"k must be in 1..{num_features}, got {k}")


# ---- flattening the model dump --------------------------------------------------------


def _expected_values(dump: dict, num_classes: int) -> np.ndarray:
    expected = np.zeros(num_classes)
    for tree in dump["tree_info"]:
        leaves = [n for n in _walk(tree["tree_structure"]) if "leaf_value" in n]
        if len(leaves) == 1:
            value = leaves[0]["leaf_value"]
        else:
            total = tree["tree_structure"]["internal_count"]
            value = sum(leaf["leaf_count"] / total * leaf["leaf_value"] for leaf in leaves)
        expected[tree["tree_index"] % num_classes] += value
    return expected


def _walk(node: dict):
    stack = [node]
    while stack:
        node = stack.pop()
        yield node
        if "leaf_value" not in node:
            stack.append(node["right_child"])
            stack.append(node["left_child"])


def _count(node: dict) -> float:
    return node["leaf_count"] if "leaf_value" in node else node["internal_count"]


def _flatten(dump: dict, num_classes: int, precompute_depth: int) -> _Forest:
    trees = sorted(
        dump["tree_info"], key=lambda t: (t["tree_index"] % num_classes, t["tree_index"])
    )
    class_tree_start = np.searchsorted(
        [t["tree_index"] % num_classes for t in trees], np.arange(num_classes + 1)
    )
    nodes: list[tuple] = []
    cat_left: list[bool] = []
    leaves: list[tuple] = []  # value, first element, first step
    elem_feature: list[int] = []
    elem_zero: list[float] = []
    steps: list[tuple] = []  # node, goes left, element
    tree_node_start, tree_leaf_start = [0], [0]
    for tree in trees:
        root = tree["tree_structure"]
        if any("leaf_coeff" in n for n in _walk(root)):
            raise ModelError("linear-tree boosters (linear_tree=True) are not supported")
        internal = sorted(
            (n for n in _walk(root) if "leaf_value" not in n), key=lambda n: n["split_index"]
        )
        for n in internal:
            cats = (
                [int(c) for c in str(n["threshold"]).split("||")]
                if n["decision_type"] == "=="
                else []
            )
            is_left = np.zeros(max(cats) + 1 if cats else 0, dtype=bool)
            is_left[cats] = True
            flags = (
                (_CATEGORICAL if cats else 0)
                | (_DEFAULT_LEFT if n["default_left"] else 0)
                | (_MISSING_TYPES[n["missing_type"]] << 2)
            )
            nodes.append(
                (
                    n["split_feature"],
                    0.0 if cats else float(n["threshold"]),
                    flags,
                    _child_id(n["left_child"]),
                    _child_id(n["right_child"]),
                    len(cat_left),
                    len(is_left),
                )
            )
            cat_left.extend(is_left.tolist())
        tree_leaves: dict[int, tuple] = {}
        # Depth-first over root paths: (node, features in first-seen order, their zero
        # fractions, the path's (node, goes left, element) steps).
        stack: list[tuple[dict, list[int], list[float], list[tuple]]] = [(root, [], [], [])]
        while stack:
            node, features, zeros, path = stack.pop()
            if "leaf_value" in node:
                if len(features) > _MAX_PATH_FEATURES:
                    raise ModelError(
                        f"a tree path tests {len(features)} distinct features; "
                        f"at most {_MAX_PATH_FEATURES} are supported"
                    )
                tree_leaves[node.get("leaf_index", 0)] = (node["leaf_value"], features, zeros, path)
                continue
            feature = node["split_feature"]
            for child, left in ((node["left_child"], True), (node["right_child"], False)):
                fraction = _count(child) / _count(node)
                child_features, child_zeros = list(features), list(zeros)
                if feature in features:
                    element = features.index(feature)
                    child_zeros[element] *= fraction
                else:
                    element = len(features)
                    child_features.append(feature)
                    child_zeros.append(fraction)
                step = (node["split_index"], left, element)
                stack.append((child, child_features, child_zeros, [*path, step]))
        for leaf_index in range(len(tree_leaves)):
            value, features, zeros, path = tree_leaves[leaf_index]
            leaves.append((value, len(elem_feature), len(steps)))
            elem_feature.extend(features)
            elem_zero.extend(zeros)
            steps.extend(path)
        tree_node_start.append(len(nodes))
        tree_leaf_start.append(len(leaves))

    leaf_elem_start = np.array([lf[1] for lf in leaves] + [len(elem_feature)], dtype=np.int64)
    elem_zero_array = np.array(elem_zero, dtype=np.float64)
    leaf_value = np.array([lf[0] for lf in leaves], dtype=np.float64)
    weights = _shapley_weights(_MAX_PATH_FEATURES)
    num_elems = np.diff(leaf_elem_start)
    tabulated = (num_elems > 0) & (num_elems <= precompute_depth)
    sizes = np.where(tabulated, np.left_shift(1, num_elems), 0)
    leaf_table_start = np.where(tabulated, np.cumsum(sizes) - sizes, -1).astype(np.int64)
    table = np.zeros(int(sizes.sum()))
    _fill_tables(leaf_value, leaf_elem_start, leaf_table_start, elem_zero_array, weights, table)
    node_columns = list(zip(*nodes, strict=True)) if nodes else [()] * 7
    step_columns = list(zip(*steps, strict=True)) if steps else [()] * 3
    return _Forest(
        class_tree_start=class_tree_start.astype(np.int64),
        tree_node_start=np.array(tree_node_start, dtype=np.int64),
        tree_leaf_start=np.array(tree_leaf_start, dtype=np.int64),
        node_feature=np.array(node_columns[0], dtype=np.int64),
        node_threshold=np.array(node_columns[1], dtype=np.float64),
        node_flags=np.array(node_columns[2], dtype=np.uint8),
        node_left=np.array(node_columns[3], dtype=np.int64),
        node_right=np.array(node_columns[4], dtype=np.int64),
        node_cat_start=np.array(node_columns[5], dtype=np.int64),
        node_cat_len=np.array(node_columns[6], dtype=np.int64),
        cat_left=np.array(cat_left, dtype=np.bool_),
        leaf_value=leaf_value,
        leaf_elem_start=leaf_elem_start,
        leaf_step_start=np.array([lf[2] for lf in leaves] + [len(steps)], dtype=np.int64),
        leaf_table_start=leaf_table_start,
        elem_feature=np.array(elem_feature, dtype=np.int64),
        elem_zero=elem_zero_array,
        step_node=np.array(step_columns[0], dtype=np.int64),
        step_left=np.array(step_columns[1], dtype=np.bool_),
        step_elem=np.array(step_columns[2], dtype=np.int64),
        table=table,
        weights=weights,
    )


def _child_id(child: dict) -> int:
    return ~child.get("leaf_index", 0) if "leaf_value" in child else child["split_index"]


def _shapley_weights(max_features: int) -> np.ndarray:
    """weights[d, s] = s! (d - s - 1)! / d!, the Shapley weight of a subset of s of d features."""
    weights = np.zeros((max_features + 1, max_features + 1))
    for d in range(1, max_features + 1):
        for s in range(d):
            weights[d, s] = 1.0 / (d * math.comb(d - 1, s))
    return weights


# ---- compiled kernels -----------------------------------------------------------------


@njit(cache=True, nogil=True, inline="always")
def _goes_left(x, threshold, flags, cat_start, cat_len, cat_left):
    if flags & _CATEGORICAL:
        # LightGBM truncates to int: NaN, <= -1 and >= 2^31 become negative and go right.
        if not (x > -1.0 and x < 2147483648.0):
            return False
        category = int(x)
        return category < cat_len and cat_left[cat_start + category]
    missing = (flags >> 2) & 3
    if np.isnan(x):
        if missing == _MISSING_NAN:
            return (flags & _DEFAULT_LEFT) != 0
        x = 0.0
    if missing == _MISSING_ZERO and -_ZERO_THRESHOLD <= x <= _ZERO_THRESHOLD:
        return (flags & _DEFAULT_LEFT) != 0
    return x <= threshold


@njit(cache=True, nogil=True, parallel=True)
def _raw_scores(
    X,
    class_tree_start,
    tree_node_start,
    tree_leaf_start,
    node_feature,
    node_threshold,
    node_flags,
    node_left,
    node_right,
    node_cat_start,
    node_cat_len,
    cat_left,
    leaf_value,
    out,
):
    for r in prange(X.shape[0]):
        for c in range(class_tree_start.shape[0] - 1):
            for t in range(class_tree_start[c], class_tree_start[c + 1]):
                n0 = tree_node_start[t]
                node = 0 if tree_node_start[t + 1] > n0 else -1
                while node >= 0:
                    i = n0 + node
                    left = _goes_left(
                        X[r, node_feature[i]],
                        node_threshold[i],
                        node_flags[i],
                        node_cat_start[i],
                        node_cat_len[i],
                        cat_left,
                    )
                    node = node_left[i] if left else node_right[i]
                out[r, c] += leaf_value[tree_leaf_start[t] + ~node]


@njit(cache=True, nogil=True)
def _fill_tables(leaf_value, leaf_elem_start, leaf_table_start, elem_zero, weights, table):
    """table[start + T] = v * K(T) for every proper subset T of a tabulated leaf's features."""
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
        for mask in range((1 << d) - 1):
            size = 0
            m = mask
            while m:
                size += m & 1
                m >>= 1
            table[start + mask] = leaf_value[leaf] * _k_of(poly[mask], size, d, weights)


@njit(cache=True, nogil=True, inline="always")
def _k_of(poly, size, d, weights):
    """K(T) of a set T of ``size`` of the leaf's d features, from T's symmetric polynomials."""
    total = 0.0
    for j in range(size + 1):
        total += weights[d, size - j] * poly[j]
    return total


@njit(cache=True, nogil=True, parallel=True)
def _shap_blocks(
    X,
    order,
    block_start,
    block_class,
    class_tree_start,
    tree_node_start,
    tree_leaf_start,
    node_feature,
    node_threshold,
    node_flags,
    node_left,
    node_right,
    node_cat_start,
    node_cat_len,
    cat_left,
    leaf_value,
    leaf_elem_start,
    leaf_step_start,
    leaf_table_start,
    elem_feature,
    elem_zero,
    step_node,
    step_left,
    step_elem,
    table,
    weights,
    out,
):
    max_nodes = 1
    for t in range(tree_node_start.shape[0] - 1):
        max_nodes = max(max_nodes, tree_node_start[t + 1] - tree_node_start[t])
    for b in prange(block_start.shape[0] - 1):
        goes_left = np.empty(max_nodes, dtype=np.bool_)
        poly = np.empty(_MAX_PATH_FEATURES + 1)
        deflated = np.empty(_MAX_PATH_FEATURES + 1)
        c = block_class[b]
        for t in range(class_tree_start[c], class_tree_start[c + 1]):
            n0 = tree_node_start[t]
            num_nodes = tree_node_start[t + 1] - n0
            for p in range(block_start[b], block_start[b + 1]):
                r = order[p]
                for i in range(num_nodes):
                    j = n0 + i
                    goes_left[i] = _goes_left(
                        X[r, node_feature[j]],
                        node_threshold[j],
                        node_flags[j],
                        node_cat_start[j],
                        node_cat_len[j],
                        cat_left,
                    )
                for leaf in range(tree_leaf_start[t], tree_leaf_start[t + 1]):
                    e0 = leaf_elem_start[leaf]
                    d = leaf_elem_start[leaf + 1] - e0
                    if d == 0:
                        continue
                    hot = (1 << d) - 1
                    for s in range(leaf_step_start[leaf], leaf_step_start[leaf + 1]):
                        if goes_left[step_node[s]] != step_left[s]:
                            hot &= ~(1 << step_elem[s])
                    cold_zero = 1.0
                    for e in range(d):
                        if not (hot >> e) & 1:
                            cold_zero *= elem_zero[e0 + e]
                    start = leaf_table_start[leaf]
                    if start >= 0:
                        cold = -table[start + hot] * cold_zero
                        for e in range(d):
                            bit = 1 << e
                            if hot & bit:
                                out[r, elem_feature[e0 + e]] += (
                                    (1.0 - elem_zero[e0 + e])
                                    * table[start + (hot ^ bit)]
                                    * cold_zero
                                )
                            else:
                                out[r, elem_feature[e0 + e]] += cold
                        continue
                    # No table: K from the elementary symmetric polynomials of the hot z's.
                    size = 0
                    poly[0] = 1.0
                    for e in range(d):
                        if (hot >> e) & 1:
                            size += 1
                            poly[size] = 0.0
                            z = elem_zero[e0 + e]
                            for j in range(size, 0, -1):
                                poly[j] += z * poly[j - 1]
                    value = leaf_value[leaf]
                    cold = -value * _k_of(poly, size, d, weights) * cold_zero if size < d else 0.0
                    for e in range(d):
                        if (hot >> e) & 1:
                            z = elem_zero[e0 + e]
                            deflated[0] = 1.0
                            for j in range(1, size):
                                deflated[j] = poly[j] - z * deflated[j - 1]
                            out[r, elem_feature[e0 + e]] += (
                                value
                                * (1.0 - z)
                                * _k_of(deflated, size - 1, d, weights)
                                * cold_zero
                            )
                        else:
                            out[r, elem_feature[e0 + e]] += cold


@njit(cache=True, nogil=True, parallel=True)
def _top_k(values, num_features, indices, contributions):
    """Insertion into a descending list of k; a tie never displaces an earlier feature."""
    k = indices.shape[1]
    for r in prange(values.shape[0]):
        filled = 0
        for f in range(num_features):
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
