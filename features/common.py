"""Expression helpers shared by the stage files: words, text similarity, n-best statistics.

Polars shares a repeated subexpression only when it holds no `list.eval`, and never inside
another shared one, so these helpers use each input as few times as they can. A ratio that is
undefined (0/0) comes out NaN, which `fpi.featurize.extract_features` turns into null.
"""

from __future__ import annotations

import polars as pl
from fpi.features.base import Feature

#: A word: a run of letters, digits and apostrophes (so "don't" and "22" are one word each).
WORD_PATTERN = r"[\p{L}\p{N}']+"


def words(text: pl.Expr) -> pl.Expr:
    """The lower-cased words of a text as a list ([] for a text without words)."""
    return text.str.to_lowercase().str.extract_all(WORD_PATTERN)


#: Fillers and English function words: what a recogniser may add or drop without changing what
#: was asked ("the north please" and "north" say the same), and all that noise picked up as
#: speech tends to come out as ("uh", "the", "a").
_FUNCTION_WORD_TEXT = (
    "uh um ah er erm hmm mm oh uhm huh a an the and or but so then please i i'm me my it it's "
    "its is am are was be to of in on at for with that this there some okay ok well"
)
FUNCTION_WORDS = tuple(_FUNCTION_WORD_TEXT.split())


def content_words(text: pl.Expr) -> pl.Expr:
    """The lower-cased words of a text without fillers and function words, as a list."""
    return words(text).list.set_difference(pl.lit(list(FUNCTION_WORDS)))


_FUNCTION_WORD_RUN = " (?:" + "|".join(FUNCTION_WORDS) + ") "


def content_key(text: pl.Expr) -> pl.Expr:
    """A text's content words in order, lower-cased and space-separated ("" for none): the
    same key for two texts that differ only in fillers, function words and punctuation.
    String-only, so it stays fast inside `list.eval` over an n-best."""
    spaced = pl.concat_str(
        pl.lit(" "),
        text.fill_null("").str.to_lowercase().str.replace_all(r"[^\p{L}\p{N}']+", " "),
        pl.lit(" "),
    )
    # twice: neighbouring function words share the space between them
    once = spaced.str.replace_all(_FUNCTION_WORD_RUN, " ")
    return once.str.replace_all(_FUNCTION_WORD_RUN, " ").str.strip_chars()


def confidence_share(hypotheses: pl.Expr, agrees: pl.Expr) -> pl.Expr:
    """The share of an n-best's confidence held by the hypotheses where `agrees` (an expression
    over `pl.element()`, which may compare with `.first()`, the top hypothesis) holds; NaN
    when the n-best has no confidence."""
    confidence = pl.element().struct.field("confidence")
    held = hypotheses.list.eval(pl.when(agrees).then(confidence).otherwise(0.0)).list.sum()
    return held / hypotheses.list.eval(confidence).list.sum()


def stems(word_list: pl.Expr, length: int = 4) -> pl.Expr:
    """Each word cut to its first `length` characters: a crude stem, so "addr" meets
    "address" and "postcode" meets "post code"."""
    return word_list.list.eval(pl.element().str.slice(0, length))


#: The stems of the top ASR hypothesis's content words: what the user was heard to say, in
#: the form the nlu, result and context features compare with slots, responses and next turns.
HEARD_CONTENT_STEMS = stems(content_words(pl.col("asr").struct.field("text")))


def word_stems(text: pl.Expr, length: int = 4) -> pl.Expr:
    """The stems (`stems`) of a text's words with their apostrophes dropped: what a slot value
    and the words said share when NLU logs a normal form ("moderate" for "moderately",
    "dontcare" for "don't care")."""
    return stems(words(text.str.replace_all("'", "", literal=True)), length)


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


#: Dialogue-relative measures are computed within each dialogue, never across the dump, so a
#: turn's value does not depend on which other dialogues share its batch.
_DIALOGUE = "dialogue_id"


def rank_in_dialogue(values: pl.Expr) -> pl.Expr:
    """Where the turn's value stands among its dialogue's values: 0 lowest .. 1 highest (ties
    averaged); null when the dialogue has fewer than two values. Invariant to any increasing
    recalibration of the score."""
    count = values.count().over(_DIALOGUE)
    rank = values.rank("average").over(_DIALOGUE)
    return pl.when(count > 1).then((rank - 1.0) / (count - 1.0))


def below_dialogue_best(values: pl.Expr) -> pl.Expr:
    """How far the turn's value lies below its dialogue's highest (0 for the best turn); null
    when the dialogue has fewer than two values. Invariant to a shift of the score."""
    return pl.when(values.count().over(_DIALOGUE) > 1).then(values.max().over(_DIALOGUE) - values)


def share_missing(needles: pl.Expr, haystack: pl.Expr) -> pl.Expr:
    """The share of distinct words of the list `needles` not in the list `haystack` (NaN when
    `needles` is empty)."""
    return needles.list.set_difference(haystack).list.len() / needles.list.unique().list.len()


#: Words that negate or reject, and words that confirm (at the start of an answer).
NEGATION_PATTERN = r"(?i)\b(no|not|nope|nah|wrong|cancel|never|stop|don't|didn't)\b"
AFFIRMATION_PATTERN = r"(?i)^\W*(yes|yeah|yep|yup|right|correct|exactly|sure|perfect|great)\b"
#: Intent or act names that negate or confirm (dialogue-act style: negate, deny, affirm, ...).
NEGATING_INTENT = r"(?i)negat|deny|reject|cancel|wrong"
AFFIRMING_INTENT = r"(?i)affirm|confirm|\byes\b"
#: An apology or an admission that the system could not do it.
APOLOGY_PATTERN = (
    r"(?i)\b(sorry|apologi[sz]e|unfortunately|pardon)\b|can't|cannot|couldn't|unable|didn't catch"
)


def dialogue_relative(stage: str, values: pl.Expr, what: str) -> tuple[Feature, Feature]:
    """The rank of a stage's score within its dialogue and its distance below the dialogue's
    best: measures that survive a recalibration of the score (`what` names it, e.g.
    "ASR confidence")."""
    missing = f"no other turn of the dialogue had an {what} to compare"
    return (
        Feature(
            name=f"{stage}__confidence_rank_in_dialogue",
            stage=stage,
            expr=rank_in_dialogue(values),
            description=f"Rank of the {what} among the dialogue's turns (0 lowest, 1 highest)",
            reason=f"{what} ranked {{value:.0%}} of the way up its dialogue's turns",
            missing=missing,
        ),
        Feature(
            name=f"{stage}__confidence_below_dialogue_best",
            stage=stage,
            expr=below_dialogue_best(values),
            description=f"How far the {what} lies below the dialogue's most confident turn",
            reason=f"{what} was {{value:.2f}} below the dialogue's best turn",
            missing=missing,
        ),
    )
