"""NLU stage: what the text was understood as, how sure NLU was, and whether it suits the device."""

from __future__ import annotations

import polars as pl
from fpi.features.base import Feature
from fpi.features.common import (
    AFFIRMATION_PATTERN,
    AFFIRMING_INTENT,
    HEARD_CONTENT_STEMS,
    NEGATING_INTENT,
    NEGATION_PATTERN,
    confidence_share,
    dialogue_relative,
    entropy,
    missing_words,
    share_missing,
    top_margin,
    word_stems,
)

STAGE = "nlu"
_nlu = pl.col("nlu").struct
_device = pl.col("device").struct

_domain = _nlu.field("domain")
_intent = _nlu.field("intent")
_nbest = _nlu.field("nbest")
_nbest_confidences = _nbest.list.eval(pl.element().struct.field("confidence"))
_slots = _nlu.field("slots")
_slot_words = word_stems(_slots.list.eval(pl.element().struct.field("value")).list.join(" "))
_asr = pl.col("asr").struct
_asr_words = word_stems(_asr.field("text"))
_asr_alternative_words = word_stems(
    _asr.field("nbest").list.slice(1).list.eval(pl.element().struct.field("text")).list.join(" ")
)
_slot_words_not_top = _slot_words.list.set_difference(_asr_words)

#: The device table, kept small on purpose: a domain or intent whose name holds one of these
#: words (case-insensitive) needs a screen (to read a book is to show its pages), and these
#: device types cannot show one (a car's screen does not play video while driving).
SCREEN_WORDS = r"(?i)video|movie|film|photo|picture|watch|read ?book"
SCREENLESS_DEVICE_TYPES = ("speaker", "headphones", "car")

_needs_screen = pl.concat_str(_domain, _intent, separator=" ", ignore_nulls=True).str.contains(
    SCREEN_WORDS
)
_lacks_screen = _device.field("has_screen").not_() | _device.field("type").is_in(
    SCREENLESS_DEVICE_TYPES
)

_interpretation_intent = pl.element().struct.field("intent")
_slot_text = _slots.list.eval(pl.element().struct.field("value")).list.join(" ")
_text = _asr.field("text")
#: What NLU's reading accounts for: the words (by their stems) of the intent's name (acts
#: joined with "+", snake_case or CamelCase), of the slot names and of the slot values; null
#: when NLU did not run.
_reading = pl.concat_str(
    _intent.str.replace_all(r"(\p{Ll})(\p{Lu})", "$1 $2"),
    _slots.list.eval(pl.element().struct.field("name")).list.join(" "),
    _slot_text,
    separator=" ",
    ignore_nulls=True,
)
_understood = pl.when(pl.col("nlu").is_not_null()).then(word_stems(_reading))
_top_confidence_share = _nbest_confidences.list.first() / _nbest_confidences.list.sum()

_polarity_disagrees = (
    _text.str.contains(NEGATION_PATTERN) != _intent.str.contains(NEGATING_INTENT)
) | (_text.str.contains(AFFIRMATION_PATTERN) != _intent.str.contains(AFFIRMING_INTENT))

