"""Import DSTC2 (Dialog State Tracking Challenge 2) calls as labelled `fpi-trace/1` turns.

The field mapping and the label rules follow `dstc2-benchmark.md`: the system's own logs
(`log.json`) fill the trace, the human annotation (`label.json`) only gives the derived
`label`. The welcome prompt before turn 0 is not kept: it is the same on every call, and
the prompt before turn i > 0 is the previous turn's `result.response_text`.
"""

from __future__ import annotations

import json
import math
import re
from collections import Counter
from collections.abc import Iterable, Iterator
from datetime import UTC, datetime, timedelta
from functools import partial
from pathlib import Path

from fpi.errors import InputError
from fpi.importers.base import (
    MALFORMED,
    BrokenUnitError,
    ImportSummary,
    Pending,
    Progress,
    read_document,
    run_import,
    why,
)
from fpi.schema import Stage

LABEL_SOURCE = "dstc2-derived"
FLIST_NAMES = {"train": "dstc2_train.flist", "dev": "dstc2_dev.flist"}
ONTOLOGY_FILE = "ontology_dstc2.json"
LOG_FILE = "log.json"
LABEL_FILE = "label.json"

_FILLER_TEXT = "uh um ah er erm hmm mm oh uhm huh"
_STOP_WORD_TEXT = (
    "a an the and or but then so please i im id ill ive me my it its is am are was be to of in "
    "on at for with that there this some okay ok well"
)
FILLERS = frozenset(_FILLER_TEXT.split())
STOP_WORDS = frozenset(_STOP_WORD_TEXT.split())
NON_SPEECH_TRANSCRIPTS = frozenset({"noise", "sil", "unintelligible"})
ENTITY_SLOTS = ("food", "pricerange", "area", "name")
CLARIFICATION_ACTS = frozenset({"repeat", "reqmore", "confirm-domain", "expl-conf", "impl-conf"})

Triple = tuple[str, str, str]
Ontology = dict[str, frozenset[str]]

_NOT_WORD = re.compile(r"[^a-z0-9 ]")


class BrokenCallError(BrokenUnitError):
    """One DSTC2 call that cannot be converted: which file and why."""

    def __init__(self, file: str, reason: str) -> None:
        self.file = file
        self.why = reason
        super().__init__(f"{file}: {reason}")


# ---- label rules -----------------------------------------------------------------------


def normalise_words(text: str) -> list[str]:
    """Lower-cased words without apostrophes, punctuation or fillers."""
    text = text.lower().replace("'", "").replace("\u2019", "")
    return [w for w in _NOT_WORD.sub(" ", text).split() if w not in FILLERS]


def content_words(text: str) -> Counter[str]:
    """The normalised words minus stop words, as a multiset."""
    return Counter(w for w in normalise_words(text) if w not in STOP_WORDS)


def semantics_triples(dialog_acts: Iterable[dict]) -> set[Triple]:
    """DSTC2 dialogue acts as lower-cased `(act, slot, value)` triples.

    An act without slots gives `(act, "", "")`; `request(slot=X)` gives `("request", X, "")`.
    """
    triples: set[Triple] = set()
    for dialog_act in dialog_acts:
        act = dialog_act["act"].lower()
        if not dialog_act["slots"]:
            triples.add((act, "", ""))
        for slot, value in dialog_act["slots"]:
            slot, value = str(slot).lower(), str(value).lower()
            if act == "request" and slot == "slot":
                triples.add((act, value, ""))
            else:
                triples.add((act, slot, value))
    return triples


def derive_failure_point(
    asr_top_text: str | None,
    pred: set[Triple],
    gold: set[Triple],
    gold_transcript: str,
    next_output_acts: list[dict] | None,
) -> str:
    """The failure point of one DSTC2 turn: the first of the five benchmark rules that holds."""
    nobody_spoke = gold_transcript.strip().lower() in NON_SPEECH_TRANSCRIPTS or not normalise_words(
        gold_transcript
    )
    if nobody_spoke and pred:
        return Stage.FALSE_WAKE.value
    if pred == gold:
        if next_output_acts is not None and _request_unanswered(gold, next_output_acts):
            return Stage.RESULT.value
        return Stage.CORRECT.value
    if content_words(asr_top_text or "") != content_words(gold_transcript):
        return Stage.ASR.value
    if {(a, s) for a, s, _ in pred} == {(a, s) for a, s, _ in gold}:
        return Stage.ER.value
    return Stage.NLU.value


