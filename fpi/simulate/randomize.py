"""Domain-randomised pipelines: how a simulated assistant's stages behave and what it logs.

Real pipelines differ in how each stage's confidence is calibrated, how often each stage fails,
which fields they log at all (no wake score on a phone line, no ASR confidence in Home
Assistant, no n-best in many), what their result statuses mean and how their users react.
A `PipelineConfig` fixes all of that for one simulated pipeline: the world it runs in (a
`Scenario` with failure-rate and user-reaction knobs) and how its logs look (`observe`, a
pure function of a turn record and a noise stream, so the world's draws stay untouched).
`draw_pipeline` draws one at random; `fpi.simulate.simulate_randomized` draws a fresh one for
every block of dialogues, so a model trained on it must learn what holds across pipelines.
"""

from __future__ import annotations

import copy
import math
import zlib
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from fpi.hashing import unit_hash
from fpi.schema import RESULT_STATUSES
from fpi.simulate.pipeline import Scenario

#: What a pipeline's result statuses may mean: the simulator's status -> the logged one.
STATUS_DIALECTS: dict[str, dict[str, str | None]] = {
    "native": {},
    # reports only whether a handler ran: "nothing found" and refusals are successes
    "coarse": {"no_content": "success", "unsupported": "success", "partial": "success"},
    # the same words for other outcomes (statuses stay within `fpi-trace/1`'s enum)
    "remapped": {
        "no_content": "error",
        "error": "no_content",
        "partial": "error",
        "unsupported": "no_content",
        "clarification": "partial",
    },
    # errors and timeouts are logged as successes (the backend swallows them)
    "optimistic": {"error": "success", "partial": "success"},
    # no status at all
    "absent": dict.fromkeys(RESULT_STATUSES),
}


TERSE_RESPONSE = "Okay."
NEXT_QUESTIONS = (
    "Anything else?",
    "What else can I do for you?",
    "Is there anything else you need?",
    "What would you like next?",
)
#: A chatty assistant's pleasantries around its responses: an opener for an answer, one for
#: anything else (a refusal, a question back), and an offer after either.
CHATTY_OPENERS = ("Sure!", "Alright, here you go.", "Great choice.", "Okay, I can help with that.")
CHATTY_OTHER_OPENERS = ("Hmm, let me check.", "I'm sorry about that.", "Okay, let me see.")
CHATTY_CLOSERS = (
    "Is there anything else I can help you with today?",
    "Let me know if you need anything else.",
    "I hope that helps!",
    "Just ask me if you need something more.",
)


@dataclass(frozen=True, slots=True)
class Calibration:
    """A stage's confidence as logged: sigmoid(scale * logit(p) + shift + noise * z)."""

    scale: float = 1.0
    shift: float = 0.0
    noise: float = 0.0

    def apply(self, p: float | None, z: float) -> float | None:
        if p is None:
            return None
        q = min(max(float(p), 1e-4), 1.0 - 1e-4)
        x = self.scale * math.log(q / (1.0 - q)) + self.shift + self.noise * z
        return round(1.0 / (1.0 + math.exp(-x)), 4)


