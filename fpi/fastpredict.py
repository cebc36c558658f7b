"""Raw scores of a LightGBM forest, QuickScorer style, with numba.

LightGBM walks one row down one tree at a time, a chain of unpredictable branches. Here rows
go in blocks, transposed so each split reads contiguous values, and every tree is scored for
the whole block at once: a row starts with a bit mask of all the tree's leaves (numbered left
to right); each split that sends the row right clears the leaves of its left subtree; the
leaf the row reaches is then the lowest bit left (Lucchese et al., "QuickScorer", SIGIR 2015).
The inner loops are branch-free and run over the block, so they vectorise. Trees of more than
64 leaves are walked row by row. Trees are added in LightGBM's order, so the raw scores are
bit-identical to ``booster.predict(raw_score=True)``.

The forest comes from `fpi.fastshap.FastExplainer`, which parses the model once and decides
splits exactly as LightGBM does (NaN, zero-as-missing, categorical bitsets).
"""

from __future__ import annotations

import numpy as np
from numba import njit, prange

from fpi.fastshap import FastExplainer, _goes_left, _leaf_of, _nan_goes_left, numba_threads

_ROW_BLOCK = 512
_MAX_MASK_LEAVES = 64
_CATEGORICAL = 1
_MISSING_ZERO = 1
_DE_BRUIJN = 0x03F79D71B4CB0A89
_ALL_BITS = (1 << 64) - 1


def _lowest_bit_table() -> np.ndarray:
    """table[(b * de Bruijn) >> 58] = i for b = 2^i: the index of a single set bit."""
    table = np.zeros(64, dtype=np.int64)
    for i in range(64):
        table[(((1 << i) * _DE_BRUIJN) & _ALL_BITS) >> 58] = i
    return table


class FastPredictor:
    """``booster.predict(raw_score=True)`` for the booster of a `FastExplainer` (the
    probabilities are `fpi.predict`'s: calibrated, from these raw scores)."""

    def __init__(self, explainer: FastExplainer) -> None:
        self.num_classes = explainer.num_classes
        self.num_features = explainer.num_features
        self.num_threads = explainer.num_threads
        self._forest = explainer._forest
        forest = self._forest
        self._node_mask = np.zeros(len(forest.node_feature), dtype=np.uint64)
        self._ordered_value = forest.leaf_value.copy()
        self._masked = np.zeros(len(forest.tree_node_start) - 1, dtype=np.bool_)
        for tree in range(len(self._masked)):
            self._masked[tree] = self._number_leaves(tree)
        self._lowest_bit = _lowest_bit_table()

    def _number_leaves(self, tree: int) -> bool:
        """Fill the tree's split masks and left-to-right leaf values; False if it has too many
        leaves for a 64-bit mask (it is then walked row by row)."""
        f = self._forest
        n0, l0 = f.tree_node_start[tree], f.tree_leaf_start[tree]
        if f.tree_leaf_start[tree + 1] - l0 > _MAX_MASK_LEAVES:
            return False
        order: list[int] = []  # leaf indices, left to right

        def visit(node: int) -> tuple[int, int]:
            """The positions [first, end) of the leaves under `node`."""
            if node < 0:
                order.append(~node)
                return len(order) - 1, len(order)
            low, middle = visit(int(f.node_left[n0 + node]))
            _, high = visit(int(f.node_right[n0 + node]))
            left_leaves = ((1 << (middle - low)) - 1) << low
            self._node_mask[n0 + node] = _ALL_BITS ^ left_leaves
            return low, high

        visit(0 if f.tree_node_start[tree + 1] > n0 else -1)
        self._ordered_value[l0 : l0 + len(order)] = f.leaf_value[l0 + np.array(order)]
        return True

    def raw_scores(self, X: np.ndarray) -> np.ndarray:
        """Raw scores (n_rows, n_classes), equal to ``booster.predict(X, raw_score=True)``."""
        X = np.ascontiguousarray(X, dtype=np.float64)
        out = np.zeros((X.shape[0], self.num_classes))
        with numba_threads(self.num_threads):
            _block_scores(
                X,
                self._forest,
                self._masked,
                self._node_mask,
                self._ordered_value,
                self._lowest_bit,
                out,
            )
        return out


@njit(cache=True, nogil=True, parallel=True)
def _block_scores(X, f, masked, node_mask, ordered_value, lowest_bit, out):
    all_bits = np.uint64(_ALL_BITS)
    de_bruijn = np.uint64(_DE_BRUIJN)
    shift = np.uint64(58)
    num_blocks = (X.shape[0] + _ROW_BLOCK - 1) // _ROW_BLOCK
    for b in prange(num_blocks):
        first = b * _ROW_BLOCK
        num_rows = min(_ROW_BLOCK, X.shape[0] - first)
        block_x = np.empty((X.shape[1], _ROW_BLOCK))
        for j in range(num_rows):
            block_x[:, j] = X[first + j]
        leaves = np.empty(_ROW_BLOCK, dtype=np.uint64)
        for c in range(f.class_tree_start.shape[0] - 1):
            for t in range(f.class_tree_start[c], f.class_tree_start[c + 1]):
                n0 = f.tree_node_start[t]
                l0 = f.tree_leaf_start[t]
                if not masked[t]:
                    for j in range(num_rows):
                        out[first + j, c] += f.leaf_value[l0 + _leaf_of(block_x[:, j], f, t)]
                    continue
                leaves[:num_rows] = all_bits
                for i in range(n0, f.tree_node_start[t + 1]):
                    x = block_x[f.node_feature[i]]
                    threshold = f.node_threshold[i]
                    flags = f.node_flags[i]
                    mask = node_mask[i]
                    if flags & _CATEGORICAL or (flags >> 2) & 3 == _MISSING_ZERO:
                        for j in range(num_rows):
                            if not _goes_left(
                                x[j],
                                threshold,
                                flags,
                                f.node_cat_start[i],
                                f.node_cat_len[i],
                                f.cat_words,
                            ):
                                leaves[j] &= mask
                    elif _nan_goes_left(threshold, flags):
                        for j in range(num_rows):
                            if x[j] > threshold:
                                leaves[j] &= mask
                    else:
                        for j in range(num_rows):
                            if not x[j] <= threshold:
                                leaves[j] &= mask
                for j in range(num_rows):
                    remaining = leaves[j]
                    lowest = remaining & (~remaining + np.uint64(1))
                    out[first + j, c] += ordered_value[
                        l0 + lowest_bit[(lowest * de_bruijn) >> shift]
                    ]
