"""Stage-by-stage causal generation of dialogues: wake, ASR, NLU, ER, result, user reaction.

Each stage sees only what the previous stage produced, so an early error propagates the way
it does in a real assistant; the gold failure point is the earliest stage that went wrong and
was not absorbed downstream. The user's reaction (the next turn of the dialogue and the
`signals` block) depends on what went wrong, with stage-typical tendencies but much overlap.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from functools import cache
from typing import NamedTuple

from fpi.schema import Stage
from fpi.simulate.catalog import (
    AFFIRM_INTENT,
    BACKGROUND_GUESSES,
    BACKGROUND_SPEECH,
    CARRIER_CLOSERS,
    CARRIER_OPENERS,
    CATALOGUE,
    CROSS_KIND,
    DETAIL_INTENT,
    DEVICE_FALSE_WAKE,
    DEVICE_SNR,
    FILLERS,
    FUNCTION_WORDS,
    HESITATION_INTENT,
    HOMONYMS,
    INTENT_BY_NAME,
    LITERALS,
    NEGATE_INTENT,
    NEW_DOMAINS,
    NLU_CONFUSIONS,
    NOISE_HEARD_AS,
    PLAY_INTENTS,
    SOUND_ALIKE,
    STOP_INTENT,
    THANKS_INTENT,
    Entity,
    Intent,
    cumulative,
)
from fpi.simulate.draws import Draws, sigmoid
from fpi.simulate.users import Device, User

CORRECT, FALSE_WAKE, ASR, NLU, ER, RESULT = (s.value for s in Stage)

FOLLOW_UP_WINDOW_MS = 8_000
#: The typical pause before the next turn that `Scenario.pace_contrast` pulls pauses towards.
TYPICAL_PAUSE_MS = 2_500.0
MEDIA_ACTIONS = frozenset({"PlaySong", "PlayVideo", "PlayAudiobook", "PlayEpisode"})
#: How a device type is usually used for a "play <title>" request.
PLAY_PRIOR = {
    "speaker": ("song", "audiobook"),
    "headphones": ("song", "audiobook", "podcast"),
    "car": ("song", "audiobook", "podcast"),
    "screen": ("film",),
    "tv": ("film",),
    "phone": ("song", "film"),
}


@dataclass(frozen=True, slots=True)
class Scenario:
    """How a scenario shifts the world: acoustics, defect rates and which domains exist."""

    name: str
    snr_shift: float = 0.0  # dB added to every turn's signal-to-noise ratio
    asr_offset: float = 0.0  # logit added to the per-word recognition error rate
    false_wake_scale: float = 1.0
    new_domain_share: float = 0.0  # share of requests to domains unseen in `base`
    er_boost: dict[str, float] = field(default_factory=dict)  # domain -> ER error multiplier
    result_boost: dict[str, float] = field(default_factory=dict)  # domain -> result multiplier
    # Knobs for domain-randomised pipelines (`fpi.simulate.randomize`); 1.0 changes nothing.
    nlu_error_scale: float = 1.0  # multiplies the chance NLU misreads correct text
    er_scale: float = 1.0  # multiplies every ER error chance
    result_scale: float = 1.0  # multiplies every handler bug chance
    barge_in_scale: float = 1.0  # how readily users interrupt
    feedback_scale: float = 1.0  # how readily users give explicit feedback
    retry_scale: float = 1.0  # how readily users retry (repeat, rephrase, fix) after a failure
    # extra share of catalogue requests for something the service does not have (0: none)
    unavailable_share: float = 0.0
    # share of requests with slots whose search legitimately finds nothing (a valid query
    # whose constraints nothing in the backend meets): "not found" is the right answer
    empty_result_share: float = 0.0
    # how far a harmful misrecognition lowers the recogniser's own confidence (a multiplier:
    # recognisers differ in how well their confidence tracks their errors)
    asr_error_confidence_drop: float = 1.0
    # how sure NLU is of misrecognised text: 0 unsure (garbled text), 1 as sure as of what was
    # said (NLU sees only the text, and a fluent mishearing reads as well as the truth)
    nlu_sure_of_misheard: float = 0.0
    # how much the user's pause before the next turn depends on how this one went (1: a retry
    # comes quicker than a new request; 0: the same pause whatever happened, as when the
    # system prompts for the next thing every time), and a multiplier on every pause
    pace_contrast: float = 1.0
    pace_scale: float = 1.0
    # share of false wakes that are a noise burst heard as a word or two, not overheard speech
    noise_false_wake_share: float = 0.0
    # share of dialogues that went well where the user closes with "thank you" or "ok"
    thanks_share: float = 0.0
    # share of open-microphone (follow-up) requests the user starts with a hesitation ("uh"),
    # which the system answers by prompting again
    hesitation_share: float = 0.0
    # share of false wakes whose NLU tags its slot values among the words it heard, as a
    # parser does, rather than guessing values nobody said
    false_wake_heard_slots: float = 0.0
    # share of requests with slots the system confirms before acting ("Did you say ...?"):
    # the user answers yes (and it acts) or no (and it asks again)
    confirm_share: float = 0.0
    # share of requests the user wraps in a sentence ("could you please ... for me")
    carrier_share: float = 0.0
    # share of new requests after an answer naming something that ask for a detail of it
    # ("the phone number"); a handler bug says the last answer again or gives another detail
    detail_share: float = 0.0


SCENARIO_SETTINGS: dict[str, Scenario] = {
    "base": Scenario("base"),
    "farfield": Scenario("farfield", snr_shift=-8.0, asr_offset=0.35, false_wake_scale=1.6),
    "newdomain": Scenario("newdomain", new_domain_share=0.25),
    # A bad week after a music and video catalogue migration.
    "drift": Scenario(
        "drift",
        er_boost={"Music": 4.0, "Video": 3.0},
        result_boost={"Music": 3.5, "Video": 2.5},
    ),
}


@dataclass(frozen=True, slots=True)
class Request:
    """What the user means and how they say it."""

    intent: Intent
    template: str
    values: dict[str, Entity | str]
    qualified: bool = False  # adds the entity's qualifier ("springfield missouri")
    careful: bool = False  # speaks slower and louder (a repeat)
    explicit: bool = False  # an explicit wording after being misunderstood
    result_bug: bool = False  # retries a request a backend bug just broke
    last_answer: str | None = None  # the answer a question about a detail follows up on


NOT_SURE = "Sorry, I'm not sure what you meant."
NOT_CAUGHT = "Sorry, I didn't catch that."
NO_SCREEN = "Sorry, I can't show that on this device."
SOMETHING_WRONG = "Sorry, something went wrong."
TOO_SLOW = "Sorry, that's taking longer than usual."


class Handled(NamedTuple):
    """The result stage's output, and whether the handler itself got it wrong."""

    status: str
    handler: str
    action: str
    response: str
    latency_ms: float
    media: bool = False  # content starts playing after the response
    error: bool = False