@dataclass(frozen=True, slots=True)
class PipelineConfig:
    """One simulated pipeline: its world (failure rates, users) and what its logs look like."""

    name: str
    world: Scenario = field(default_factory=lambda: Scenario("base"))
    wake: Calibration = Calibration()
    asr: Calibration = Calibration()
    nlu: Calibration = Calibration()
    slots: Calibration = Calibration()
    er: Calibration = Calibration()
    status_dialect: str = "native"
    # which fields the pipeline logs at all
    log_wake_scores: bool = True
    log_asr_confidence: bool = True
    log_asr_nbest: bool = True
    log_snr: bool = True
    log_nlu_confidence: bool = True
    log_nlu_nbest: bool = True
    log_slot_confidence: bool = True
    log_er_scores: bool = True
    log_names: bool = True  # domain, intent, handler and action names
    log_latency: bool = True
    log_tts: bool = True
    log_barge_in: bool = True
    log_feedback: bool = True
    # an open line (a telephone system): no wake word, every turn logged as a follow-up
    open_line: bool = False
    # successful responses do not say back what was asked ("Okay.")
    terse_responses: bool = False
    # the share of requests typed (a chat window, a phone app): no wake word, no ASR, no TTS
    typed_share: float = 0.0
    # the share of successful responses that go on to ask for what is next (form filling)
    asks_next_share: float = 0.0
    # NLU logs slot values as catalogue ids (canonical values), not the words said
    canonical_slots: bool = False
    # the share of responses wrapped in pleasantries (a chatty assistant): an opener before
    # the response and an offer after it, whatever the outcome
    chatty_share: float = 0.0

    def describe(self) -> dict[str, Any]:
        """The configuration as plain JSON-able values (for benchmark tables and metadata)."""
        return asdict(self)

    def observe(
        self, record: dict, z: float, *, turn_id: str = "", failure_point: str = ""
    ) -> dict:
        """The turn `record` as this pipeline logs it (a new dict; `record` is not changed).

        `z` is one standard normal draw shared by all of the turn's confidences, so a stage's
        n-best keeps its order after recalibration. Per-turn choices of how the turn is logged
        (typed, a question after the answer) come from a hash of `turn_id`, so the world's and
        the noise's draws stay untouched; `failure_point` keeps them possible (a typed request
        never failed in ASR).
        """
        out = copy.deepcopy(record)
        if self._typed(turn_id, failure_point):
            out["wake"] = out["asr"] = out["tts"] = None
            if out["signals"] is not None:
                out["signals"]["barge_in"] = out["signals"]["barge_in_ms"] = None
        wake, asr, nlu, er = out["wake"], out["asr"], out["nlu"], out["er"]
        result, signals = out["result"], out["signals"]
        if wake is not None and self.open_line:
            out["wake"] = wake = {"mode": "follow_up", "confidence": None,
                                  "verifier_confidence": None}  # fmt: skip
        elif wake is not None:
            if self.log_wake_scores:
                wake["confidence"] = self.wake.apply(wake["confidence"], z)
                wake["verifier_confidence"] = self.wake.apply(wake["verifier_confidence"], z)
            else:
                wake["confidence"] = wake["verifier_confidence"] = None
        if asr is not None:
            asr["confidence"] = (
                self.asr.apply(asr["confidence"], z) if self.log_asr_confidence else None
            )
            if not self.log_asr_nbest:
                asr["nbest"] = [{"text": asr["text"], "confidence": asr["confidence"]}]
            elif asr["nbest"]:
                for hyp in asr["nbest"]:
                    hyp["confidence"] = (
                        self.asr.apply(hyp["confidence"], z) if self.log_asr_confidence else None
                    )
            if not self.log_snr:
                asr["snr_db"] = None
        if nlu is not None:
            nlu["confidence"] = (
                self.nlu.apply(nlu["confidence"], z) if self.log_nlu_confidence else None
            )
            if not self.log_nlu_nbest:
                nlu["nbest"] = None
            else:
                for hyp in nlu["nbest"] or ():
                    hyp["confidence"] = (
                        self.nlu.apply(hyp["confidence"], z) if self.log_nlu_confidence else None
                    )
            for slot in nlu["slots"] or ():
                slot["confidence"] = (
                    self.slots.apply(slot["confidence"], z) if self.log_slot_confidence else None
                )
            if not self.log_names:
                nlu["domain"] = nlu["intent"] = None
                for hyp in nlu["nbest"] or ():
                    hyp["domain"] = hyp["intent"] = None
        if er is not None:
            for entity in er["entities"]:
                if self.log_er_scores:
                    entity["score"] = self.er.apply(entity["score"], z)
                else:
                    entity["score"] = entity["candidates"] = None
        if self.canonical_slots and nlu is not None:
            ids = {e["slot"]: e["resolved_id"] for e in (er or {}).get("entities") or ()}
            for slot in nlu["slots"] or ():
                slot["value"] = ids.get(slot["name"]) or slot["value"]
        if result is not None:
            response = self._response(result["response_text"], result["status"], turn_id)
            if response != result["response_text"]:
                result["response_text"] = response
                if out["tts"] is not None:
                    out["tts"]["text"] = response
        if result is not None:
            status = result["status"]
            result["status"] = STATUS_DIALECTS[self.status_dialect].get(status, status)
            if not self.log_names:
                result["handler"] = result["action"] = None
            if not self.log_latency:
                result["latency_ms"] = None
        if not self.log_tts:
            out["tts"] = None
        if signals is not None:
            if not self.log_barge_in:
                signals["barge_in"] = signals["barge_in_ms"] = None
            if not self.log_feedback:
                signals["explicit_feedback"] = None
            if all(v is None for v in signals.values()):
                out["signals"] = None
        return out

    def _response(self, response: str | None, status: str | None, turn_id: str) -> str | None:
        """The response as this pipeline words it: terse answers, a question after an answer
        (`asks_next_share`), pleasantries around any response (`chatty_share`)."""
        if status == "success":
            response = TERSE_RESPONSE if self.terse_responses else response
            if unit_hash(turn_id, "asks-next") < self.asks_next_share:
                response = f"{response} {_pick(NEXT_QUESTIONS, turn_id, 'next-question')}"
        if response and unit_hash(turn_id, "chatty") < self.chatty_share:
            openers = CHATTY_OPENERS if status == "success" else CHATTY_OTHER_OPENERS
            opener = _pick(openers, turn_id, "chatty-opener")
            response = f"{opener} {response} {_pick(CHATTY_CLOSERS, turn_id, 'chatty-closer')}"
        return response

    def _typed(self, turn_id: str, failure_point: str) -> bool:
        """Whether a turn was typed (a `typed_share` of turns). A typed request has no wake
        word and no recognition, so a turn that failed at the wake word or in ASR was spoken."""
        if failure_point in ("false_wake", "asr"):
            return False
        return unit_hash(turn_id, "typed") < self.typed_share


