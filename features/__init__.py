"""Feature definitions, one module per pipeline stage (installed as `fpi.features`)."""

from fpi.features import asr, context, er, nlu, result, wake
from fpi.features.base import Feature

#: Every feature, in stage order (wake, asr, nlu, er, result, context).
CATALOG: tuple[Feature, ...] = (
    *wake.FEATURES,
    *asr.FEATURES,
    *nlu.FEATURES,
    *er.FEATURES,
    *result.FEATURES,
    *context.FEATURES,
)

__all__ = ["CATALOG", "Feature"]
