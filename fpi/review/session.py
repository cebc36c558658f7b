"""One annotator's review session: the queue, the label store and the model behind the page.

`ReviewSession` is plain Python over data frames (the web server is a thin shell around it),
so a notebook or a test can drive it directly. Every label goes to the `LabelStore` before a
call returns; every `refit_every` labels the model is refitted with `fpi.adapt.adapt` on a
background thread and the queue re-ranked, while labels keep being accepted.
"""

from __future__ import annotations

import sys
import threading
import time
import traceback
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import polars as pl

from fpi.adapt import adapt
from fpi.errors import FpiError
from fpi.explain import describe_stages
from fpi.io import read_traces
from fpi.labels import LabelStore, turn_registry
from fpi.model import load_bundle
from fpi.queue import next_turns
from fpi.schema import FAILURE_POINTS, PROBABILITY_COLUMNS
from fpi.triage import triage_traces

if TYPE_CHECKING:
    from fpi.model import ModelBundle

DEFAULT_REFIT_EVERY = 50
TOP_REASONS = 5


class ReviewError(FpiError):
    """A request the session cannot carry out (unknown turn or class, nothing to undo...)."""


@dataclass(frozen=True)
class Labelled:
    """A label this session stored, kept so that `undo` can take it back."""

    turn_id: str
    failure_point: str
    note: str | None


@dataclass(frozen=True)
class QueuedTurn:
    """A turn waiting for a label, with what the queue said when it chose it."""

    turn_id: str
    why: str
    again: bool = False  # shown again after an undo, whoever else has labelled it


