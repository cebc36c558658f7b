"""Result stage: what the assistant did and said back, and how long it took."""

from __future__ import annotations

import polars as pl
from fpi.features.base import Feature
from fpi.features.common import missing_words, words

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
)