def _pick(options: tuple[str, ...], turn_id: str, purpose: str) -> str:
    """One of `options`, chosen by a hash of the turn (the world's draws stay untouched)."""
    return options[int(unit_hash(turn_id, purpose) * len(options))]


def _share_in_some(rng: np.random.Generator, chance: float, low: float, high: float) -> float:
    """With probability `chance`, a share drawn uniformly from [low, high] (rounded to 3
    places), else 0.0: a habit some worlds have and the rest lack."""
    if rng.random() >= chance:
        return 0.0
    return round(float(rng.uniform(low, high)), 3)


def _log_uniform(rng: np.random.Generator, low: float, high: float) -> float:
    return float(math.exp(rng.uniform(math.log(low), math.log(high))))


def _calibration(rng: np.random.Generator) -> Calibration:
    return Calibration(
        scale=round(_log_uniform(rng, 0.4, 2.0), 3),
        shift=round(float(rng.uniform(-1.5, 1.5)), 3),
        noise=round(float(rng.uniform(0.0, 0.8)), 3),
    )


def draw_pipeline(rng: np.random.Generator, name: str) -> PipelineConfig:
    """A random pipeline: failure rates, user habits, calibrations, statuses and logged fields."""
    habits = _channel_habits(name)
    world = Scenario(
        name,
        snr_shift=round(float(rng.uniform(-8.0, 4.0)), 2),
        asr_offset=round(float(rng.uniform(-0.6, 0.9)), 3),
        false_wake_scale=round(_log_uniform(rng, 0.3, 3.0), 3),
        nlu_error_scale=round(_log_uniform(rng, 0.3, 3.0), 3),
        er_scale=round(_log_uniform(rng, 0.3, 3.0), 3),
        result_scale=round(_log_uniform(rng, 0.3, 3.0), 3),
        barge_in_scale=round(_log_uniform(rng, 0.3, 2.0), 3),
        feedback_scale=round(_log_uniform(rng, 0.2, 3.0), 3),
        retry_scale=round(_log_uniform(rng, 0.5, 1.5), 3),
        unavailable_share=habits.pop("unavailable_share"),
        **_world_habits(name),
    )

    def logs(p: float) -> bool:
        return bool(rng.random() < p)

    return PipelineConfig(
        name=name,
        world=world,
        wake=_calibration(rng),
        asr=_calibration(rng),
        nlu=_calibration(rng),
        slots=_calibration(rng),
        er=_calibration(rng),
        status_dialect=str(rng.choice(list(STATUS_DIALECTS), p=[0.4, 0.15, 0.2, 0.1, 0.15])),
        log_wake_scores=logs(0.7),
        log_asr_confidence=logs(0.8),
        log_asr_nbest=logs(0.6),
        log_snr=logs(0.4),
        log_nlu_confidence=logs(0.85),
        log_nlu_nbest=logs(0.6),
        log_slot_confidence=logs(0.5),
        log_er_scores=logs(0.7),
        log_names=logs(0.6),
        log_latency=logs(0.8),
        log_tts=logs(0.7),
        log_barge_in=logs(0.7),
        log_feedback=logs(0.5),
        open_line=logs(0.2),
        terse_responses=logs(0.3),
        **habits,
    )