@dataclass(slots=True)
class Turn:
    """One simulated turn: its trace record and what the user does next."""

    record: dict
    label: str
    next_action: str | None  # repeat | rephrase | fix | stop | new | answer | None (dialogue ends)
    gap_ms: float  # from this turn's start to the next one's


class DialogueSimulator:
    """Generates whole dialogues for one scenario from one stream of draws."""

    def __init__(self, scenario: Scenario, draws: Draws, domains: tuple[str, ...]) -> None:
        self.scenario = scenario
        self.d = draws
        self.domains = domains
        self.domain_intents: dict[str, tuple[tuple[Intent, ...], list[float]]] = {}
        for domain in domains:
            intents = tuple(
                i for i in INTENT_BY_NAME.values() if i.domain == domain and i.weight > 0
            )
            self.domain_intents[domain] = (intents, cumulative([i.weight for i in intents]))
        #: Entity kind -> the intent that plays it, for the domains of this scenario.
        self.play_intents = {
            kind: name
            for kind, name in PLAY_INTENTS.items()
            if INTENT_BY_NAME[name].domain in domains
        }
        self.entity_cum = {k: cumulative([e.popularity for e in v]) for k, v in CATALOGUE.items()}
        self.unavailable = {
            k: missing
            for k, v in CATALOGUE.items()
            if (missing := [e for e in v if not e.available])
        }

    # ---- requests --------------------------------------------------------------------

    def new_request(self, user: User, device: Device) -> Request:
        d = self.d
        for _ in range(4):
            domain = d.weighted(self.domains, user.domain_cum)
            intents, cum = self.domain_intents[domain]
            intent = d.weighted(intents, cum)
            # People rarely ask a screenless device for video (but sometimes do).
            if not intent.needs_screen or device.has_screen or d.chance(0.05):
                break
        return Request(intent, d.pick(intent.templates), self._values(intent, user))

    def _values(self, intent: Intent, user: User) -> dict[str, Entity | str]:
        d = self.d
        values: dict[str, Entity | str] = {}
        for slot, kind in intent.slots.items():
            if kind in LITERALS:
                values[slot] = d.pick(LITERALS[kind])
            elif kind == "contact":
                values[slot] = d.pick(user.contacts)
            elif kind == "appliance":
                values[slot] = d.pick(user.appliances)
            elif kind == "town" and d.chance(0.3):
                values[slot] = user.home
            elif (
                self.scenario.unavailable_share
                and kind in self.unavailable
                and d.chance(self.scenario.unavailable_share)
            ):
                values[slot] = d.pick(self.unavailable[kind])
            else:
                values[slot] = d.weighted(CATALOGUE[kind], self.entity_cum[kind])
        return values

    @staticmethod
    def mention(value: Entity | str, qualified: bool) -> str:
        if isinstance(value, str):
            return value
        return (
            f"{value.spoken} {value.qualifier}" if qualified and value.qualifier else value.spoken
        )

    def words(self, request: Request) -> tuple[list[str], list[str]]:
        """The spoken words and each word's role: "f" function, "k" keyword or a slot name."""
        words: list[str] = []
        roles: list[str] = []
        for token, role in _template_tokens(request.template):
            if role is None:
                mention = self.mention(request.values[token], request.qualified).split()
                words += mention
                roles += [token] * len(mention)
            else:
                words.append(token)
                roles.append(role)
        return words, roles

    # ---- dialogues -------------------------------------------------------------------

    def dialogue(self, user: User, start_ms: int) -> list[Turn]:
        d = self.d
        device = d.weighted(user.devices, user.device_cum)
        fw_rate = 0.095 * DEVICE_FALSE_WAKE[device.type] * self.scenario.false_wake_scale
        request: Request | None = None if d.chance(fw_rate) else self.new_request(user, device)
        mode = "button" if device.type in ("car", "phone") and d.chance(0.3) else "wake_word"
        turns: list[Turn] = []
        t = float(start_ms)
        previous: Request | None = None
        while True:
            if request is None:
                turn = self.false_wake_turn(user, device, mode, t)
                outcome = turn.label
            else:
                if self._hesitates(mode, request):
                    hesitation = self.turn(user, device, self._said(HESITATION_INTENT), mode, t)
                    turns.append(hesitation)
                    t += hesitation.gap_ms
                turn = self.turn(user, device, request, mode, t)
                outcome = turn.label
                if self._confirms(request, turn):
                    asked, turn = self._confirmation(user, device, turn, t)
                    turns.append(asked)
                    t += asked.gap_ms
            turns.append(turn)
            if turn.next_action is None and self._thanks(turn, request, user):
                pause = self.d.lognormal(self._pause(1_500.0), 0.55)
                start = t + turn.gap_ms + pause  # after the answer, as a reply to it
                closing = self.turn(user, device, self._said(THANKS_INTENT), "follow_up", start)
                return [*turns, replace(closing, next_action=None)]
            if turn.next_action is None or len(turns) >= 6:
                return turns
            previous = request
            request = self.next_request(turn.next_action, previous, user, device, outcome)
            if request is not None and request.intent is DETAIL_INTENT:
                answer = (turn.record["result"] or {}).get("response_text")
                request = replace(request, last_answer=answer)
            t += turn.gap_ms
            mode = self._next_mode(user, device, turn.gap_ms, turn.record)
            if request is not None and request.intent is not STOP_INTENT and d.chance(0.006):
                request = None  # follow-up listening picked up the room instead of the user

    def _wrapped(
        self, words: list[str], roles: list[str], request: Request
    ) -> tuple[list[str], list[str]]:
        """The request's words inside a carrier sentence, for a `carrier_share` of requests
        (not the one-word answers of the global intents: "stop", "yes", "thank you")."""
        share = self.scenario.carrier_share
        if not share or request.intent.domain == "Global" or not self.d.chance(share):
            return words, roles
        opener = self.d.pick(CARRIER_OPENERS).split()
        closer = self.d.pick(CARRIER_CLOSERS).split() if self.d.chance(0.4) else []
        return [*opener, *words, *closer], ["f"] * len(opener) + roles + ["f"] * len(closer)

    def _confirms(self, request: Request, turn: Turn) -> bool:
        """Whether the system asks the user to confirm this request before acting on it."""
        share = self.scenario.confirm_share
        outcome = turn.record["result"]
        acts = outcome is not None and outcome["status"] not in ("clarification", "unsupported")
        return bool(share and request.values and turn.record["nlu"] and acts) and self.d.chance(
            share
        )

    def _confirmation(self, user: User, device: Device, turn: Turn, t: float) -> tuple[Turn, Turn]:
        """The request `turn` answered by a confirmation question, and the user's answer: "yes"
        carries the request's outcome (a handler bug shows there), "no" makes the system ask
        again and the user goes on as after the failure (a retry, or leaving)."""
        record = turn.record
        values = [slot["value"] for slot in record["nlu"]["slots"]]
        question = f"Did you say {' and '.join(values)}?" if values else "Did I get that right?"
        confirming = Handled("clarification", "Dialog", "Confirm", question, 350.0)
        asked_record = self._record(
            user, device, record["wake"], record["asr"], record["nlu"], record["er"],
            confirming, record["t"],
        )  # fmt: skip
        asked_record["signals"] = {"barge_in": False, "barge_in_ms": None,
                                   "explicit_feedback": None}  # fmt: skip
        understood = turn.label in (CORRECT, RESULT)
        pause = self.d.lognormal(self._pause(1_200.0), 0.5)
        busy = (
            record["asr"]["audio_ms"] + confirming.latency_ms + asked_record["tts"]["duration_ms"]
        )
        asked = Turn(asked_record, CORRECT if understood else turn.label, "answer", busy + pause)
        start = t + asked.gap_ms
        answer = self.turn(
            user, device, self._said(AFFIRM_INTENT if understood else NEGATE_INTENT),
            "follow_up", start,
        )  # fmt: skip
        if not understood or answer.label != CORRECT:
            return asked, replace(answer, next_action=turn.next_action)
        done = {**answer.record, "result": record["result"], "tts": record["tts"]}
        done["signals"] = record["signals"]
        return asked, Turn(done, turn.label, turn.next_action, turn.gap_ms)

    def _said(self, intent: Intent) -> Request:
        """A request without slots in one of the intent's wordings."""
        return Request(intent, self.d.pick(intent.templates), {})

    def _hesitates(self, mode: str, request: Request) -> bool:
        """Whether an open microphone hears the user hesitate before this request."""
        share = self.scenario.hesitation_share
        return bool(
            share and mode == "follow_up" and request.intent is not STOP_INTENT
        ) and self.d.chance(share)

    def _thanks(self, turn: Turn, request: Request | None, user: User) -> bool:
        """Whether a user of follow-up listening closes a dialogue that ended well with a
        thank-you."""
        share = self.scenario.thanks_share
        went_well = (
            turn.label == CORRECT and request is not None and request.intent is not STOP_INTENT
        )
        return bool(share and user.follow_up and went_well) and self.d.chance(share)

    def _next_mode(self, user: User, device: Device, gap_ms: float, record: dict) -> str:
        d = self.d
        spoken_ms = record["asr"]["audio_ms"] if record["asr"] else 0.0
        think = gap_ms - spoken_ms - (record["result"]["latency_ms"] if record["result"] else 0.0)
        if user.follow_up and think < FOLLOW_UP_WINDOW_MS:
            return "follow_up"
        if device.type in ("car", "phone") and d.chance(0.3):
            return "button"
        return "wake_word"

    def next_request(
        self, action: str, previous: Request | None, user: User, device: Device, label: str
    ) -> Request | None:
        d = self.d
        if action == "stop":
            return Request(STOP_INTENT, d.pick(STOP_INTENT.templates), {})
        if self._asks_detail(action, previous):
            template = d.pick(DETAIL_INTENT.templates)
            return Request(DETAIL_INTENT, template, self._values(DETAIL_INTENT, user))
        if action == "new" or previous is None:
            if previous is not None and previous.intent.slots and d.chance(0.3):
                # Another request of the same kind: "now play ..."
                intent = previous.intent
                return Request(intent, d.pick(intent.templates), self._values(intent, user))
            return self.new_request(user, device)
        if action == "repeat":
            return replace(previous, careful=True, result_bug=label == RESULT and d.chance(0.35))
        if action == "rephrase":
            others = [t for t in previous.intent.templates if t != previous.template]
            template = d.pick(others) if others else previous.template
            return replace(previous, template=template, explicit=True, careful=label == ASR)
        if action == "answer":  # answering "which one did you mean?"
            return replace(previous, qualified=True)
        # "fix": the same intent with the slot said differently (or changed, when nothing failed)
        if label == CORRECT and previous.intent.slots:
            return replace(previous, values=self._values(previous.intent, user))
        return replace(previous, qualified=True, careful=label == ASR)

    def _asks_detail(self, action: str, previous: Request | None) -> bool:
        """Whether the user's new request asks for a detail of what the last answer named."""
        share = self.scenario.detail_share
        named = previous is not None and previous.intent.slots
        return bool(share and action == "new" and named and previous.intent is not DETAIL_INTENT
                    ) and self.d.chance(share)  # fmt: skip

    # ---- one turn ----------------------------------------------------------------------

    def turn(self, user: User, device: Device, request: Request, mode: str, t: float) -> Turn:
        d = self.d
        sc = self.scenario
        wake = self._wake(mode, addressed=True)
        words, roles = self._wrapped(*self.words(request), request)
        true_text = " ".join(words)
        snr = (
            DEVICE_SNR[device.type]
            + user.room_snr
            + sc.snr_shift
            + d.normal(0.0, 3.5)
            + (3.0 if request.careful else 0.0)
        )
        difficulty = user.accent + 0.1 * (16.0 - snr)
        base_logit = -3.45 + 1.3 * user.accent + 0.12 * (16.0 - snr) + sc.asr_offset
        if request.careful:
            base_logit -= 0.5
        ms_per_word = user.ms_per_word * (1.2 if request.careful else 1.0)
        audio_ms = len(words) * ms_per_word * d.lognormal(1.0, 0.12) + d.normal(250.0, 60.0)

        # ---- ASR --------------------------------------------------------------------------
        harm = ""  # "" | "empty" | "key" | a slot name (its words were misrecognised)
        benign = 0
        if d.chance(sigmoid(-4.8 + 0.18 * (16.0 - snr) + sc.asr_offset)):
            heard, heard_roles, harm = [], [], "empty"
        else:
            heard, heard_roles, benign, harm = self._recognise(words, roles, base_logit)
        text = " ".join(heard)
        drop = 1.3 * sc.asr_error_confidence_drop * bool(harm)
        confidence = d.logit_normal(2.5 - 0.55 * difficulty - 0.4 * benign - drop, 0.85)
        asr = {
            "text": text,
            "confidence": round(confidence, 4),
            "nbest": self._asr_nbest(text, true_text, confidence),
            "audio_ms": round(max(audio_ms, 300.0)),
            "snr_db": round(snr, 1),
        }
        if harm == "empty":
            handled = Handled("clarification", "SystemSkill", "Reprompt", NOT_CAUGHT, 380.0)
            record = self._record(user, device, wake, asr, None, None, handled, t)
            return self._react(record, ASR, request, user, handled)

        # ---- NLU --------------------------------------------------------------------------
        nlu_error = False
        intent = request.intent
        slots: dict[str, tuple[str, str, Entity | None]] = {}  # name -> (kind, mention, meant)
        for slot, value in request.values.items():
            kind = intent.slots[slot]
            mention = self.mention(value, request.qualified)
            meant = value if isinstance(value, Entity) else None
            heard_mention = " ".join(
                h for h, r in zip(heard, heard_roles, strict=True) if r == slot
            )
            if harm == slot:
                meant = None  # what ER sees no longer names what the user meant
                if not heard_mention:
                    continue  # the slot's words were lost: NLU finds no slot at all
            mention = heard_mention or mention  # slips ER absorbs still show in the mention
            slots[slot] = (kind, mention, meant)
        if harm == "key":
            if d.chance(0.85):
                intent = self._misroute(intent)
                slots = self._carry_slots(intent, slots)
            else:  # NLU understood the request despite the misheard keyword
                harm = ""
                benign += 1
        if not harm:
            p_nlu = self._nlu_error_rate(request, device)
            if d.chance(p_nlu):
                nlu_error = True
                intent, slots = self._nlu_mistake(request, device, slots)
        upstream = ASR if harm else (NLU if nlu_error else CORRECT)
        wrong = upstream != CORRECT
        # Garbled text leaves NLU less sure than a fluent sentence it misreads (how much less
        # is the pipeline's: `Scenario.nlu_sure_of_misheard`).
        clean = 2.1 - 0.15 * intent.ambiguity
        mean = sc.nlu_sure_of_misheard * clean if harm else (0.6 if nlu_error else clean)
        misheard_slot = 0.9 + sc.nlu_sure_of_misheard * 1.3 if harm else 0.9
        nlu_conf = d.logit_normal(mean, 0.9)
        while not wrong and nlu_conf < 0.3:  # a right reading below the reprompt threshold
            nlu_conf = d.logit_normal(mean, 0.9)
        nlu = {
            "domain": intent.domain,
            "intent": intent.name,
            "confidence": round(nlu_conf, 4),
            "nbest": self._nlu_nbest(intent, request.intent, nlu_conf, 0.65 if nlu_error else 0.3),
            "slots": [
                {
                    "name": name,
                    "value": mention,
                    "confidence": round(
                        d.logit_normal(misheard_slot if (wrong and meant is None) else 2.2, 0.9),
                        4,
                    ),
                }
                for name, (_, mention, meant) in slots.items()
            ],
        }

        # ---- ER and result ----------------------------------------------------------------
        er, resolved, er_status, er_ok = self._resolve_all(slots, request, user)
        if not er_ok and not wrong:
            upstream = ER
        handled = self._result(request, intent, resolved, er_status, nlu_conf, device, upstream)
        label = RESULT if handled.error else upstream
        record = self._record(user, device, wake, asr, nlu, er, handled, t)
        return self._react(record, label, request, user, handled)

    def _resolve_all(
        self, slots: dict[str, tuple[str, str, Entity | None]], request: Request, user: User
    ) -> tuple[dict | None, dict[str, str], str, bool]:
        """The ER block, each slot's resolved text, the worst status, and all as meant?"""
        entities = []
        resolved: dict[str, str] = {}
        worst = "resolved"
        all_ok = True
        for name, (kind, mention, meant) in slots.items():
            if kind in LITERALS:
                resolved[name] = mention
                continue
            entity, ok = self._resolve(kind, mention, meant, request, user)
            entities.append({"slot": name, "mention": mention, **entity})
            resolved[name] = entity["resolved_value"] or mention
            all_ok &= ok
            if entity["status"] != "resolved" and worst != "no_match":
                worst = entity["status"]
        return ({"entities": entities} if entities else None), resolved, worst, all_ok

    def _wake(self, mode: str, *, addressed: bool) -> dict:
        d = self.d
        if mode != "wake_word":
            return {"mode": mode, "confidence": None, "verifier_confidence": None}
        if addressed:
            detector = d.logit_normal(2.4, 0.9)
            verifier = 0.5 + 0.5 * d.logit_normal(1.6, 1.0)
        else:
            detector = d.logit_normal(1.1, 0.9)
            verifier = d.logit_normal(1.0, 1.0)
        return {
            "mode": mode,
            "confidence": round(detector, 4),
            "verifier_confidence": round(verifier, 4),
        }

    def _recognise(
        self, words: list[str], roles: list[str], base_logit: float
    ) -> tuple[list[str], list[str], int, str]:
        """Misrecognise words with phonetically plausible errors.

        Returns the heard words, the role of each, how many errors downstream will absorb,
        and the role of the first error that will do harm ("" when none).
        """
        d = self.d
        heard: list[str] = []
        heard_roles: list[str] = []
        benign = 0
        harm = ""
        for word, role in zip(words, roles, strict=True):
            offset = -0.3 if role == "f" else (0.0 if role == "k" else 0.7)
            if not d.chance(sigmoid(base_logit + offset)):
                heard.append(word)
                heard_roles.append(role)
                continue
            r = d.u()
            if r < 0.15:  # an inserted filler word, then the word itself
                heard += [d.pick(FILLERS), word]
                heard_roles += ["f", role]
                benign += 1
                continue
            alts = SOUND_ALIKE.get(word)
            if r < 0.75 and alts:
                heard.append(d.pick(alts))
                heard_roles.append(role)
                hurts = role != "f" and d.chance(0.8 if role == "k" else 0.9)
            elif r < 0.75 and role not in ("f", "k"):
                variant = word[:-1] if word.endswith("s") else word + "s"
                if len(word) > 6 and d.chance(0.5):
                    variant = f"{word[: len(word) // 2]} {word[len(word) // 2 :]}"
                heard.append(variant)
                heard_roles.append(role)
                hurts = d.chance(0.25)  # ER's fuzzy matching usually absorbs these
            else:  # deleted
                hurts = role != "f" and d.chance(0.7)
            if hurts and not harm:
                harm = "key" if role == "k" else role
            elif not hurts:
                benign += 1
        return heard, heard_roles, benign, harm

    def _asr_nbest(self, text: str, true_text: str, confidence: float) -> list[dict]:
        """Alternative hypotheses: more of them when unsure, the truth often second when wrong."""
        d = self.d
        heard = text.split()
        size = 1 + int(d.u() * (2.0 + 3.0 * (1.0 - confidence)))
        hyps = [text]
        truth_listed = text != true_text and d.chance(0.55)
        if truth_listed:
            hyps.append(true_text)
        for _ in range(size * 2):
            if len(hyps) >= size or not heard:
                break
            i = int(d.u() * len(heard))
            alts = SOUND_ALIKE.get(heard[i])
            swapped = [d.pick(alts)] if alts else ([] if d.chance(0.5) else [d.pick(FILLERS)])
            candidate = " ".join(heard[:i] + swapped + heard[i + 1 :])
            if candidate and candidate not in hyps:
                hyps.append(candidate)
        out = [{"text": text, "confidence": round(confidence, 4)}]
        rest = 1.0 - confidence
        for k, hyp in enumerate(hyps[1:], start=1):
            close = k == 1 and truth_listed
            conf = rest * d.u() * (0.9 if close else 0.5)
            if close:
                conf += 0.25 * confidence * d.u()
            conf = min(conf, out[-1]["confidence"])
            out.append({"text": hyp, "confidence": round(conf, 4)})
            rest = max(rest - conf, 0.0)
        return out

    def _nlu_error_rate(self, request: Request, device: Device) -> float:
        intent = request.intent
        p = 0.05 + 0.04 * intent.ambiguity
        playable = [
            sum(k in self.play_intents for k in CROSS_KIND.get(v.spoken, ()))
            for v in request.values.values()
            if isinstance(v, Entity)
        ]
        if intent.name in self.play_intents.values() and any(n > 1 for n in playable):
            own = next(k for k, n in PLAY_INTENTS.items() if n == intent.name)
            p += 0.08 if own in PLAY_PRIOR[device.type] else 0.42
        if self.scenario.new_domain_share and intent.domain in NEW_DOMAINS:
            p += 0.06
        if request.explicit:
            p *= 0.3
        return p * self.scenario.nlu_error_scale

    def _nlu_mistake(
        self, request: Request, device: Device, slots: dict
    ) -> tuple[Intent, dict[str, tuple[str, str, Entity | None]]]:
        """A plausible misunderstanding of correctly recognised text."""
        d = self.d
        intent = request.intent
        play_kinds = [
            k
            for v in request.values.values()
            if isinstance(v, Entity)
            for k in CROSS_KIND.get(v.spoken, ())
            if k in self.play_intents and self.play_intents[k] != intent.name
        ]
        if intent.name in self.play_intents.values() and play_kinds:
            preferred = [k for k in play_kinds if k in PLAY_PRIOR[device.type]]
            kind = d.pick(preferred or play_kinds)
            other = INTENT_BY_NAME[self.play_intents[kind]]
            (_, mention, meant) = next(iter(slots.values()))
            twin = HOMONYMS[kind].get(meant.spoken) if meant else None
            return other, {next(iter(other.slots)): (kind, mention, twin[0] if twin else None)}
        r = d.u()
        if r < 0.55 or not slots:
            other = self._misroute(intent)
            return other, self._carry_slots(other, slots)
        # A slot boundary mistake: part of the value left out, or a carrier word pulled in.
        name, (kind, mention, _) = next(iter(slots.items()))
        parts = mention.split()
        if len(parts) > 1 and d.chance(0.6):
            mention = " ".join(parts[:-1])
        else:
            mention = f"{mention} {d.pick(('please', 'now', 'on', 'the'))}"
        return intent, {**slots, name: (kind, mention, None)}

    def _misroute(self, intent: Intent) -> Intent:
        """A reading NLU tends to confuse with `intent`, or the open-question fallback."""
        d = self.d
        options = NLU_CONFUSIONS.get(intent.name)
        if options and d.chance(0.75):
            return INTENT_BY_NAME[d.pick(options)]
        return INTENT_BY_NAME["QuestionIntent" if intent.name != "QuestionIntent" else "TimeIntent"]

    @staticmethod
    def _carry_slots(intent: Intent, slots: dict) -> dict[str, tuple[str, str, Entity | None]]:
        """Slots of the old reading that fit the new intent (by entity kind), the rest dropped."""
        carried = {}
        for name, kind in intent.slots.items():
            for old_kind, mention, meant in slots.values():
                if old_kind == kind:
                    carried[name] = (kind, mention, meant)
                    break
            else:
                if kind == "topic" and slots:
                    _, mention, _ = next(iter(slots.values()))
                    carried[name] = (kind, mention, None)
        return carried

    def _nlu_nbest(
        self, intent: Intent, meant: Intent, confidence: float, p_meant_listed: float
    ) -> list[dict]:
        """Alternative readings; the meant one, when listed, comes second and close."""
        d = self.d
        wrong = meant is not intent and d.chance(p_meant_listed)
        alternatives = [meant] if wrong else []
        for name in NLU_CONFUSIONS.get(intent.name, ()):
            if INTENT_BY_NAME[name] not in alternatives and INTENT_BY_NAME[name] is not intent:
                alternatives.append(INTENT_BY_NAME[name])
        alternatives = alternatives[: 1 + int(d.u() * 3)]
        out = [{"domain": intent.domain, "intent": intent.name, "confidence": round(confidence, 4)}]
        rest = 1.0 - confidence
        for k, alt in enumerate(alternatives):
            boost = 0.6 if k == 0 and wrong else 0.35
            conf = min(rest * d.u() * boost / 0.6, out[-1]["confidence"])
            out.append({"domain": alt.domain, "intent": alt.name, "confidence": round(conf, 4)})
            rest = max(rest - conf, 0.0)
        return out

    def _resolve(
        self, kind: str, mention: str, meant: Entity | None, request: Request, user: User
    ) -> tuple[dict, bool]:
        """Entity resolution of one mention: (the entity fields, resolved as the user meant?).

        A genuinely unavailable title counts as resolved as meant: "not found" is the truth.
        """
        d = self.d
        pool = {"contact": user.contacts, "appliance": user.appliances}.get(kind)
        groups = HOMONYMS[kind]
        scale = self.scenario.er_boost.get(request.intent.domain, 1.0) * self.scenario.er_scale
        extras = int(d.u() * d.u() * 5)

        def found(
            entity: Entity | None,
            score: tuple[float, float],
            candidates: int,
            status: str,
            ok: bool,
        ) -> tuple[dict, bool]:
            fields = {
                "resolved_value": entity.name if entity else None,
                "resolved_id": entity.id if entity else None,
                "score": round(d.logit_normal(*score), 4),
                "candidates": candidates,
                "status": status,
            }
            return fields, ok

        if meant is None:  # the mention is garbled, or names something the user did not mean
            twins = groups.get(mention) or groups.get(mention.split(" ")[0])
            if twins and (pool is None or twins[0] in pool):
                return found(twins[0], (1.4, 0.9), len(twins) + extras, "resolved", False)
            if d.chance(0.55):
                return found(None, (-1.3, 0.9), extras, "no_match", False)
            return found(d.pick(pool or CATALOGUE[kind]), (0.6, 0.9), 1 + extras, "resolved", False)

        if not meant.available:
            return found(None, (-1.2, 0.9), extras, "no_match", True)
        group = groups.get(meant.spoken, (meant,))
        if pool is not None:
            group = tuple(e for e in group if e in pool) or (meant,)
        h = len(group)
        rare = meant.popularity < 1.0 / len(CATALOGUE[kind])
        miss = scale * (0.03 + (0.09 if rare else 0.0)) * (0.3 if request.qualified else 1.0)
        if d.chance(miss):  # the catalogue has it, the resolver's index does not
            return found(None, (-0.9, 0.9), extras, "no_match", False)
        if h > 1 and not request.qualified:
            top = max(group, key=lambda e: e.popularity)
            if kind == "town" and user.home in group:
                top = user.home
            r = d.u()
            if top is not meant:
                if r < 0.3:
                    return found(None, (0.2, 0.6), h + extras, "ambiguous", True)
                if r < 0.3 + min(0.65, 0.5 * scale):  # popularity bias picks the famous twin
                    return found(top, (1.4, 0.9), h + extras, "resolved", False)
            elif r < 0.06:
                return found(None, (0.2, 0.6), h + extras, "ambiguous", True)
        if kind == "contact" and not request.qualified:
            near = [c for c in user.contacts if c.spoken in SOUND_ALIKE.get(meant.spoken, ())]
            if near and d.chance(min(0.6, 0.12 * scale)):
                return found(d.pick(near), (1.5, 0.9), 1 + len(near) + extras, "resolved", False)
        if d.chance(0.03 * scale):
            other = d.pick(pool or CATALOGUE[kind])
            if other is not meant:
                return found(other, (1.2, 0.9), 1 + extras, "resolved", False)
        return found(meant, (2.9 if h == 1 else 2.0, 0.9), h + extras, "resolved", True)

    def _result(
        self,
        request: Request,
        intent: Intent,
        resolved: dict[str, str],
        er_status: str,
        nlu_conf: float,
        device: Device,
        upstream: str,
    ) -> Handled:
        """What the handler did with the (possibly wrong) interpretation it was given."""
        d = self.d
        latency = d.lognormal(620.0, 0.35)
        h, a = intent.handler, intent.action
        if nlu_conf < 0.3:
            return Handled("clarification", "SystemSkill", "Reprompt", NOT_SURE, latency)
        if intent is HESITATION_INTENT:
            return Handled("clarification", h, a, intent.response, latency)
        if not intent.supported:
            return Handled("unsupported", h, a, intent.response, latency)
        if intent.needs_screen and not device.has_screen:
            return Handled("unsupported", h, "Decline", NO_SCREEN, latency)
        what = next(iter(resolved.values()), "that")
        if er_status == "no_match":
            return Handled("no_content", h, a, f"Sorry, I couldn't find {what}.", latency)
        if er_status == "ambiguous":
            return Handled(
                "clarification", h, "Disambiguate", f"Which {what.title()} did you mean?", latency
            )
        missing = [s for s in intent.slots if s not in resolved]
        if missing:
            return Handled(
                "clarification", h, "Elicit", f"What {missing[0]} would you like?", latency
            )
        if (
            self.scenario.empty_result_share
            and intent.slots
            and d.chance(self.scenario.empty_result_share)
        ):  # a valid search that nothing meets: the right answer is "not found"
            return Handled("no_content", h, a, f"Sorry, I couldn't find {what}.", latency)
        media = a in MEDIA_ACTIONS
        response = intent.response.format(**resolved)
        rate = (
            (0.05 + 0.02 * len(intent.slots))
            * self.scenario.result_boost.get(intent.domain, 1)
            * self.scenario.result_scale
        )
        if intent is STOP_INTENT:
            rate = 0.01
        if upstream != CORRECT or not (request.result_bug or d.chance(rate)):
            return Handled("success", h, a, response, latency, media)
        if intent is DETAIL_INTENT:  # the last answer again, or another detail
            if request.last_answer and d.chance(0.5):
                return Handled("success", h, a, request.last_answer, latency, error=True)
            asked = resolved["detail"]
            other = d.pick(tuple(v for v in LITERALS["detail"] if v != asked))
            return Handled("success", h, a, intent.response.format(detail=other), latency,
                           error=True)  # fmt: skip
        r = d.u()
        if r < 0.45:  # silently the wrong thing, often named as if it were right
            if intent.slots and d.chance(0.45):
                name = next(iter(intent.slots))
                decoy = self._decoy(intent.slots[name], resolved[name])
                response = intent.response.format(**{**resolved, name: decoy})
            return Handled("success", h, a, response, latency * d.lognormal(1.3, 0.3), media, True)
        if r < 0.65:
            return Handled(
                "error", h, a, SOMETHING_WRONG, latency * d.lognormal(2.0, 0.5), error=True
            )
        if r < 0.8 and intent.slots:
            return Handled(
                "no_content", h, a, f"Sorry, I couldn't find {what}.", latency, error=True
            )
        return Handled("partial", h, a, TOO_SLOW, d.lognormal(5500.0, 0.35), error=True)

    def _decoy(self, kind: str, value: str) -> str:
        if kind in LITERALS:
            return self.d.pick(LITERALS[kind])
        pool = CATALOGUE[kind]
        return (
            next((e.name for e in pool if e.spoken == value.lower() and e.name != value), None)
            or self.d.pick(pool).name
        )

    # ---- false wakes ---------------------------------------------------------------------

    def false_wake_turn(self, user: User, device: Device, mode: str, t: float) -> Turn:
        """The device woke on TV or room conversation; nobody was talking to it."""
        d = self.d
        wake = self._wake("follow_up" if mode == "follow_up" else "wake_word", addressed=False)
        share = self.scenario.noise_false_wake_share
        if share and d.chance(share):  # a noise burst heard as a word or two
            text = d.pick(NOISE_HEARD_AS)
        else:
            text = d.pick(BACKGROUND_SPEECH)
            if d.chance(0.6):  # overheard speech runs on
                text = f"{text} {d.pick(BACKGROUND_SPEECH)}"
        n_words = len(text.split())
        snr = DEVICE_SNR[device.type] + user.room_snr + self.scenario.snr_shift + d.normal(-3, 4)
        conf = d.logit_normal(0.6 - 0.04 * n_words, 1.0)
        asr = {
            "text": text,
            "confidence": round(conf, 4),
            "nbest": self._asr_nbest(text, text, conf),
            "audio_ms": round(n_words * d.normal(300.0, 50.0) + d.normal(400.0, 150.0)),
            "snr_db": round(snr, 1),
        }
        verifier = wake["verifier_confidence"]
        if verifier is not None and verifier < 0.5:  # dropped by the cloud verifier
            record = self._record(user, device, wake, asr, None, None, None, t)
            return self._react(record, FALSE_WAKE, None, user, None)
        guess = INTENT_BY_NAME[d.pick(BACKGROUND_GUESSES)]
        request = Request(guess, d.pick(guess.templates), self._values(guess, user))
        nlu_conf = d.logit_normal(0.1, 1.0)
        heard = self.scenario.false_wake_heard_slots
        tags_heard = bool(heard) and d.chance(heard)
        slots = {
            s: (
                guess.slots[s],
                self._heard_span(text) if tags_heard else self.mention(v, False),
                v if isinstance(v, Entity) else None,
            )
            for s, v in request.values.items()
        }
        nlu = {
            "domain": guess.domain,
            "intent": guess.name,
            "confidence": round(nlu_conf, 4),
            "nbest": self._nlu_nbest(guess, guess, nlu_conf, 0.0),
            "slots": [
                {"name": s, "value": mention, "confidence": round(d.u(), 4)}
                for s, (_, mention, _) in slots.items()
            ],
        }
        er, resolved, er_status, _ = self._resolve_all(slots, request, user)
        handled = self._result(request, guess, resolved, er_status, nlu_conf, device, FALSE_WAKE)
        record = self._record(user, device, wake, asr, nlu, er, handled, t)
        return self._react(record, FALSE_WAKE, None, user, handled)

    def _heard_span(self, text: str) -> str:
        """One or two consecutive words of `text`, as a parser tags a slot value in it."""
        words = text.split()
        start = int(self.d.u() * len(words))
        return " ".join(words[start : start + 1 + int(self.d.chance(0.4))])

    # ---- the record and the user's reaction ---------------------------------------------------

    def _record(
        self,
        user: User,
        device: Device,
        wake: dict,
        asr: dict,
        nlu: dict | None,
        er: dict | None,
        handled: Handled | None,
        t: float,
    ) -> dict:
        result = tts = None
        if handled is not None:
            result = {
                "status": handled.status,
                "handler": handled.handler,
                "action": handled.action,
                "response_text": handled.response,
                "latency_ms": round(handled.latency_ms),
            }
            if handled.response:
                duration = len(handled.response) * self.d.normal(62.0, 4.0) + 250.0
                tts = {"text": handled.response, "duration_ms": round(duration)}
        return {
            "t": t,
            "locale": user.locale,
            "user_id": user.id,
            "device": {"id": device.id, "type": device.type, "has_screen": device.has_screen},
            "wake": wake,
            "asr": asr,
            "nlu": nlu,
            "er": er,
            "result": result,
            "tts": tts,
            "signals": None,
        }

    def _react(
        self,
        record: dict,
        label: str,
        request: Request | None,
        user: User,
        handled: Handled | None,
    ) -> Turn:
        """What the user does after this response: signals on this turn and the next turn."""
        d = self.d
        status = handled.status if handled else None
        p = REACTIONS[label]
        if label == CORRECT and status == "clarification":
            p = REACTIONS["clarified"]
        elif label == CORRECT and status in ("unsupported", "no_content"):
            p = REACTIONS["declined"]
        tts_ms = record["tts"]["duration_ms"] if record["tts"] else 0.0
        playing_ms = tts_ms + (8_000.0 if handled and handled.media else 0.0)
        barge = playing_ms > 0 and d.chance(p.barge_in * self.scenario.barge_in_scale)
        barge_ms = None
        if barge:
            frac = d.u() * 0.55 if label != CORRECT else 0.1 + d.u() * 0.85
            barge_ms = round(frac * playing_ms)
        feedback = None
        if d.chance(p.negative * (1.6 if barge else 1.0) * self.scenario.feedback_scale):
            feedback = "negative"
        elif d.chance(p.positive * self.scenario.feedback_scale):
            feedback = "positive"
        if handled is not None:
            record["signals"] = {
                "barge_in": barge,
                "barge_in_ms": barge_ms,
                "explicit_feedback": feedback,
            }
        action = self._next_action(p, label, user, barge)
        if request is None and action not in (None, "stop", "new"):
            action = "stop"
        if action is None:
            think = 0.0
        elif action == "new":
            think = d.lognormal(self._pause(5_500.0), 0.8)
        elif barge:
            think = d.lognormal(500.0, 0.4)
        elif label == CORRECT:
            think = d.lognormal(self._pause(3_000.0), 0.7)
        else:
            think = d.lognormal(self._pause(1_500.0), 0.55)
        latency = handled.latency_ms if handled else 0.0
        played = barge_ms if barge_ms is not None else tts_ms
        gap = record["asr"]["audio_ms"] + latency + played + think
        return Turn(record, label, action, gap)

    def _pause(self, median_ms: float) -> float:
        """The median pause before the next turn: `median_ms` pulled towards the typical pause
        by the scenario's `pace_contrast`, times its `pace_scale`."""
        sc = self.scenario
        if sc.pace_contrast == 1.0 and sc.pace_scale == 1.0:
            return median_ms
        contrast = sc.pace_contrast
        return sc.pace_scale * TYPICAL_PAUSE_MS ** (1.0 - contrast) * median_ms**contrast

    def _next_action(self, p: Reaction, label: str, user: User, barge: bool) -> str | None:
        """Retry, stop, ask something new, answer a question back, or leave (None)."""
        retry = (
            (0.55 + 0.75 * user.patience) * self.scenario.retry_scale if label != CORRECT else 1.0
        )
        weights = (
            ("repeat", p.repeat * retry),
            ("rephrase", p.rephrase * retry),
            ("fix", p.fix * retry),
            ("stop", p.stop * (1.8 if barge else 1.0)),
            ("new", p.new),
            ("answer", p.answer),
        )
        r = self.d.u()
        for name, w in weights:
            if r < w:
                return name
            r -= w
        return None