FEATURES: tuple[Feature, ...] = (
    Feature(
        name="nlu__domain",
        stage=STAGE,
        expr=_domain,
        description="Domain NLU chose",
        reason="NLU chose the {value} domain",
        categorical=True,
    ),
    Feature(
        name="nlu__intent",
        stage=STAGE,
        expr=_intent,
        description="Intent NLU chose",
        reason="NLU chose the {value} intent",
        categorical=True,
    ),
    Feature(
        name="nlu__confidence",
        stage=STAGE,
        expr=_nlu.field("confidence"),
        description="NLU confidence of the chosen interpretation",
        reason="NLU confidence was {value:.2f}",
        missing="NLU reported no confidence",
    ),
    Feature(
        name="nlu__nbest_size",
        stage=STAGE,
        expr=_nbest.list.len(),
        description="Number of NLU n-best interpretations",
        reason="NLU returned {value:.0f} interpretations",
    ),
    Feature(
        name="nlu__top_margin",
        stage=STAGE,
        expr=top_margin(_nbest_confidences),
        description="Confidence of the best NLU interpretation minus the second best",
        reason="NLU top-2 margin was {value:.2f}",
        missing="NLU returned no scored interpretation",
    ),
    Feature(
        name="nlu__nbest_entropy",
        stage=STAGE,
        expr=entropy(_nbest_confidences),
        description="Entropy (nats) of the NLU n-best confidences",
        reason="NLU n-best entropy was {value:.2f}",
    ),
    Feature(
        name="nlu__top2_domains_differ",
        stage=STAGE,
        expr=_nbest.list.get(0, null_on_oob=True).struct.field("domain")
        != _nbest.list.get(1, null_on_oob=True).struct.field("domain"),
        description="The two best NLU interpretations name different domains",
        reason="{value:NLU wavered between two domains|NLU's top two agreed on the domain}",
    ),
    Feature(
        name="nlu__screen_intent_without_screen",
        stage=STAGE,
        expr=pl.when(_domain.is_not_null() | _intent.is_not_null()).then(
            _needs_screen & _lacks_screen
        ),
        description="NLU chose a screen-only domain/intent (video, photos) on a screenless device",
        reason="{value:NLU routed to a screen-only intent on a screenless device"
        "|the intent suited the device}",
    ),
    Feature(
        name="nlu__slot_count",
        stage=STAGE,
        expr=_slots.list.len(),
        description="Number of slots NLU filled",
        reason="NLU filled {value:.0f} slots",
    ),
    Feature(
        name="nlu__min_slot_confidence",
        stage=STAGE,
        expr=_slots.list.eval(pl.element().struct.field("confidence")).list.min(),
        description="Lowest confidence among the filled slots",
        reason="the least sure slot had confidence {value:.2f}",
        missing="no filled slot had a confidence",
    ),
    Feature(
        name="nlu__slot_words_not_heard",
        stage=STAGE,
        expr=missing_words(_slot_words, _asr_words),
        description="Distinct words of the slot values that are not in the recognised text",
        reason="{value:.0f} slot value words were not in what ASR heard",
        missing="there were no slot values or no recognised text to compare",
    ),
    *dialogue_relative(STAGE, _nlu.field("confidence"), "NLU confidence"),
    Feature(
        name="nlu__slot_words_not_heard_share",
        stage=STAGE,
        expr=share_missing(_slot_words, _asr_words),
        description="Share of the slot values' words that are not in the recognised text",
        reason="{value:.0%} of the slot value words were not in what ASR heard",
        missing="NLU filled no slot with words to compare",
    ),
    Feature(
        name="nlu__slot_words_only_in_alternatives",
        stage=STAGE,
        expr=pl.when(_slot_words.list.len() > 0).then(
            _slot_words_not_top.list.set_intersection(_asr_alternative_words).list.len()
        ),
        description="Slot value words missing from the top ASR text but in a lower ASR hypothesis",
        reason="{value:.0f} slot value words came from a lower ASR hypothesis, not the top one",
        missing="NLU filled no slot with words to compare",
    ),
    Feature(
        name="nlu__slot_words_in_no_hypothesis",
        stage=STAGE,
        expr=pl.when(_slot_words.list.len() > 0).then(
            _slot_words_not_top.list.set_difference(_asr_alternative_words).list.len()
        ),
        description="Slot value words that no ASR hypothesis contains (NLU's own wording)",
        reason="{value:.0f} slot value words were in no ASR hypothesis",
        missing="NLU filled no slot with words to compare",
    ),
    Feature(
        name="nlu__slot_names",
        stage=STAGE,
        expr=pl.when(_slots.list.len() > 0).then(
            _slots.list.eval(pl.element().struct.field("name"))
            .list.unique()
            .list.sort()
            .list.join("+")
        ),
        description="The names of the slots NLU filled, sorted and joined with +",
        reason="NLU filled the slots {value}",
        categorical=True,
        missing="NLU filled no slots",
    ),
    Feature(
        name="nlu__top_intent_share",
        stage=STAGE,
        expr=confidence_share(_nbest, _interpretation_intent == _interpretation_intent.first()),
        description="Share of the NLU n-best's confidence behind the top interpretation's intent",
        reason="{value:.0%} of the NLU n-best's confidence backed the chosen intent",
        missing="NLU logged no scored interpretations",
    ),
    Feature(
        name="nlu__no_intent_share",
        stage=STAGE,
        expr=confidence_share(_nbest, _interpretation_intent.is_null()),
        description="Share of the NLU n-best's confidence on reading no intent at all",
        reason="{value:.0%} of the NLU n-best's confidence said nothing was asked",
        missing="NLU logged no scored interpretations",
    ),
    Feature(
        name="nlu__polarity_disagrees",
        stage=STAGE,
        expr=_polarity_disagrees,
        description="The text says yes or no and the intent does not, or the other way round",
        reason="{value:the intent's yes/no disagreed with the words|the intent's yes/no matched}",
        missing="no recognised text or no intent to compare",
    ),
    Feature(
        name="nlu__heard_words_not_understood",
        stage=STAGE,
        expr=HEARD_CONTENT_STEMS.list.set_difference(_understood).list.len(),
        description="Content words of the recognised text that neither the intent's name nor a "
        "slot's name or value accounts for (by their first four letters)",
        reason="NLU's reading left {value:.0f} of the recognised content words unaccounted for",
        missing="no recognised text, or NLU did not run",
    ),
    Feature(
        name="nlu__heard_words_not_understood_share",
        stage=STAGE,
        expr=share_missing(HEARD_CONTENT_STEMS, _understood),
        description="Share of the recognised content words that neither the intent's name nor a "
        "slot's name or value accounts for",
        reason="NLU's reading left {value:.0%} of the recognised content words unaccounted for",
        missing="no recognised content words, or NLU did not run",
    ),
    Feature(
        name="nlu__same_intent_runner_up_share",
        stage=STAGE,
        expr=confidence_share(
            _nbest, _interpretation_intent.eq_missing(_interpretation_intent.first())
        )
        - _top_confidence_share,
        description="Share of the NLU n-best's confidence on lower interpretations with the top "
        "one's intent (the same request read with other slots)",
        reason="{value:.0%} of the NLU n-best's confidence read the same intent another way",
        missing="NLU logged no scored interpretations",
    ),
)