def _channel_habits(name: str) -> dict[str, Any]:
    """Knobs added after the others, drawn from a stream of their own (seeded by the
    pipeline's name) so every pipeline's other draws stay as they were: a quarter of pipelines
    take typed requests too (20-100% of their turns); a third ask what is next after most
    answers (form filling, as telephone and chat bots do); a quarter log slot values as
    canonical ids; a third of worlds have users asking for things the service does not
    have (5-25% of catalogue requests, answered "couldn't find", correctly); and 30% of
    pipelines are chatty, wrapping 50-100% of their responses in pleasantries."""
    rng = np.random.default_rng([zlib.crc32(name.encode()), 104729])
    typed = _share_in_some(rng, 0.25, 0.2, 1.0)
    asks_next = _share_in_some(rng, 0.33, 0.5, 1.0)
    canonical = bool(rng.random() < 0.25)
    unavailable = _share_in_some(rng, 0.33, 0.05, 0.25)
    chatty = _share_in_some(rng, 0.3, 0.5, 1.0)
    return {
        "chatty_share": chatty,
        "typed_share": typed,
        "asks_next_share": asks_next,
        "canonical_slots": canonical,
        "unavailable_share": unavailable,
    }


def _world_habits(name: str) -> dict[str, float]:
    """World knobs drawn from a stream of their own (seeded by the pipeline's name), so every
    pipeline's other draws stay as they were: in 70% of worlds some valid searches find
    nothing (5-40% of requests with slots, answered "not found", correctly); how sure NLU is of
    misrecognised text (0-1, from "unsure" to "as sure as of the truth"); how much the user's
    pause before the next turn depends on how the turn went (0-1) and how quick users are
    (0.5-2x); and in half the worlds 30-100% of false wakes are noise bursts heard as a word or
    two (a telephone line, a cough) rather than overheard speech; in half the worlds users of
    follow-up listening close 10-60% of the dialogues that went well with "thank you", and in
    half 5-30% of their open-microphone requests start with a hesitation ("uh") that the system
    answers by prompting again; in 70% of worlds NLU tags the slot values of 50-100% of
    false wakes among the words it heard; and in 40% the system confirms 10-60% of requests
    with slots before acting ("Did you say ...?", answered yes or no); in 40% users wrap
    20-90% of their requests in a sentence ("could you please ... for me"); and in 40%
    20-60% of the new requests after an answer ask for a detail of it ("the phone number")."""
    rng = np.random.default_rng([zlib.crc32(name.encode()), 7243])
    empty = _share_in_some(rng, 0.7, 0.05, 0.4)
    sure = round(float(rng.uniform(0.0, 1.0)), 3)
    contrast = round(float(rng.uniform(0.0, 1.0)), 3)
    scale = round(_log_uniform(rng, 0.5, 2.0), 3)
    noise = _share_in_some(rng, 0.5, 0.3, 1.0)
    drop = round(_log_uniform(rng, 0.5, 3.0), 3)
    thanks = _share_in_some(rng, 0.5, 0.1, 0.6)
    hesitation = _share_in_some(rng, 0.5, 0.05, 0.3)
    heard_slots = _share_in_some(rng, 0.7, 0.5, 1.0)
    confirm = _share_in_some(rng, 0.4, 0.1, 0.6)
    carrier = _share_in_some(rng, 0.4, 0.2, 0.9)
    detail = _share_in_some(rng, 0.4, 0.2, 0.6)
    return {
        "detail_share": detail,
        "carrier_share": carrier,
        "confirm_share": confirm,
        "false_wake_heard_slots": heard_slots,
        "asr_error_confidence_drop": drop,
        "empty_result_share": empty,
        "nlu_sure_of_misheard": sure,
        "pace_contrast": contrast,
        "pace_scale": scale,
        "noise_false_wake_share": noise,
        "thanks_share": thanks,
        "hesitation_share": hesitation,
    }