@cache
def _template_tokens(template: str) -> tuple[tuple[str, str | None], ...]:
    """A wording's tokens with their roles; slots as (slot name, None)."""
    return tuple(
        (token[1:-1], None)
        if token.startswith("{")
        else (token, "f" if token in FUNCTION_WORDS else "k")
        for token in template.split()
    )


@dataclass(frozen=True, slots=True)
class Reaction:
    """Chances of each user reaction after a turn (the rest of the next-turn mass is "end")."""

    barge_in: float
    negative: float
    positive: float
    repeat: float = 0.0
    rephrase: float = 0.0
    fix: float = 0.0
    stop: float = 0.0
    new: float = 0.0
    answer: float = 0.0


REACTIONS: dict[str, Reaction] = {
    CORRECT: Reaction(0.05, 0.01, 0.03, repeat=0.02, rephrase=0.02, fix=0.03, new=0.32),
    "clarified": Reaction(0.03, 0.01, 0.0, answer=0.8, new=0.05),
    "declined": Reaction(0.04, 0.02, 0.0, rephrase=0.06, new=0.3),
    FALSE_WAKE: Reaction(0.25, 0.08, 0.0, stop=0.3, new=0.04),
    ASR: Reaction(0.2, 0.1, 0.005, repeat=0.36, rephrase=0.15, fix=0.08, stop=0.04),
    NLU: Reaction(0.3, 0.1, 0.005, repeat=0.1, rephrase=0.46, fix=0.05, stop=0.06),
    ER: Reaction(0.3, 0.1, 0.005, repeat=0.12, rephrase=0.12, fix=0.38, stop=0.04),
    RESULT: Reaction(0.42, 0.22, 0.005, repeat=0.32, rephrase=0.12, fix=0.05, stop=0.1),
}


