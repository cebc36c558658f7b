"""Wake stage: how the turn was opened, and how sure the detectors were that it was meant."""

from __future__ import annotations

import polars as pl
from fpi.features.base import Feature

STAGE = "wake"
_wake = pl.col("wake").struct

_detector = _wake.field("confidence")
_verifier = _wake.field("verifier_confidence")

FEATURES: tuple[Feature, ...] = (
    Feature(
        name="wake__mode",
        stage=STAGE,
        expr=_wake.field("mode"),
        description="How the turn was opened (wake_word, follow_up, button)",
        reason="the wake mode was {value}",
        categorical=True,
    ),
    Feature(
        name="wake__device_type",
        stage=STAGE,
        expr=pl.col("device").struct.field("type"),
        description="Type of the device that woke (speaker, tv, car, ...)",
        reason="the device type was {value}",
        categorical=True,
    ),
    Feature(
        name="wake__detector_score",
        stage=STAGE,
        expr=_detector,
        description="On-device wake word detector score",
        reason="wake word detector score was {value:.2f}",
    ),
    Feature(
        name="wake__verifier_score",
        stage=STAGE,
        expr=_verifier,
        description="Cloud-side wake verification score",
        reason="cloud wake verifier score was {value:.2f}",
    ),
    Feature(
        name="wake__detector_minus_verifier",
        stage=STAGE,
        expr=_detector - _verifier,
        description="Detector score minus verifier score (their disagreement)",
        reason="wake detector and verifier disagreed by {value:+.2f}",
    ),
)
