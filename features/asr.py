"""ASR stage: how sure the recogniser was, and what the recognised speech looks like."""

from __future__ import annotations

import polars as pl
from fpi.features.base import Feature
from fpi.features.common import (
    confidence_share,
    content_key,
    content_words,
    dialogue_relative,
    entropy,
    jaccard,
    missing_words,
    share_missing,
    top_margin,
    words,
)

STAGE = "asr"
_asr = pl.col("asr").struct

_text = _asr.field("text")
_words = words(_text)
_word_count = _words.list.len()
_nbest = _asr.field("nbest")
_nbest_confidences = _nbest.list.eval(pl.element().struct.field("confidence"))
_seconds = _asr.field("audio_ms") / 1000.0
_alternative_words = words(
    _nbest.list.slice(1).list.eval(pl.element().struct.field("text")).list.join(" ")
)

_hypothesis_key = content_key(pl.element().struct.field("text"))

#: Word support, over the first `SUPPORT_HYPOTHESES` hypotheses and the top text's first
#: `SUPPORT_WORDS` content words: the share of the n-best's confidence on hypotheses that hold
#: the word (a word posterior, as a confusion network gives); the weakest is where ASR was least
#: sure. Spelled out by position, not with `list.eval`, so polars computes each hypothesis's
#: text once; a hypothesis is its words between spaces, for a plain substring test.
SUPPORT_HYPOTHESES, SUPPORT_WORDS = 10, 6
_hypothesis = [_nbest.list.get(j, null_on_oob=True).struct for j in range(SUPPORT_HYPOTHESES)]
_spaced_hypothesis = [
    pl.concat_str(pl.lit(" "), words(h.field("text")).list.join(" "), pl.lit(" "))
    for h in _hypothesis
]
_hypothesis_confidence = [h.field("confidence").fill_null(0.0) for h in _hypothesis]
_top_content = content_words(_text)


def _word_support(position: int) -> pl.Expr:
    word = pl.concat_str(
        pl.lit(" "), _top_content.list.get(position, null_on_oob=True), pl.lit(" ")
    )
    held = pl.sum_horizontal(
        pl.when(hypothesis.str.contains(word, literal=True)).then(confidence).otherwise(0.0)
        for hypothesis, confidence in zip(_spaced_hypothesis, _hypothesis_confidence, strict=True)
    )
    return pl.when(word.is_not_null()).then(held / pl.sum_horizontal(_hypothesis_confidence))


FEATURES: tuple[Feature, ...] = (
    Feature(
        name="asr__confidence",
        stage=STAGE,
        expr=_asr.field("confidence"),
        description="ASR confidence of the top hypothesis",
        reason="ASR confidence was {value:.2f}",
    ),
    Feature(
        name="asr__nbest_size",
        stage=STAGE,
        expr=_nbest.list.len(),
        description="Number of ASR n-best hypotheses",
        reason="ASR returned {value:.0f} hypotheses",
    ),
    Feature(
        name="asr__top_margin",
        stage=STAGE,
        expr=top_margin(_nbest_confidences),
        description="Confidence of the best ASR hypothesis minus the second best",
        reason="ASR top-2 margin was {value:.2f}",
    ),
    Feature(
        name="asr__nbest_entropy",
        stage=STAGE,
        expr=entropy(_nbest_confidences),
        description="Entropy (nats) of the ASR n-best confidences",
        reason="ASR n-best entropy was {value:.2f}",
    ),
    Feature(
        name="asr__alt_distance",
        stage=STAGE,
        expr=1.0
        - jaccard(_words, words(_nbest.list.get(1, null_on_oob=True).struct.field("text"))),
        description="Word Jaccard distance of the second ASR hypothesis from the top text",
        reason="the second ASR hypothesis differed from the top text by {value:.2f}",
    ),
    Feature(
        name="asr__nbest_novel_words",
        stage=STAGE,
        expr=missing_words(_alternative_words, _words),
        description="Distinct words of the lower n-best hypotheses that are not in the top text",
        reason="the ASR alternatives held {value:.0f} words not in the top text",
    ),
    Feature(
        name="asr__words",
        stage=STAGE,
        expr=_word_count,
        description="Words in the recognised text",
        reason="the recognised text had {value:.0f} words",
    ),
    Feature(
        name="asr__chars",
        stage=STAGE,
        expr=_text.str.len_chars(),
        description="Characters in the recognised text",
        reason="the recognised text had {value:.0f} characters",
    ),
    Feature(
        name="asr__empty_text",
        stage=STAGE,
        expr=_word_count == 0,
        description="Nothing was recognised (no word in the text)",
        reason="{value:ASR recognised no words|ASR recognised some words}",
    ),
    Feature(
        name="asr__words_per_second",
        stage=STAGE,
        expr=pl.when(_seconds > 0).then(_word_count / _seconds),
        description="Speech rate: recognised words per second of audio",
        reason="speech rate was {value:.1f} words per second",
    ),
    Feature(
        name="asr__audio_s",
        stage=STAGE,
        expr=_seconds,
        description="Duration of the speech audio in seconds",
        reason="the audio lasted {value:.1f} s",
    ),
    Feature(
        name="asr__snr_db",
        stage=STAGE,
        expr=_asr.field("snr_db"),
        description="Estimated signal-to-noise ratio of the audio (dB)",
        reason="signal-to-noise ratio was {value:.0f} dB",
    ),
    *dialogue_relative(STAGE, _asr.field("confidence"), "ASR confidence"),
    Feature(
        name="asr__nbest_top_share",
        stage=STAGE,
        expr=pl.when(_nbest_confidences.list.sum() > 0).then(
            _nbest_confidences.list.first() / _nbest_confidences.list.sum()
        ),
        description="Share of the ASR n-best's total confidence held by the top hypothesis",
        reason="the top ASR hypothesis held {value:.0%} of the n-best's confidence",
        missing="ASR logged no scored n-best",
    ),
    Feature(
        name="asr__top_words_not_in_alternatives",
        stage=STAGE,
        expr=pl.when(_nbest.list.len() > 1).then(share_missing(_words, _alternative_words)),
        description="Share of the top ASR text's words that no other n-best hypothesis has",
        reason="{value:.0%} of the recognised words appeared in no other ASR hypothesis",
        missing="ASR logged no alternative hypotheses",
    ),
    Feature(
        name="asr__content_words",
        stage=STAGE,
        expr=content_words(_text).list.len(),
        description="Content words in the recognised text (fillers and function words left out)",
        reason="the recognised text had {value:.0f} content words",
    ),
    Feature(
        name="asr__nbest_same_content_share",
        stage=STAGE,
        expr=pl.when(_nbest.list.len() > 1).then(
            confidence_share(_nbest, _hypothesis_key == _hypothesis_key.first())
        ),
        description="Share of the ASR n-best's confidence on hypotheses with the top text's "
        "content words",
        reason="{value:.0%} of the ASR n-best's confidence said the same content words as the top",
        missing="ASR logged no scored alternative hypotheses",
    ),
    Feature(
        name="asr__weakest_word_support",
        stage=STAGE,
        expr=pl.min_horizontal(_word_support(k) for k in range(SUPPORT_WORDS)),
        description="Least support of any content word of the top ASR text: the share of the "
        "n-best's confidence on hypotheses that hold the word",
        reason="the least sure recognised word had {value:.0%} of the ASR n-best's support",
        missing="ASR logged no scored n-best with content words",
    ),
)
