"""Dialogue context: what happened around the turn, from the neighbouring turns of its dialogue.

These expressions read a frame in dialogue order: sorted by `DIALOGUE_ORDER` (turn index within
dialogue, ties by timestamp), so a turn's neighbours are the rows beside it.
`fpi.featurize.extract_features` sorts the frame that way and restores the input order after;
plain shifts on a sorted frame cost a fraction of `.over(..., order_by=...)` windows.
"""

from __future__ import annotations

import polars as pl
from fpi.features.base import Feature
from fpi.features.common import (
    AFFIRMATION_PATTERN,
    AFFIRMING_INTENT,
    APOLOGY_PATTERN,
    HEARD_CONTENT_STEMS,
    NEGATING_INTENT,
    NEGATION_PATTERN,
    content_words,
    jaccard,
    share_missing,
    stems,
    word_stems,
    words,
)

STAGE = "context"
#: The row order the context expressions expect.
DIALOGUE_ORDER = ("dialogue_id", "turn_index", "timestamp")

_dialogue = pl.col("dialogue_id")
_has_next = (_dialogue == _dialogue.shift(-1)).fill_null(False)
_has_previous = (_dialogue == _dialogue.shift(1)).fill_null(False)


def _with_next(expr: pl.Expr) -> pl.Expr:
    """`expr` where a next turn of the same dialogue exists (there `.shift(-1)` reads it), else
    null. Shifting inside and masking the result once is cheaper than masking every input."""
    return pl.when(_has_next).then(expr)


def _with_previous(expr: pl.Expr) -> pl.Expr:
    """`expr` where a previous turn of the same dialogue exists (`.shift(1)` reads it)."""
    return pl.when(_has_previous).then(expr)


_row = pl.int_range(pl.len())
_first_row = pl.when(~_has_previous).then(_row).forward_fill()
_last_row = pl.when(~_has_next).then(_row).backward_fill()

_signals = pl.col("signals").struct
_text = pl.col("asr").struct.field("text")
_intent = pl.col("nlu").struct.field("intent")
_slots = pl.col("nlu").struct.field("slots")
_result = pl.col("result").struct
_tts_ms = pl.col("tts").struct.field("duration_ms")
_barge_in_ms = _signals.field("barge_in_ms")

#: How long the turn kept the user busy after its start: the speech, the response latency and
#: the part of the response that was played (up to the barge-in, if any); missing parts count 0.
_start_us = pl.col("timestamp").dt.epoch("us")
_played_ms = (
    pl.when(_signals.field("barge_in") & _barge_in_ms.is_not_null())
    .then(_barge_in_ms)
    .otherwise(_tts_ms)
)
_busy_s = (
    pl.sum_horizontal(
        pl.col("asr").struct.field("audio_ms"), _result.field("latency_ms"), _played_ms
    )
    / 1000.0
)

#: From the start of the response to this turn, per word of the response: how far into a
#: response (at any speaking rate) the turn began; without a played duration, a turn that
#: starts before the response could have been said is noise or echo, not a reply.
_response_start_us = _start_us + (
    pl.sum_horizontal(pl.col("asr").struct.field("audio_ms"), _result.field("latency_ms")) * 1000
)
_response_word_count = words(
    pl.coalesce(_result.field("response_text"), pl.col("tts").struct.field("text"))
).list.len()

_slot_names = _slots.list.eval(pl.element().struct.field("name"))
_slot_pairs = _slots.list.eval(
    pl.concat_str(
        pl.element().struct.field("name"),
        pl.element().struct.field("value").str.to_lowercase(),
        separator="=",
    )
)
_response = pl.coalesce(_result.field("response_text"), pl.col("tts").struct.field("text"))
_asked_question = _response.str.strip_chars().str.ends_with("?")
_next_text, _next_intent = _text.shift(-1), _intent.shift(-1)
_asr_confidence = pl.col("asr").struct.field("confidence")
_next_similarity = _with_next(jaccard(words(_text), words(_text.shift(-1))))
_next_same_intent = _intent == _intent.shift(-1)
_shared_names = _slot_names.list.set_intersection(_slot_names.shift(-1)).list.len()
_shared_pairs = _slot_pairs.list.set_intersection(_slot_pairs.shift(-1)).list.len()

#: The content words (by their stems) of the lower ASR hypotheses.
_alternatives = stems(
    content_words(
        pl.col("asr")
        .struct.field("nbest")
        .list.slice(1)
        .list.eval(pl.element().struct.field("text"))
        .list.join(" ")
    )
)
_heard_only_in_alternatives = _alternatives.list.set_difference(HEARD_CONTENT_STEMS)
_slot_value_words = word_stems(_slots.list.eval(pl.element().struct.field("value")).list.join(" "))