class ReviewSession:
    """The state behind `fpi review` for one annotator, safe to call from several threads."""

    def __init__(
        self,
        traces: pl.DataFrame,
        store: LabelStore,
        bundle: ModelBundle,
        *,
        annotator: str,
        start: ModelBundle | None = None,
        refit_every: int = DEFAULT_REFIT_EVERY,
        batch: int | None = None,
        seed: int = 0,
        own_store: bool = False,
    ) -> None:
        if not annotator.strip():
            raise ReviewError("the annotator name must not be empty")
        if refit_every < 1:
            raise ReviewError(f"refit_every must be at least 1, not {refit_every}")
        if traces.is_empty():
            raise ReviewError("the dump(s) hold no turns to review")
        self.annotator = annotator
        self.store = store
        self.start = start if start is not None else bundle
        self.refit_every = refit_every
        self.batch = batch if batch is not None else max(2 * refit_every, 100)
        self.seed = seed
        self._own_store = own_store
        self.traces = traces.sort("dialogue_id", "turn_index", "timestamp", maintain_order=True)
        turn_ids = self.traces.get_column("turn_id")
        if turn_ids.is_duplicated().any():
            duplicated = turn_ids.filter(turn_ids.is_duplicated()).unique().sort().head(3)
            raise ReviewError(f"turn ids occur more than once: {', '.join(duplicated)}")
        self._row = {turn_id: i for i, turn_id in enumerate(turn_ids)}
        registry = turn_registry(self.traces)
        self._hashes = dict(registry.select("turn_id", "record_hash").iter_rows())
        store.register_turns(registry)  # so label files naming these turns can be imported
        spans = (
            self.traces.with_row_index("row")
            .group_by("dialogue_id", maintain_order=True)
            .agg(pl.col("row").min().alias("offset"), pl.len().alias("length"))
        )
        self._dialogue = {d: (int(o), int(n)) for d, o, n in spans.iter_rows()}
        self._lock = threading.RLock()
        self._bundle = bundle
        self._model_version = 0
        self._model_labels = 0
        self._queue: list[QueuedTurn] = []
        self._skipped: set[str] = set()
        self._done: list[Labelled] = []
        self._since_refit = 0
        self._refit_thread: threading.Thread | None = None
        self._refit_error: str | None = None
        self._predictions: dict[str, pl.DataFrame] = {}
        self._closed = False
        self._fill_queue()

    # ---- what the page shows ----------------------------------------------------------

    def state(self) -> dict[str, Any]:
        """The current turn (or None when nothing is left), progress and model status."""
        with self._lock:
            here = self._current_here()
            current = self._current(self._labelled(here))
            return {
                "annotator": self.annotator,
                "classes": list(FAILURE_POINTS),
                "turn": self.view(current.turn_id, current.why) if current is not None else None,
                "progress": self._progress(here),
                "model": self._model_status(),
            }

    def _current(self, labelled: set[str]) -> QueuedTurn | None:
        """The head of the queue, past turns someone else labelled since it was ranked."""
        while self._queue and self._queue[0].turn_id in labelled and not self._queue[0].again:
            self._queue.pop(0)
        if not self._queue:
            self._fill_queue()
        return self._queue[0] if self._queue else None

    def view(self, turn_id: str, why: str = "") -> dict[str, Any]:
        """What the page shows of a turn: every stage's output, the turns before and after it
        in its dialogue, the model's guess and the note this annotator left on it."""
        record = self._record(turn_id)
        row = self._row[turn_id]
        offset, length = self._dialogue[record["dialogue_id"]]
        position = row - offset
        return {
            "turn_id": turn_id,
            "dialogue_id": record["dialogue_id"],
            "turn_index": record["turn_index"],
            "position": position + 1,
            "dialogue_turns": length,
            "timestamp": record["timestamp"].isoformat() if record["timestamp"] else None,
            "source": f"{record['source_file']}:{record['source_line']}",
            "stages": _stages(record),
            "previous": self._neighbour(row - 1) if position > 0 else None,
            "next": self._neighbour(row + 1) if position + 1 < length else None,
            "prediction": self._prediction(record["dialogue_id"], turn_id),
            "why": why,
            "note": self._saved_note(turn_id),
        }

    def _neighbour(self, row: int) -> dict[str, Any]:
        record = self.traces.row(row, named=True)
        return {
            "turn_id": record["turn_id"],
            "turn_index": record["turn_index"],
            "stages": _stages(record),
        }

    def _triage(self, bundle: ModelBundle, dialogue_ids: set[str]) -> dict[str, pl.DataFrame]:
        """The triage path's rows (probabilities, top reasons) for whole dialogues, in one
        call, by dialogue."""
        if not dialogue_ids:
            return {}
        wanted = self.traces.filter(pl.col("dialogue_id").is_in(list(dialogue_ids)))
        triaged = triage_traces(wanted, bundle, top_k=TOP_REASONS)
        return {
            key[0]: part for key, part in triaged.partition_by("dialogue_id", as_dict=True).items()
        }

    def _queue_dialogues(self, queue: list[QueuedTurn]) -> set[str]:
        return {self.traces.row(self._row[q.turn_id], named=True)["dialogue_id"] for q in queue}

    def _prediction(self, dialogue_id: str, turn_id: str) -> dict[str, Any]:
        """The model's guess for a turn (computed with the queue, or now for any other turn)."""
        if dialogue_id not in self._predictions:
            self._predictions.update(self._triage(self._bundle, {dialogue_id}))
        triaged = self._predictions[dialogue_id]
        row = triaged.row(triaged.get_column("turn_id").to_list().index(turn_id), named=True)
        return {
            "predicted": row["predicted"],
            "confidence": row["confidence"],
            "probabilities": {
                name: row[column]
                for name, column in zip(FAILURE_POINTS, PROBABILITY_COLUMNS, strict=True)
            },
            "reasons": row["reasons"],
        }

    def _current_here(self) -> pl.DataFrame:
        """The store's current labels (with their seats, `LabelStore.seated`) on turns of these
        dumps whose record is unchanged (a label whose turn changed content under the same id
        is stale and does not count)."""
        current = self.store.seated()
        hashes = pl.DataFrame(
            {"turn_id": list(self._hashes), "_hash": list(self._hashes.values())},
            schema={"turn_id": pl.String, "_hash": pl.String},
        )
        return (
            current.join(hashes, on="turn_id", how="inner", maintain_order="left")
            .filter(pl.col("record_hash") == pl.col("_hash"))
            .drop("_hash")
        )

    def _labelled(self, here: pl.DataFrame | None = None) -> set[str]:
        """Turns of these dumps that anyone has labelled (they never come back)."""
        here = self._current_here() if here is None else here
        return set(here.get_column("turn_id").to_list())

    def _progress(self, here: pl.DataFrame) -> dict[str, Any]:
        mine = here.filter(pl.col("annotator") == self.annotator)
        counts = dict(mine.get_column("failure_point").value_counts().iter_rows())
        return {
            "labelled": len(mine),
            "this_session": len(self._done),
            "per_class": {name: int(counts.get(name, 0)) for name in FAILURE_POINTS},
            "labelled_by_anyone": len(self._labelled(here)),
            "turns": len(self.traces),
            "skipped": len(self._skipped),
        }

    def _saved_note(self, turn_id: str) -> str | None:
        """The note this annotator's label of the turn would carry: the latest note row or
        note of a live label."""
        history = self.store.history()
        undone = set(history.get_column("undoes").drop_nulls().to_list())
        notes = history.filter(
            (pl.col("turn_id") == turn_id)
            & (pl.col("annotator") == self.annotator)
            & pl.col("note").is_not_null()
            & (
                (pl.col("action") == "note")
                | ((pl.col("action") == "label") & ~pl.col("id").is_in(list(undone)))
            )
        )
        return notes.get_column("note")[-1] if len(notes) else None

    def _model_status(self) -> dict[str, Any]:
        return {
            "version": self._model_version,
            "labels": self._model_labels,
            "refitting": self._refitting(),
            "error": self._refit_error,
            "refit_every": self.refit_every,
            "next_refit_in": max(self.refit_every - self._since_refit, 0),
        }

    # ---- what the annotator does --------------------------------------------------------

    def label(self, turn_id: str, failure_point: str, note: str | None = None) -> dict[str, Any]:
        """Store a label (with an optional note) and move past the turn; returns the state."""
        if failure_point not in FAILURE_POINTS:
            raise ReviewError(
                f"unknown failure point {failure_point!r} (one of {', '.join(FAILURE_POINTS)})"
            )
        note = _clean(note)
        with self._lock:
            record = self._record(turn_id)
            self.store.add(
                turn_id,
                record["dialogue_id"],
                failure_point,
                self.annotator,
                source_path=record["source_file"],
                record_hash=self._hashes[turn_id],
                note=note,
            )
            self._done.append(Labelled(turn_id, failure_point, note))
            self._drop(turn_id)
            self._since_refit += 1
            if self._since_refit >= self.refit_every:
                self._start_refit()
            return self.state()

    def skip(self, turn_id: str, note: str | None = None) -> dict[str, Any]:
        """Leave a turn unlabelled for now (storing `note` first, if any); it comes back once
        the rest of the queue is done."""
        with self._lock:
            if _clean(note) is not None:
                self.note(turn_id, note)
            self._record(turn_id)
            self._skipped.add(turn_id)
            self._drop(turn_id)
            return self.state()

    def note(self, turn_id: str, text: str) -> dict[str, Any]:
        """Store a note on a turn, labelled or not (it shows with the turn's label)."""
        text = _clean(text)
        if text is None:
            raise ReviewError("an empty note: type something first")
        with self._lock:
            record = self._record(turn_id)
            self.store.note(
                turn_id,
                self.annotator,
                text,
                dialogue_id=record["dialogue_id"],
                source_path=record["source_file"],
                record_hash=self._hashes[turn_id],
            )
            return self.state()

    def undo(self) -> dict[str, Any]:
        """Take back this session's latest label and show its turn again.

        The state gets an `undone` entry with the class and note taken back, so the page can
        offer the note again.
        """
        with self._lock:
            if not self._done:
                raise ReviewError("nothing to undo: no label was given in this session")
            last = self._done.pop()
            self.store.undo(last.turn_id, self.annotator)
            self._since_refit = max(self._since_refit - 1, 0)
            self._drop(last.turn_id)
            self._queue.insert(0, QueuedTurn(last.turn_id, "your label was undone", again=True))
            state = self.state()
            state["undone"] = {
                "turn_id": last.turn_id,
                "failure_point": last.failure_point,
                "note": last.note,
            }
            return state

    def _record(self, turn_id: str) -> dict[str, Any]:
        row = self._row.get(turn_id)
        if row is None:
            raise ReviewError(f"turn {turn_id!r} is not in the reviewed dump(s)")
        return self.traces.row(row, named=True)

    def _drop(self, turn_id: str) -> None:
        self._queue = [q for q in self._queue if q.turn_id != turn_id]

    # ---- the queue and the model --------------------------------------------------------

    def _fill_queue(self) -> None:
        """Refill an empty queue from the current model; skipped turns come back last."""
        here = self._current_here()
        labelled = self._labelled(here)
        excluded = labelled | self._skipped
        if len(excluded) >= len(self._row):
            if not self._skipped:
                return
            self._skipped.clear()
            excluded = labelled
            if len(excluded) >= len(self._row):
                return
        self._queue = self._ranked(self._bundle, excluded, here)
        missing = self._queue_dialogues(self._queue) - set(self._predictions)
        self._predictions.update(self._triage(self._bundle, missing))

    def _ranked(
        self, bundle: ModelBundle, excluded: set[str], labels: pl.DataFrame
    ) -> list[QueuedTurn]:
        """The queue without `excluded` turns; `labels` (current store rows) let the queue
        look for turns like the labelled ones of rare classes."""
        classes = dict.fromkeys(excluded) | {
            t: label
            for t, label in labels.select("turn_id", "failure_point").iter_rows()
            if t in excluded
        }
        chosen = next_turns(
            self.traces, bundle, labelled=classes, n=self.batch, strategy="active", seed=self.seed
        )
        self.store.record_seats(chosen)  # adapt judges models on the seats the model did not choose
        return [
            QueuedTurn(t, why)
            for t, why in chosen.select("turn_id", "why").iter_rows()
            if t not in excluded
        ]

    def _refitting(self) -> bool:
        return self._refit_thread is not None and self._refit_thread.is_alive()

    def _start_refit(self) -> None:
        if self._refitting() or self._closed:
            return
        self._since_refit = 0
        self._refit_thread = threading.Thread(target=self._refit, name="fpi-refit", daemon=True)
        self._refit_thread.start()

    def _refit(self) -> None:
        """Fit a new model on every label so far, re-rank the queue, then swap both in."""
        try:
            with self._lock:
                labels = self._current_here()
            bundle = adapt(self.traces, labels, start=self.start, seed=self.seed)
            with self._lock:
                excluded = self._labelled() | self._skipped
            queue = self._ranked(bundle, excluded, labels)
            predictions = self._triage(bundle, self._queue_dialogues(queue))
        except KeyboardInterrupt:  # Ctrl-C reaches polars queries in any thread: stop quietly
            return
        except Exception as exc:  # a failed refit keeps the old model; the page says why
            with self._lock:
                if self._closed:
                    return
                traceback.print_exc(file=sys.stderr)
                self._refit_error = f"{type(exc).__name__}: {exc}"
            return
        with self._lock:
            if self._closed:
                return
            excluded = self._labelled() | self._skipped
            shown = self._queue[0] if self._queue else None
            queue = [q for q in queue if q.turn_id not in excluded]
            if shown is not None and shown.turn_id not in excluded:
                queue = [shown, *(q for q in queue if q.turn_id != shown.turn_id)]
            self._queue = queue
            self._bundle = bundle
            self._predictions = predictions
            self._model_version += 1
            self._model_labels = labels.height
            self._refit_error = None
            self._refit_thread = None
            if self._since_refit >= self.refit_every:
                self._start_refit()

    @property
    def labels_given(self) -> int:
        """Labels given (and not undone) in this session; plain Python, safe after Ctrl-C."""
        return len(self._done)

    @property
    def bundle(self) -> ModelBundle:
        """The model the page shows predictions from (the latest refit, once there is one)."""
        with self._lock:
            return self._bundle

    def wait_for_refit(self, timeout: float | None = None) -> bool:
        """Block until no refit is running, chained ones included (for scripts and tests);
        False on timeout."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while (thread := self._refit_thread) is not None and thread.is_alive():
            left = None if deadline is None else deadline - time.monotonic()
            if left is not None and left <= 0:
                return False
            thread.join(left)
        return True

    def close(self) -> None:
        """Start no more refits (a running one is abandoned in its daemon thread) and close
        the label store if the session opened it."""
        with self._lock:
            self._closed = True
            if self._own_store:
                self.store.close()


def _clean(note: str | None) -> str | None:
    """A note without surrounding blanks; None when there is nothing left."""
    return (note.strip() or None) if note is not None else None


def _stages(record: dict[str, Any]) -> list[dict[str, str]]:
    return [{"stage": stage, "output": text} for stage, text in describe_stages(record)]


def open_session(
    dumps: Sequence[str | Path],
    labels: Path | str,
    *,
    annotator: str,
    model_dir: Path | str | None = None,
    refit_every: int = DEFAULT_REFIT_EVERY,
    seed: int = 0,
) -> ReviewSession:
    """A session over dumps on disk, a label database and a model bundle (default: bundled)."""
    bundle = load_bundle(model_dir)
    return ReviewSession(
        read_traces(dumps),
        LabelStore(labels),
        bundle,
        annotator=annotator,
        refit_every=refit_every,
        seed=seed,
        own_store=True,
    )
