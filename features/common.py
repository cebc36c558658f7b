"""Expression helpers shared by the stage files: words, text similarity, n-best statistics."""

from __future__ import annotations

import polars as pl

#: A word: a run of letters, digits and apostrophes (so "don't" and "22" are one word each).
WORD_PATTERN = r"[\p{L}\p{N}']+"


def words(text: pl.Expr) -> pl.Expr:
    """The lower-cased words of a text as a list ([] for a text without words)."""
    return text.str.to_lowercase().str.extract_all(WORD_PATTERN)


def jaccard(words_a: pl.Expr, words_b: pl.Expr) -> pl.Expr:
    """Jaccard similarity of two word lists taken as sets (1.0 when both are empty)."""
    shared = words_a.list.set_intersection(words_b).list.len()
    union = words_a.list.n_unique() + words_b.list.n_unique() - shared
    return pl.when(union == 0).then(1.0).otherwise(shared / union)


def covered_share(needles: pl.Expr, haystack: pl.Expr) -> pl.Expr:
    """Share of the distinct words in `needles` that occur in `haystack` (null without any)."""
    wanted = needles.list.n_unique()
    found = needles.list.set_intersection(haystack).list.len()
    return pl.when(wanted > 0).then(found / wanted)


def top_margin(confidences: pl.Expr) -> pl.Expr:
    """Best minus second-best confidence; a lone hypothesis has a margin of its confidence."""
    ranked = confidences.list.drop_nulls().list.sort(descending=True)
    return ranked.list.get(0, null_on_oob=True) - ranked.list.get(1, null_on_oob=True).fill_null(
        0.0
    )


def entropy(confidences: pl.Expr) -> pl.Expr:
    """Shannon entropy (nats) of the confidences renormalised to sum to 1.

    Computed as log(S) - sum(c log c) / S, S = sum(c); null when there is no positive mass.
    """
    total = confidences.list.sum()
    c = pl.element()
    c_log_c = confidences.list.eval(pl.when(c > 0).then(c * c.log())).list.sum()
    return pl.when(total > 0).then(total.log() - c_log_c / total)
