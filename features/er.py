"""Entity resolution stage: how many entities resolved, how sure, and how far from what was said."""

from __future__ import annotations

import polars as pl
from fpi.features.base import Feature
from fpi.features.common import jaccard, words

STAGE = "er"

_entities = pl.col("er").struct.field("entities")
_entity = pl.element().struct


def _field(name: str) -> pl.Expr:
    return _entities.list.eval(_entity.field(name))


def _status_count(status: str) -> pl.Expr:
    return _field("status").list.count_matches(status)


_mention = _entity.field("mention")
_resolved = _entity.field("resolved_value")
_resolved_pairs = _entities.list.eval(_resolved.is_not_null() & _mention.is_not_null())

FEATURES: tuple[Feature, ...] = (
    Feature(
        name="er__entity_count",
        stage=STAGE,
        expr=_entities.list.len(),
        description="Number of entities sent to resolution",
        reason="ER handled {value:.0f} entities",
        missing="entity resolution did not run",
    ),
    Feature(
        name="er__resolved_count",
        stage=STAGE,
        expr=_status_count("resolved"),
        description="Entities resolved to one catalogue value",
        reason="{value:.0f} entities resolved cleanly",
        missing="entity resolution did not run",
    ),
    Feature(
        name="er__ambiguous_count",
        stage=STAGE,
        expr=_status_count("ambiguous"),
        description="Entities left ambiguous between several catalogue values",
        reason="{value:.0f} entities were ambiguous",
        missing="entity resolution did not run",
    ),
    Feature(
        name="er__no_match_count",
        stage=STAGE,
        expr=_status_count("no_match"),
        description="Entities with no catalogue match",
        reason="{value:.0f} entities found no match",
        missing="entity resolution did not run",
    ),
    Feature(
        name="er__min_score",
        stage=STAGE,
        expr=_field("score").list.min(),
        description="Lowest entity resolution score",
        reason="the lowest entity resolution score was {value:.2f}",
        missing="no entity had a resolution score",
    ),
    Feature(
        name="er__mean_score",
        stage=STAGE,
        expr=_field("score").list.mean(),
        description="Mean entity resolution score",
        reason="entity resolution scores averaged {value:.2f}",
        missing="no entity had a resolution score",
    ),
    Feature(
        name="er__max_candidates",
        stage=STAGE,
        expr=_field("candidates").list.max(),
        description="Most catalogue candidates any entity had",
        reason="an entity had {value:.0f} catalogue candidates",
        missing="no entity had a candidate count",
    ),
    Feature(
        name="er__max_mention_distance",
        stage=STAGE,
        expr=_entities.list.eval(1.0 - jaccard(words(_mention), words(_resolved))).list.max(),
        description="Largest word Jaccard distance between a mention and its resolved value",
        reason="resolved values strayed from what was said by up to {value:.2f} (word distance)",
        missing="no entity had both a mention and a resolved value",
    ),
    Feature(
        name="er__exact_match_share",
        stage=STAGE,
        expr=pl.when(_resolved_pairs.list.sum() > 0).then(
            _entities.list.eval(
                _mention.str.to_lowercase() == _resolved.str.to_lowercase()
            ).list.sum()
            / _resolved_pairs.list.sum()
        ),
        description="Share of resolved values equal to their mention (ignoring case)",
        reason="{value:.0%} of resolved values matched the mention exactly",
        missing="no entity had both a mention and a resolved value",
    ),
)