def _request_unanswered(gold: set[Triple], next_output_acts: list[dict]) -> bool:
    """A requested slot that no act of the system's next output carries."""
    answered = {str(slot).lower() for act in next_output_acts for slot, _ in act["slots"]}
    return any(act == "request" and slot not in answered for act, slot, _ in gold)


# ---- field mapping ---------------------------------------------------------------------


def load_ontology(path: Path) -> Ontology:
    """The informable values per slot of `ontology_dstc2.json`, lower-cased."""
    try:
        informable = json.loads(path.read_text(encoding="utf-8"))["informable"]
        return {slot: frozenset(str(v).lower() for v in vs) for slot, vs in informable.items()}
    except FileNotFoundError:
        raise InputError(f"{path}: ontology not found") from None
    except (OSError, ValueError, KeyError, TypeError, AttributeError) as exc:
        raise InputError(f"{path}: not a DSTC2 ontology ({why(exc)})") from None


def _timestamp(log: dict, seconds: float) -> str:
    start = datetime.fromisoformat(f"{log['session-date']}T{log['session-time']}").replace(
        tzinfo=UTC
    )
    moment = start + timedelta(milliseconds=round(float(seconds) * 1000))
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


def _ms(seconds: float) -> float:
    return round(float(seconds) * 1000, 3)


def _intent(hypothesis: list[dict]) -> str | None:
    return "+".join(sorted({a["act"] for a in hypothesis})) or None


def _result_status(acts: list[str]) -> str:
    if any(a == "canthelp" or a.startswith("canthelp.") for a in acts):
        return "no_content"
    if any(a in CLARIFICATION_ACTS for a in acts):
        return "clarification"
    return "success"


def _entities(slots: list[dict], ontology: Ontology) -> dict | None:
    entities = [
        {
            "slot": s["name"],
            "mention": s["value"],
            "resolved_value": s["value"],
            "status": "resolved"
            if s["value"] == "dontcare" or s["value"].lower() in ontology.get(s["name"], ())
            else "no_match",
        }
        for s in slots
        if s["name"] in ENTITY_SLOTS
    ]
    return {"entities": entities} if entities else None


def _trace_turn(log: dict, i: int, ontology: Ontology) -> tuple[dict, str | None, set[Triple]]:
    """One user turn as an unlabelled record, with its top ASR text and predicted semantics."""
    turns = log["turns"]
    user = turns[i]["input"]
    asr_hyps = user["live"]["asr-hyps"]
    slu_hyps = user["live"]["slu-hyps"]
    nbest = [{"text": h["asr-hyp"], "confidence": math.exp(float(h["score"]))} for h in asr_hyps]
    top_slu = slu_hyps[0]["slu-hyp"] if slu_hyps else []
    slots = [{"name": s, "value": v} for a in top_slu for s, v in a["slots"]]
    record = {
        "dialogue_id": log["session-id"],
        "turn_index": int(turns[i]["turn-index"]),
        "timestamp": _timestamp(log, user["start-time"]),
        "locale": "en-GB",
        "user_id": log["caller-id"],
        "device": {"type": "phone"},
        "wake": {"mode": "follow_up"},
        "asr": {
            "text": nbest[0]["text"] if nbest else "",
            "confidence": nbest[0]["confidence"] if nbest else None,
            "nbest": nbest,
            "audio_ms": _ms(user["end-time"] - user["start-time"]),
        },
        "nlu": {
            "domain": "restaurant",
            "intent": _intent(top_slu),
            "confidence": float(slu_hyps[0]["score"]) if slu_hyps else None,
            "nbest": [
                {
                    "domain": "restaurant",
                    "intent": _intent(h["slu-hyp"]),
                    "confidence": float(h["score"]),
                }
                for h in slu_hyps
            ],
            "slots": slots,
        },
        "er": _entities(slots, ontology),
        "result": None,
        "signals": None,
    }
    if i + 1 < len(turns):
        reply = turns[i + 1]["output"]
        acts = [a["act"] for a in reply["dialog-acts"]]
        record["result"] = {
            "status": _result_status(acts),
            "action": "+".join(acts) or None,
            "response_text": reply["transcript"],
            "latency_ms": _ms(reply["start-time"] - user["end-time"]),
        }
        record["signals"] = {"barge_in": reply["aborted"]}
    return record, (nbest[0]["text"] if nbest else None), semantics_triples(top_slu)


