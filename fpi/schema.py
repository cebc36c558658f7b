"""The `fpi-trace/1` contract: field names, polars dtypes, enums and result records.

Every other module imports names from here; nothing else spells a trace field or a
class name as a literal definition.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

import polars as pl

TRACE_FORMAT = "fpi-trace/1"


class Stage(StrEnum):
    """A failure point: the earliest pipeline stage that failed irrecoverably (or none)."""

    CORRECT = "correct"
    FALSE_WAKE = "false_wake"
    ASR = "asr"
    NLU = "nlu"
    ER = "er"
    RESULT = "result"


#: The six classes in model order (pipeline order, `correct` first).
FAILURE_POINTS: tuple[str, ...] = tuple(s.value for s in Stage)
#: The stages that can fail, i.e. every class but `correct`.
DEFECT_STAGES: tuple[str, ...] = FAILURE_POINTS[1:]
#: Label given instead of a class when the model abstains (`--abstain-below`).
UNCERTAIN = "uncertain"

DEVICE_TYPES = ("speaker", "screen", "tv", "car", "phone", "headphones", "other")
WAKE_MODES = ("wake_word", "follow_up", "button")
ER_STATUSES = ("resolved", "ambiguous", "no_match")
RESULT_STATUSES = ("success", "partial", "no_content", "error", "unsupported", "clarification")
FEEDBACK_VALUES = ("positive", "negative")

# ---- nested dtypes -------------------------------------------------------------------

DEVICE = pl.Struct({"id": pl.String, "type": pl.String, "has_screen": pl.Boolean})
WAKE = pl.Struct({"mode": pl.String, "confidence": pl.Float64, "verifier_confidence": pl.Float64})
ASR_HYPOTHESIS = pl.Struct({"text": pl.String, "confidence": pl.Float64})
ASR = pl.Struct(
    {
        "text": pl.String,
        "confidence": pl.Float64,
        "nbest": pl.List(ASR_HYPOTHESIS),
        "audio_ms": pl.Float64,
        "snr_db": pl.Float64,
    }
)
NLU_HYPOTHESIS = pl.Struct({"domain": pl.String, "intent": pl.String, "confidence": pl.Float64})
SLOT = pl.Struct({"name": pl.String, "value": pl.String, "confidence": pl.Float64})
NLU = pl.Struct(
    {
        "domain": pl.String,
        "intent": pl.String,
        "confidence": pl.Float64,
        "nbest": pl.List(NLU_HYPOTHESIS),
        "slots": pl.List(SLOT),
    }
)
ENTITY = pl.Struct(
    {
        "slot": pl.String,
        "mention": pl.String,
        "resolved_value": pl.String,
        "resolved_id": pl.String,
        "score": pl.Float64,
        "candidates": pl.Int64,
        "status": pl.String,
    }
)
ER = pl.Struct({"entities": pl.List(ENTITY)})
RESULT = pl.Struct(
    {
        "status": pl.String,
        "handler": pl.String,
        "action": pl.String,
        "response_text": pl.String,
        "latency_ms": pl.Float64,
    }
)
TTS = pl.Struct({"text": pl.String, "duration_ms": pl.Float64})
SIGNALS = pl.Struct(
    {"barge_in": pl.Boolean, "barge_in_ms": pl.Float64, "explicit_feedback": pl.String}
)
LABEL = pl.Struct({"failure_point": pl.String, "source": pl.String})

#: Columns as they are read from JSON: timestamps are RFC 3339 text and
#: `reference_labels` (an object with free keys) is kept as its JSON text.
TRACE_JSON_SCHEMA = pl.Schema(
    {
        "dialogue_id": pl.String,
        "turn_index": pl.Int64,
        "timestamp": pl.String,
        "turn_id": pl.String,
        "locale": pl.String,
        "user_id": pl.String,
        "device": DEVICE,
        "wake": WAKE,
        "asr": ASR,
        "nlu": NLU,
        "er": ER,
        "result": RESULT,
        "tts": TTS,
        "signals": SIGNALS,
        "label": LABEL,
        "reference_labels": pl.String,
    }
)

TIMESTAMP_DTYPE = pl.Datetime("us", "UTC")

#: The in-memory trace frame every library function takes: `timestamp` parsed to UTC,
#: `turn_id` filled in, plus where each record came from (`source_file`, `source_line`,
#: a 1-based JSONL line or a 0-based Parquet row).
TRACE_SCHEMA = pl.Schema(
    {
        **{k: (TIMESTAMP_DTYPE if k == "timestamp" else v) for k, v in TRACE_JSON_SCHEMA.items()},
        "source_file": pl.String,
        "source_line": pl.Int64,
    }
)

REQUIRED_FIELDS = ("dialogue_id", "turn_index", "timestamp")
DIALOGUE_KEY = ("dialogue_id", "turn_index")

# ---- result records ------------------------------------------------------------------

REASON = pl.Struct(
    {"feature": pl.String, "value": pl.String, "contribution": pl.Float64, "text": pl.String}
)

PROBABILITY_COLUMNS: tuple[str, ...] = tuple(f"p_{c}" for c in FAILURE_POINTS)

#: One row per triaged turn: what `fpi triage` writes and `fpi report` / `fpi route` read.
TRIAGE_SCHEMA = pl.Schema(
    {
        "turn_id": pl.String,
        "dialogue_id": pl.String,
        "turn_index": pl.Int64,
        "timestamp": TIMESTAMP_DTYPE,
        "failure_point": pl.String,
        "predicted": pl.String,
        "confidence": pl.Float64,
        **{p: pl.Float64 for p in PROBABILITY_COLUMNS},
        "reasons": pl.List(REASON),
        "locale": pl.String,
        "device_type": pl.String,
        "asr_text": pl.String,
        "domain": pl.String,
        "intent": pl.String,
        "result_status": pl.String,
        "label": pl.String,
    }
)
#: Columns `fpi.owners.assign_owners` adds to triage rows (and triage files may carry).
OWNER = "owner"
OWNER_CONTACT = "owner_contact"


@dataclass(frozen=True, slots=True)
class Problem:
    """One validation finding about one input record."""

    file: str
    line: int | None  # 1-based JSONL line, or 0-based Parquet row; None for a whole file
    field: str  # dotted path, e.g. "asr.nbest[1].confidence"; "" for the whole record
    expected: str
    found: str

    @property
    def location(self) -> str:
        return self.file if self.line is None else f"{self.file}:{self.line}"

    @property
    def message(self) -> str:
        where = f" field {self.field}:" if self.field else ""
        return f"{self.location}:{where} expected {self.expected}, found {self.found}"


@dataclass(frozen=True, slots=True)
class Reject:
    """A record left out of the output, written verbatim with every reason it failed."""

    file: str
    line: int | None
    record: str  # the raw JSONL line, or the Parquet row as JSON
    problems: tuple[Problem, ...]

    def to_json(self) -> dict:
        return {
            "file": self.file,
            "line": self.line,
            "reasons": [
                {"field": p.field, "expected": p.expected, "found": p.found, "message": p.message}
                for p in self.problems
            ],
            "record": self.record,
        }