#: How a single annotator mislabels each gold class (relative weights over the other labels).
ANNOTATOR_AGREEMENT = {
    CORRECT: 0.925,
    FALSE_WAKE: 0.86,
    ASR: 0.79,
    NLU: 0.74,
    ER: 0.76,
    RESULT: 0.73,
}
ANNOTATOR_CONFUSION: dict[str, dict[str, float]] = {
    CORRECT: {RESULT: 0.45, ASR: 0.2, ER: 0.15, NLU: 0.1, FALSE_WAKE: 0.1},
    FALSE_WAKE: {ASR: 0.55, CORRECT: 0.35, NLU: 0.1},
    ASR: {NLU: 0.5, CORRECT: 0.2, ER: 0.15, FALSE_WAKE: 0.15},
    NLU: {ASR: 0.4, ER: 0.4, RESULT: 0.1, CORRECT: 0.1},
    ER: {NLU: 0.35, RESULT: 0.4, ASR: 0.15, CORRECT: 0.1},
    RESULT: {ER: 0.35, CORRECT: 0.45, NLU: 0.2},
}


def annotate(label: str, draws: Draws) -> str:
    """A single annotator's label: right most of the time, else usually a neighbouring stage."""
    if draws.chance(ANNOTATOR_AGREEMENT[label]):
        return label
    confusion = ANNOTATOR_CONFUSION[label]
    names = tuple(confusion)
    return draws.weighted(names, cumulative(list(confusion.values())))