def convert_call(log: dict, label: dict, ontology: Ontology) -> list[dict]:
    """The `fpi-trace/1` records of one call, labelled from its gold annotation.

    Raises `BrokenCallError` (naming log.json or label.json) when either does not hold
    what DSTC2 promises, or when they disagree on the number of turns.
    """
    try:
        system_side = [_trace_turn(log, i, ontology) for i in range(len(log["turns"]))]
    except MALFORMED as exc:
        raise BrokenCallError(LOG_FILE, why(exc)) from None
    try:
        gold = [
            (str(t["transcription"]), semantics_triples(t["semantics"]["json"]))
            for t in label["turns"]
        ]
    except MALFORMED as exc:
        raise BrokenCallError(LABEL_FILE, why(exc)) from None
    if len(gold) != len(system_side):
        raise BrokenCallError(
            f"{LOG_FILE}, {LABEL_FILE}",
            f"turn counts differ ({len(system_side)} in {LOG_FILE}, {len(gold)} in {LABEL_FILE})",
        )
    records = []
    for i, ((record, asr_top, pred), (transcript, gold_triples)) in enumerate(
        zip(system_side, gold, strict=True)
    ):
        next_output = log["turns"][i + 1]["output"]["dialog-acts"] if record["result"] else None
        failure_point = derive_failure_point(asr_top, pred, gold_triples, transcript, next_output)
        records.append(
            {**record, "label": {"failure_point": failure_point, "source": LABEL_SOURCE}}
        )
    return records


# ---- reading a corpus ------------------------------------------------------------------


def flist_path(root: Path, flist: str | Path) -> Path:
    """`train` and `dev` name the official lists under `root`; anything else is a path."""
    name = FLIST_NAMES.get(str(flist))
    return root / "scripts" / "config" / name if name else Path(flist)


def read_flist(path: Path) -> list[str]:
    """The `<Mar13_SxAy>/<session>` call paths listed in an flist, blank lines left out."""
    try:
        return [
            line.strip() for line in path.read_text(encoding="utf-8").splitlines() if line.strip()
        ]
    except (OSError, UnicodeDecodeError) as exc:
        raise InputError(f"{path}: cannot read the call list ({exc})") from None


def _read_json(call_dir: Path, name: str) -> dict:
    try:
        return read_document(call_dir / name)
    except BrokenUnitError as exc:
        missing = not (call_dir / name).exists()
        raise BrokenCallError(name, "missing" if missing else str(exc)) from None


def read_call(call_dir: Path, ontology: Ontology) -> list[dict]:
    """The labelled turns of the call in `call_dir` (its log.json and label.json)."""
    return convert_call(_read_json(call_dir, LOG_FILE), _read_json(call_dir, LABEL_FILE), ontology)


def dstc2_units(root: Path, calls: list[str], ontology: Ontology) -> Iterator[Pending]:
    """One unit per listed call, converted when the import reaches it."""
    for call in calls:
        yield Pending(call, partial(read_call, root / "data" / call, ontology))


def import_dstc2(
    root: Path,
    flist: str | Path,
    out: Path,
    *,
    rejects: Path | None = None,
    progress: Progress | None = None,
) -> ImportSummary:
    """Convert every call of `flist` under `root` into labelled `fpi-trace/1` turns in `out`.

    A call whose files are missing or broken, or that would give a turn the validator
    rejects, is skipped and counted with its reason (`fpi.importers.base.run_import`).
    """
    root, out = Path(root), Path(out)
    if not (root / "data").is_dir():
        raise InputError(f"{root}: not a DSTC2 root (no data/ directory)")
    calls = read_flist(flist_path(root, flist))
    ontology = load_ontology(root / "scripts" / "config" / ONTOLOGY_FILE)
    units = dstc2_units(root, calls, ontology)
    return run_import(
        "dstc2", "call", units, out, rejects=rejects, progress=progress, total=len(calls)
    )