FEATURES: tuple[Feature, ...] = (
    Feature(
        name="context__next_gap_s",
        stage=STAGE,
        expr=_with_next((_start_us.shift(-1) - _start_us) / 1e6 - _busy_s),
        description="Seconds from the end of this turn's response to the next turn",
        reason="the next turn came {value:.1f} s later",
    ),
    Feature(
        name="context__next_text_similarity",
        stage=STAGE,
        expr=_next_similarity,
        description="Word Jaccard similarity of the next turn's text to this one (a repeat)",
        reason="the next turn shared {value:.0%} of its words with this one",
        missing="no next turn with words to compare",
    ),
    Feature(
        name="context__next_same_intent",
        stage=STAGE,
        expr=_with_next(_next_same_intent),
        description="The next turn has the same intent",
        reason="{value:the next turn asked for the same intent|the next turn moved on}",
    ),
    Feature(
        name="context__next_changed_slot_value",
        stage=STAGE,
        expr=_with_next(_next_same_intent & (_shared_names > _shared_pairs)),
        description="The next turn keeps the intent but gives a slot another value (a correction)",
        reason="{value:the next turn corrected a slot value|the next turn kept the slot values}",
    ),
    Feature(
        name="context__abandoned",
        stage=STAGE,
        expr=~_has_next,
        description="No turn followed in the dialogue",
        reason="{value:the user gave up after this turn|the dialogue went on}",
    ),
    Feature(
        name="context__barge_in",
        stage=STAGE,
        expr=_signals.field("barge_in"),
        description="The user interrupted the response",
        reason="{value:the user interrupted the response|the user let the response finish}",
    ),
    Feature(
        name="context__barge_in_ms",
        stage=STAGE,
        expr=_barge_in_ms,
        description="Milliseconds into the response when the user interrupted",
        reason="the user interrupted {value:.0f} ms into the response",
    ),
    Feature(
        name="context__barge_in_fraction",
        stage=STAGE,
        expr=pl.when(_tts_ms > 0).then(_barge_in_ms / _tts_ms),
        description="Share of the response played before the user interrupted",
        reason="the user interrupted after {value:.0%} of the response",
        missing="the user did not interrupt a played response",
    ),
    Feature(
        name="context__explicit_feedback",
        stage=STAGE,
        expr=_signals.field("explicit_feedback"),
        description="Explicit feedback the user gave (positive, negative)",
        reason="the user's feedback was {value}",
        categorical=True,
    ),
    Feature(
        name="context__prev_gap_s",
        stage=STAGE,
        expr=_with_previous((_start_us - _start_us.shift(1)) / 1e6 - _busy_s.shift(1)),
        description="Seconds from the end of the previous turn's response to this turn",
        reason="this turn came {value:.1f} s after the previous one",
    ),
    Feature(
        name="context__prev_text_similarity",
        stage=STAGE,
        expr=_with_previous(_next_similarity.shift(1)),
        description="Word Jaccard similarity of this turn's text to the previous one (a rephrase)",
        reason="this turn shared {value:.0%} of its words with the previous one",
    ),
    Feature(
        name="context__prev_result_status",
        stage=STAGE,
        expr=_with_previous(_result.field("status").shift(1)),
        description="Result status of the previous turn",
        reason="the previous turn ended in {value}",
        categorical=True,
    ),
    Feature(
        name="context__prev_action",
        stage=STAGE,
        expr=_with_previous(_result.field("action").shift(1)),
        description="The assistant's previous action or prompt (its dialogue acts)",
        reason="the assistant's previous action was {value}",
        categorical=True,
    ),
    Feature(
        name="context__prev_asked_question",
        stage=STAGE,
        expr=_with_previous(_asked_question.shift(1)),
        description="The assistant's previous response ended with a question",
        reason="{value:the assistant had just asked a question|the assistant had not asked}",
    ),
    Feature(
        name="context__position",
        stage=STAGE,
        expr=_row - _first_row,
        description="Position of the turn in its dialogue (0 = first)",
        reason="{value:.0f} turns came before this one in the dialogue",
    ),
    Feature(
        name="context__dialogue_turns",
        stage=STAGE,
        expr=_last_row - _first_row + 1,
        description="Number of turns in the dialogue",
        reason="the dialogue had {value:.0f} turns",
    ),
    Feature(
        name="context__next_negates",
        stage=STAGE,
        expr=_with_next(
            _next_text.str.contains(NEGATION_PATTERN) | _next_intent.str.contains(NEGATING_INTENT)
        ),
        description="The user's next turn says no or rejects (a negation)",
        reason="{value:the user said no in the next turn|the user did not say no next}",
        missing="no next turn, or it had no text or intent",
    ),
    Feature(
        name="context__next_confirms",
        stage=STAGE,
        expr=_with_next(
            _next_text.str.contains(AFFIRMATION_PATTERN)
            | _next_intent.str.contains(AFFIRMING_INTENT)
        ),
        description="The user's next turn says yes (a confirmation)",
        reason="{value:the user said yes in the next turn|the user did not say yes next}",
        missing="no next turn, or it had no text or intent",
    ),
    Feature(
        name="context__next_asr_confidence_change",
        stage=STAGE,
        expr=_with_next(_asr_confidence.shift(-1) - _asr_confidence),
        description="The next turn's ASR confidence minus this turn's",
        reason="ASR was {value:+.2f} more confident on the next turn",
        missing="no next turn, or a turn without ASR confidence",
    ),
    Feature(
        name="context__response_repeats_previous",
        stage=STAGE,
        expr=_with_previous(jaccard(words(_response), words(_response.shift(1)))),
        description="Word Jaccard similarity of the response to the previous response (a re-ask)",
        reason="the response repeated {value:.0%} of the previous response's words",
        missing="no previous response to compare",
    ),
    Feature(
        name="context__prev_apologised",
        stage=STAGE,
        expr=_with_previous(_response.str.contains(APOLOGY_PATTERN).shift(1)),
        description="The assistant's previous response apologised or said it could not",
        reason="{value:the assistant had just apologised|the assistant had not apologised}",
        missing="no previous response",
    ),
    Feature(
        name="context__next_repeats_content",
        stage=STAGE,
        expr=_with_next(1.0 - share_missing(content_words(_text), content_words(_next_text))),
        description="Share of the turn's content words that the user's next turn says again",
        reason="the user's next turn said {value:.0%} of this turn's content words again",
        missing="no next turn, or this turn had no content words",
    ),
    Feature(
        name="context__prev_response_s_per_word",
        stage=STAGE,
        expr=_with_previous(
            pl.when(_response_word_count.shift(1) > 0).then(
                (_start_us - _response_start_us.shift(1)) / 1e6 / _response_word_count.shift(1)
            )
        ),
        description="Seconds from the start of the previous response to this turn, per word of "
        "that response (small: the turn began before the response could be said)",
        reason="this turn began {value:.2f} s per word after the previous response started",
        missing="no previous response with words",
    ),
    Feature(
        name="context__next_says_asr_alternative",
        stage=STAGE,
        expr=_with_next(
            stems(content_words(_next_text))
            .list.set_intersection(_heard_only_in_alternatives)
            .list.len()
        ),
        description="Content words of the user's next turn that only this turn's lower ASR "
        "hypotheses held, not its top text (the user said again what was misheard)",
        reason="the user's next turn said {value:.0f} words that ASR had only as an alternative",
        missing="no next turn, or a turn without recognised text",
    ),
    Feature(
        name="context__next_slot_words_heard_here",
        stage=STAGE,
        expr=_with_next(
            _slot_value_words.shift(-1)
            .list.set_difference(_slot_value_words)
            .list.set_intersection(pl.concat_list(HEARD_CONTENT_STEMS, _alternatives))
            .list.len()
        ),
        description="Slot value words of the next turn that this turn's ASR n-best held but "
        "this turn's NLU did not fill (what was said went unread)",
        reason="{value:.0f} slot value words of the next turn were heard here but not understood",
        missing="no next turn, or a turn that logged no slots or no recognised text",
    ),
    Feature(
        name="context__next_gives_slot_other_value",
        stage=STAGE,
        expr=_with_next(_shared_names > _shared_pairs),
        description="The next turn gives a slot of this turn another value, whatever its intent",
        reason="{value:the next turn gave a slot another value|the next turn kept the slot values}",
        missing="no next turn, or a turn that logged no slots",
    ),
    Feature(
        name="context__spoke_over_previous_response",
        stage=STAGE,
        expr=_with_previous(_signals.field("barge_in").shift(1)),
        description="The previous response was interrupted: this turn began while the assistant "
        "was speaking",
        reason="{value:the turn began while the assistant was still speaking"
        "|the turn began after the assistant finished}",
        missing="no previous turn, or it logged no barge-in signal",
    ),
)
