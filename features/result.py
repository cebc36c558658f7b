"""Result stage: what the assistant did and said back, and how long it took."""

from __future__ import annotations

import polars as pl
from fpi.features.base import Feature
from fpi.features.common import (
    APOLOGY_PATTERN,
    HEARD_CONTENT_STEMS,
    missing_words,
    share_missing,
    stems,
    words,
)

STAGE = "result"
_result = pl.col("result").struct
_tts = pl.col("tts").struct

_response = pl.coalesce(_result.field("response_text"), _tts.field("text"))
_response_words = words(_response)
_entity_values = (
    pl.col("er")
    .struct.field("entities")
    .list.eval(pl.element().struct.field("resolved_value"))
    .list.join(" ")
)

_slot_words = words(
    pl.col("nlu").struct.field("slots").list.eval(pl.element().struct.field("value")).list.join(" ")
)
_slot_words_not_said = share_missing(stems(_slot_words), stems(_response_words))
_entity_words = words(_entity_values)

FEATURES: tuple[Feature, ...] = (
    Feature(
        name="result__status",
        stage=STAGE,
        expr=_result.field("status"),
        description="Outcome the assistant reported (success, no_content, error, ...)",
        reason="the result status was {value}",
        categorical=True,
    ),
    Feature(
        name="result__handler",
        stage=STAGE,
        expr=_result.field("handler"),
        description="Component that handled the request",
        reason="the request was handled by {value}",
        categorical=True,
    ),
    Feature(
        name="result__action",
        stage=STAGE,
        expr=_result.field("action"),
        description="Action the assistant took (or its dialogue acts)",
        reason="the assistant's action was {value}",
        categorical=True,
    ),
    Feature(
        name="result__latency_ms",
        stage=STAGE,
        expr=_result.field("latency_ms"),
        description="Time from end of speech to the response (ms)",
        reason="the response took {value:.0f} ms",
        missing="the response time was not recorded",
    ),
    Feature(
        name="result__response_words",
        stage=STAGE,
        expr=_response_words.list.len(),
        description="Words in the response (its text, else the TTS text)",
        reason="the response had {value:.0f} words",
    ),
    Feature(
        name="result__asks_question",
        stage=STAGE,
        expr=_response.str.strip_chars().str.ends_with("?"),
        description="The response ends with a question",
        reason="{value:the assistant answered with a question|the assistant did not ask back}",
    ),
    Feature(
        name="result__entity_words_not_said",
        stage=STAGE,
        expr=missing_words(words(_entity_values), _response_words),
        description="Distinct words of the resolved entities that the response does not say",
        reason="the response left out {value:.0f} words of the resolved entities",
    ),
    Feature(
        name="result__tts_s",
        stage=STAGE,
        expr=_tts.field("duration_ms") / 1000.0,
        description="Duration of the spoken response (s)",
        reason="the spoken response lasted {value:.1f} s",
    ),
    Feature(
        name="result__apologises",
        stage=STAGE,
        expr=pl.when(_response.is_not_null()).then(_response.str.contains(APOLOGY_PATTERN)),
        description="The response apologises or says it could not do it",
        reason="{value:the assistant apologised or said it could not"
        "|the assistant did not apologise}",
        missing="no response was logged",
    ),
    Feature(
        name="result__slot_words_not_said_share",
        stage=STAGE,
        expr=pl.when(_response.is_not_null()).then(_slot_words_not_said),
        description="Share of the slot values' words (by their first four letters) that the "
        "response does not mention",
        reason="the response left out {value:.0%} of what the user asked for (slot values)",
        missing="no slot values or no response to compare",
    ),
    Feature(
        name="result__confirms_slot_value",
        stage=STAGE,
        expr=pl.when(_response.is_not_null() & (_slot_words.list.len() > 0)).then(
            _response.str.strip_chars().str.ends_with("?") & (_slot_words_not_said < 1.0)
        ),
        description="The response asks back about a value the user gave (a confirmation)",
        reason="{value:the assistant asked the user to confirm a value"
        "|the assistant did not ask to confirm}",
        missing="no slot values or no response to compare",
    ),
    Feature(
        name="result__entity_words_not_said_share",
        stage=STAGE,
        expr=pl.when(_response.is_not_null()).then(share_missing(_entity_words, _response_words)),
        description="Share of the resolved entities' words that the response does not say",
        reason="the response left out {value:.0%} of the resolved entities' words",
        missing="no resolved entity or no response to compare",
    ),
    Feature(
        name="result__heard_words_not_said_share",
        stage=STAGE,
        expr=pl.when(_response.is_not_null()).then(
            share_missing(HEARD_CONTENT_STEMS, stems(_response_words))
        ),
        description="Share of the recognised content words (by their first four letters) that "
        "the response does not mention",
        reason="the response left out {value:.0%} of the recognised content words",
        missing="no recognised content words or no response to compare",
    ),
)
