"""Expression helpers shared by the stage files: words, text similarity, n-best statistics.

Polars shares a repeated subexpression only when it holds no `list.eval`, and never inside
another shared one, so these helpers use each input as few times as they can. A ratio that is
undefined (0/0) comes out NaN, which `fpi.featurize.extract_features` turns into null.
"""

from __future__ import annotations

import polars as pl

#: A word: a run of letters, digits and apostrophes (so "don't" and "22" are one word each).
WORD_PATTERN = r"[\p{L}\p{N}']+"


def words(text: pl.Expr) -> pl.Expr:
    """The lower-cased words of a text as a list ([] for a text without words)."""
    return text.str.to_lowercase().str.extract_all(WORD_PATTERN)


def jaccard(words_a: pl.Expr, words_b: pl.Expr) -> pl.Expr:
    """Jaccard similarity of two word lists taken as sets (NaN when neither has a word)."""
    shared = words_a.list.set_intersection(words_b).list.len()
    return shared / words_a.list.set_union(words_b).list.len()


def missing_words(needles: pl.Expr, haystack: pl.Expr) -> pl.Expr:
    """How many distinct words of the list `needles` are not in the list `haystack`."""
    return needles.list.set_difference(haystack).list.len()


def top_margin(confidences: pl.Expr) -> pl.Expr:
    """First minus second confidence of a ranked n-best; a lone hypothesis keeps its own."""
    return confidences.list.get(0, null_on_oob=True) - confidences.list.get(
        1, null_on_oob=True
    ).fill_null(0.0)


def entropy(confidences: pl.Expr) -> pl.Expr:
    """Shannon entropy (nats) of the confidences renormalised to sum to 1.

    Computed as log(S) - sum(c log c) / S, S = sum(c); null when there is no positive mass.
    """
    total = confidences.list.sum()
    c = pl.element()
    c_log_c = confidences.list.eval(pl.when(c > 0).then(c * c.log())).list.sum()
    return pl.when(total > 0).then(total.log() - c_log_c / total)
