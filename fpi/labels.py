"""The label store: human failure-point labels in one SQLite file that several annotators share.

History is append-only. Every action is one row in `labels`, written in its own transaction:
`label` (a failure point for a turn), `undo` (cancels that annotator's latest live label of the
turn, so undoing a relabel brings back the label before it) and `note`. The latest live label
per (turn, annotator) counts. WAL mode lets readers and several writers share the file; a
crash or Ctrl-C loses at most the row being written.

Every label carries the hash of the turn's `fpi-trace/1` record (`record_hash`), so a label never
silently attaches to a different turn that reuses the id: `match_labels` sets such labels aside
as stale, and every consumer (queue, adapt, train, evaluate) uses only the matching ones.

The `seats` table remembers how the queue chose each turn it offered (`record_seats`,
`fpi.queue.SEATS`), so `fpi adapt` can judge models on the labels the model did not choose
(`seated`); a database written before it existed gains the empty table when opened.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import sqlite3
import threading
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl

from fpi.errors import FpiError, InputError
from fpi.queue import SEATS
from fpi.schema import FAILURE_POINTS, TRACE_JSON_SCHEMA, TRACE_SCHEMA

STORE_FORMAT = "fpi-labels/1"
#: Seconds a writer waits for another writer's transaction before giving up.
BUSY_TIMEOUT_S = 30.0
#: Record fields that do not identify a turn's content (labels, provenance, the id itself).
_UNHASHED = ("turn_id", "label", "reference_labels", "source_file", "source_line")
_HASHED = tuple(name for name in TRACE_JSON_SCHEMA.names() if name not in _UNHASHED)

#: Columns of `LabelStore.current()`.
CURRENT_SCHEMA = pl.Schema(
    {
        "turn_id": pl.String,
        "dialogue_id": pl.String,
        "failure_point": pl.String,
        "annotator": pl.String,
        "created_at": pl.String,
        "note": pl.String,
        "source_path": pl.String,
        "record_hash": pl.String,
    }
)
#: Columns of `LabelStore.seats()`.
SEATED_SCHEMA = pl.Schema({"turn_id": pl.String, "seat": pl.String})
#: Columns of `LabelStore.history()`: every row ever written, in order.
HISTORY_SCHEMA = pl.Schema(
    {
        "id": pl.Int64,
        "action": pl.String,
        **CURRENT_SCHEMA,
        "undoes": pl.Int64,
    }
)

_DDL = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS labels (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    action TEXT NOT NULL CHECK (action IN ('label', 'undo', 'note')),
    turn_id TEXT NOT NULL,
    dialogue_id TEXT,
    failure_point TEXT,
    annotator TEXT NOT NULL,
    created_at TEXT NOT NULL,
    note TEXT,
    source_path TEXT,
    record_hash TEXT,
    undoes INTEGER REFERENCES labels(id)
);
CREATE INDEX IF NOT EXISTS labels_turn ON labels (turn_id, annotator);
CREATE INDEX IF NOT EXISTS labels_undoes ON labels (undoes);
CREATE TABLE IF NOT EXISTS turns (
    turn_id TEXT PRIMARY KEY,
    dialogue_id TEXT NOT NULL,
    source_path TEXT,
    record_hash TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS seats (
    turn_id TEXT PRIMARY KEY,
    seat TEXT NOT NULL,
    created_at TEXT NOT NULL
);
"""


class LabelStoreError(FpiError):
    """The label database cannot be opened or written."""


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="microseconds")


class LabelStore:
    """A label database file (created when missing). Thread-safe; several processes may write.

    Use as a context manager or call `close()`.
    """

    def __init__(self, path: Path | str) -> None:
        self.path = Path(path)
        self._lock = threading.Lock()
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._conn = sqlite3.connect(
                self.path, timeout=BUSY_TIMEOUT_S, isolation_level=None, check_same_thread=False
            )
            self._conn.execute(f"PRAGMA busy_timeout = {int(BUSY_TIMEOUT_S * 1000)}")
            self._conn.execute("PRAGMA journal_mode = WAL")
            self._conn.execute("PRAGMA synchronous = FULL")
            self._conn.executescript(_DDL)
            self._conn.execute("BEGIN IMMEDIATE")
            found = self._conn.execute("SELECT value FROM meta WHERE key = 'format'").fetchone()
            if found is None:
                self._conn.execute("INSERT INTO meta VALUES ('format', ?)", (STORE_FORMAT,))
            self._conn.execute("COMMIT")
        except sqlite3.DatabaseError as exc:
            raise LabelStoreError(f"{self.path}: not a usable label database ({exc})") from None
        if found is not None and found[0] != STORE_FORMAT:
            raise LabelStoreError(
                f"{self.path}: a {found[0]} database, this fpi reads {STORE_FORMAT}"
            )

    # ---- lifecycle -----------------------------------------------------------------------

    def close(self) -> None:
        with self._lock:
            self._conn.close()

    def __enter__(self) -> LabelStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    class _Transaction:
        def __init__(self, store: LabelStore) -> None:
            self.store = store

        def __enter__(self) -> sqlite3.Connection:
            self.store._lock.acquire()
            try:
                self.store._conn.execute("BEGIN IMMEDIATE")
            except BaseException:
                self.store._lock.release()
                raise
            return self.store._conn

        def __exit__(self, exc_type, *rest: object) -> None:
            try:
                self.store._conn.execute("COMMIT" if exc_type is None else "ROLLBACK")
            finally:
                self.store._lock.release()

    def _write(self) -> LabelStore._Transaction:
        """One write transaction (BEGIN IMMEDIATE: waits for other writers, never deadlocks)."""
        return LabelStore._Transaction(self)

    def _query(self, sql: str, params: Sequence[Any] = ()) -> list[tuple]:
        with self._lock:
            try:
                return self._conn.execute(sql, params).fetchall()
            except sqlite3.DatabaseError as exc:
                raise LabelStoreError(f"{self.path}: {exc}") from None

    # ---- writing ---------------------------------------------------------------------------

    def add(
        self,
        turn_id: str,
        dialogue_id: str,
        failure_point: str,
        annotator: str,
        *,
        source_path: str | None,
        record_hash: str,
        note: str | None = None,
        created_at: str | None = None,
    ) -> int:
        """Record a label (a relabel is just a later label); returns the new row's id."""
        _check_label(turn_id, failure_point, annotator)
        if not record_hash:
            raise LabelStoreError(f"label for {turn_id!r}: no record_hash of the labelled turn")
        return self._insert(
            "label",
            turn_id,
            dialogue_id,
            failure_point,
            annotator,
            note=note,
            source_path=source_path,
            record_hash=record_hash,
            created_at=created_at,
        )

    def add_many(self, rows: Iterable[dict[str, Any]]) -> int:
        """Add label rows (keys as `add`'s arguments) in one transaction; returns how many."""
        rows = list(rows)
        for row in rows:
            _check_label(row["turn_id"], row["failure_point"], row["annotator"])
        stamp = _now()
        with self._write() as conn:
            conn.executemany(
                "INSERT INTO labels (action, turn_id, dialogue_id, failure_point, annotator, "
                "created_at, note, source_path, record_hash) VALUES ('label',?,?,?,?,?,?,?,?)",
                [
                    (
                        r["turn_id"],
                        r.get("dialogue_id"),
                        r["failure_point"],
                        r["annotator"],
                        r.get("created_at") or stamp,
                        r.get("note"),
                        r.get("source_path"),
                        r["record_hash"],
                    )
                    for r in rows
                ],
            )
        return len(rows)

    def undo(self, turn_id: str, annotator: str) -> bool:
        """Cancel the annotator's latest live label of the turn; False when there is none."""
        with self._write() as conn:
            live = _live_label(conn, turn_id, annotator)
            if live is None:
                return False
            conn.execute(
                "INSERT INTO labels (action, turn_id, dialogue_id, annotator, created_at, "
                "source_path, record_hash, undoes) "
                "SELECT 'undo', turn_id, dialogue_id, annotator, ?, source_path, record_hash, id "
                "FROM labels WHERE id = ?",
                (_now(), live),
            )
        return True

    def note(
        self,
        turn_id: str,
        annotator: str,
        text: str,
        *,
        dialogue_id: str | None = None,
        source_path: str | None = None,
        record_hash: str | None = None,
    ) -> int:
        """Attach a note to a turn (shown as `note` in `current()` once the turn is labelled)."""
        if not annotator:
            raise LabelStoreError("a note needs an annotator name")
        return self._insert(
            "note",
            turn_id,
            dialogue_id,
            None,
            annotator,
            note=text,
            source_path=source_path,
            record_hash=record_hash,
        )

    def _insert(
        self,
        action: str,
        turn_id: str,
        dialogue_id: str | None,
        failure_point: str | None,
        annotator: str,
        *,
        note: str | None,
        source_path: str | None,
        record_hash: str | None,
        created_at: str | None = None,
    ) -> int:
        with self._write() as conn:
            cursor = conn.execute(
                "INSERT INTO labels (action, turn_id, dialogue_id, failure_point, annotator, "
                "created_at, note, source_path, record_hash) VALUES (?,?,?,?,?,?,?,?,?)",
                (
                    action,
                    turn_id,
                    dialogue_id,
                    failure_point,
                    annotator,
                    created_at or _now(),
                    note,
                    source_path,
                    record_hash,
                ),
            )
            return int(cursor.lastrowid)

    def register_turns(self, turns: pl.DataFrame) -> int:
        """Remember turns (turn_id, dialogue_id, source_path, record_hash) so that label files
        naming only a turn id can be imported and checked; returns how many were stored."""
        rows = turns.select("turn_id", "dialogue_id", "source_path", "record_hash").rows()
        with self._write() as conn:
            conn.executemany("INSERT OR REPLACE INTO turns VALUES (?,?,?,?)", rows)
        return len(rows)

    def record_seats(self, queue: pl.DataFrame) -> int:
        """Remember how the queue chose each of its turns (`turn_id`, `seat`: one of
        `fpi.queue.SEATS`); a turn queued again keeps its latest seat. Labelled turns never
        return to the queue, so a label's seat is that of the queue that offered it."""
        rows = queue.select("turn_id", "seat").rows()
        unknown = sorted({seat for _, seat in rows} - set(SEATS))
        if unknown:
            raise LabelStoreError(f"unknown queue seat(s) {', '.join(map(repr, unknown))}")
        now = _now()
        with self._write() as conn:
            conn.executemany(
                "INSERT OR REPLACE INTO seats VALUES (?,?,?)", [(t, s, now) for t, s in rows]
            )
        return len(rows)

    # ---- reading ---------------------------------------------------------------------------

    def history(self) -> pl.DataFrame:
        """Every row ever written, oldest first (`HISTORY_SCHEMA`)."""
        names = list(HISTORY_SCHEMA.names())
        rows = self._query(f"SELECT {', '.join(names)} FROM labels ORDER BY id")
        return pl.DataFrame(rows, schema=HISTORY_SCHEMA, orient="row")

    def current(self) -> pl.DataFrame:
        """The label that counts per (turn, annotator): the latest one not undone.

        `note` is the latest note the annotator left on the turn (with that label or after
        it, as a note row). Rows are ordered by when the label was written."""
        history = self.history()
        key = ["turn_id", "annotator"]
        undone = history.get_column("undoes").drop_nulls()
        latest = (
            history.filter((pl.col("action") == "label") & ~pl.col("id").is_in(undone.implode()))
            .sort("id")
            .group_by(key, maintain_order=True)
            .last()
        )
        notes = (
            history.filter((pl.col("action") == "note") & pl.col("note").is_not_null())
            .group_by(key)
            .agg(pl.col("id").last().alias("note_id"), pl.col("note").last().alias("later_note"))
        )
        later = pl.col("note_id").is_not_null() & (
            pl.col("note").is_null() | (pl.col("note_id") > pl.col("id"))
        )
        return (
            latest.join(notes, on=key, how="left", maintain_order="left")
            .with_columns(pl.when(later).then("later_note").otherwise("note").alias("note"))
            .sort("id")
            .select(CURRENT_SCHEMA.names())
        )

    def seats(self) -> pl.DataFrame:
        """turn_id, seat of every turn a queue offered (`record_seats`); empty for a database
        written before seats were recorded."""
        rows = self._query("SELECT turn_id, seat FROM seats")
        return pl.DataFrame(rows, schema=SEATED_SCHEMA, orient="row")

    def seated(self) -> pl.DataFrame:
        """`current()` plus each label's `seat`: how the queue chose its turn (null when no
        queue of this store offered it, e.g. labels imported for turns picked by hand)."""
        return self.current().join(self.seats(), on="turn_id", how="left", maintain_order="left")

    def turns(self) -> pl.DataFrame:
        """The registered turns (see `register_turns`)."""
        rows = self._query("SELECT turn_id, dialogue_id, source_path, record_hash FROM turns")
        return pl.DataFrame(
            rows,
            schema={
                "turn_id": pl.String,
                "dialogue_id": pl.String,
                "source_path": pl.String,
                "record_hash": pl.String,
            },
            orient="row",
        )

    def stats(self) -> dict[str, Any]:
        """Counts of the current labels: total, turns, per class, per annotator and both."""
        current = self.current()
        per_pair: dict[str, dict[str, int]] = {}
        for annotator, failure_point, count in (
            current.group_by("annotator", "failure_point").len().sort("annotator").iter_rows()
        ):
            per_pair.setdefault(annotator, dict.fromkeys(FAILURE_POINTS, 0))[failure_point] = count
        counts = current.get_column("failure_point").value_counts()
        per_class = dict.fromkeys(FAILURE_POINTS, 0) | dict(counts.iter_rows())
        return {
            "labels": current.height,
            "turns": current.get_column("turn_id").n_unique(),
            "annotators": len(per_pair),
            "history_rows": self._query("SELECT COUNT(*) FROM labels")[0][0],
            "per_class": per_class,
            "per_annotator": {a: sum(c.values()) for a, c in per_pair.items()},
            "per_annotator_class": per_pair,
        }


def _check_label(turn_id: str, failure_point: str, annotator: str) -> None:
    if not turn_id:
        raise LabelStoreError("a label needs a turn_id")
    if failure_point not in FAILURE_POINTS:
        raise LabelStoreError(
            f"label for {turn_id!r}: {failure_point!r} is not one of {', '.join(FAILURE_POINTS)}"
        )
    if not annotator:
        raise LabelStoreError(f"label for {turn_id!r}: no annotator name")


def _live_label(conn: sqlite3.Connection, turn_id: str, annotator: str) -> int | None:
    found = conn.execute(
        "SELECT id FROM labels l WHERE action = 'label' AND turn_id = ? AND annotator = ? "
        "AND NOT EXISTS (SELECT 1 FROM labels u WHERE u.undoes = l.id) ORDER BY id DESC LIMIT 1",
        (turn_id, annotator),
    ).fetchone()
    return None if found is None else int(found[0])


# ---- record hashes -------------------------------------------------------------------------


def trace_hashes(traces: pl.DataFrame) -> pl.Series:
    """`record_hash` of every turn of a `TRACE_SCHEMA` frame (vectorised), named `record_hash`.

    The hash covers the turn's content (dialogue, position, time and every stage's output),
    never its id, labels or where it was read from: the same turn gives the same hash whether
    it comes from JSONL or Parquet, with or without a label.
    """
    from fpi.io import to_trace_records

    records = to_trace_records(
        traces.select(
            pl.col(n) if n in traces.columns else pl.lit(None, TRACE_SCHEMA[n]).alias(n)
            for n in _HASHED
        )
    )
    texts = records.select(pl.struct(_HASHED).struct.json_encode()).to_series().to_list()
    return pl.Series(
        "record_hash", [hashlib.sha256(t.encode()).hexdigest()[:32] for t in texts], pl.String
    )


def record_hash(record: dict[str, Any]) -> str:
    """A stable hash of one turn's `fpi-trace/1` record: a raw JSON record (RFC 3339 text
    timestamp, absent fields) or a row of a trace frame (`frame.row(i, named=True)`) give the
    same value, and so does `trace_hashes` for that turn."""
    from fpi.io import from_trace_records

    values = {name: record.get(name) for name in _HASHED}
    schema = {n: TRACE_JSON_SCHEMA[n] for n in _HASHED}
    if isinstance(values["timestamp"], str):
        frame = from_trace_records(pl.DataFrame([values], schema=schema, strict=False))
    else:
        schema["timestamp"] = TRACE_SCHEMA["timestamp"]
        frame = pl.DataFrame([values], schema=schema, strict=False)
    return trace_hashes(frame).item()


# ---- labels against traces -------------------------------------------------------------------


@dataclass(frozen=True)
class LabelMatch:
    """Labels checked against the traces in hand."""

    matched: pl.DataFrame  # the turn is there with the same content
    stale: pl.DataFrame  # a turn with that id is there, but its record changed
    absent: pl.DataFrame  # no turn with that id in these traces

    def summary(self) -> str:
        text = f"{self.matched.height} label(s) match the traces"
        if self.stale.height:
            text += (
                f"; {self.stale.height} ignored because their turn's record changed since "
                "it was labelled (same turn id, other content)"
            )
        if self.absent.height:
            text += f"; {self.absent.height} name turns not in these traces"
        return text


def match_labels(labels: pl.DataFrame, traces: pl.DataFrame) -> LabelMatch:
    """Split labels (`current()` rows) into those whose turn is in `traces` with the same
    record hash, stale ones (same id, other content: never used) and absent ones."""
    hashes = traces.select("turn_id", trace_hashes(traces).alias("trace_hash"))
    joined = labels.join(hashes, on="turn_id", how="left", maintain_order="left")
    absent = joined.get_column("trace_hash").is_null()
    same = joined.get_column("trace_hash") == joined.get_column("record_hash")
    return LabelMatch(
        matched=joined.filter(same.fill_null(False)).drop("trace_hash"),
        stale=joined.filter(~absent & ~same.fill_null(False)).drop("trace_hash"),
        absent=joined.filter(absent).drop("trace_hash"),
    )


def consensus(labels: pl.DataFrame) -> pl.DataFrame:
    """One label per turn from several annotators: the majority, ties to the latest label.

    Columns turn_id, failure_point, annotators (how many labelled the turn), agreement (the
    share that chose the winner)."""
    if labels.is_empty():
        return pl.DataFrame(
            schema={
                "turn_id": pl.String,
                "failure_point": pl.String,
                "annotators": pl.UInt32,
                "agreement": pl.Float64,
            }
        )
    votes = (
        labels.group_by("turn_id", "failure_point")
        .agg(pl.len().alias("votes"), pl.col("created_at").max().alias("latest"))
        .sort("turn_id", "votes", "latest", descending=[False, True, True])
    )
    totals = labels.group_by("turn_id").agg(pl.len().alias("annotators"))
    return (
        votes.group_by("turn_id", maintain_order=True)
        .first()
        .join(totals, on="turn_id", maintain_order="left")
        .select(
            "turn_id",
            "failure_point",
            pl.col("annotators").cast(pl.UInt32),
            (pl.col("votes") / pl.col("annotators")).alias("agreement"),
        )
    )


def apply_labels(traces: pl.DataFrame, labels: pl.DataFrame, *, source: str) -> pl.DataFrame:
    """`traces` with `label` replaced by the consensus of matching store labels where a turn
    has one (label.source = `source`); other turns keep the label they came with."""
    matched = match_labels(labels, traces).matched
    gold = consensus(matched).select("turn_id", pl.col("failure_point").alias("_store_fp"))
    joined = traces.join(gold, on="turn_id", how="left", maintain_order="left")
    has = pl.col("_store_fp").is_not_null()
    return joined.with_columns(
        pl.when(has)
        .then(pl.struct(pl.col("_store_fp").alias("failure_point"), pl.lit(source).alias("source")))
        .otherwise(pl.col("label"))
        .alias("label")
    ).drop("_store_fp")


def store_gold(traces: pl.DataFrame, labels: pl.DataFrame) -> pl.DataFrame:
    """Per turn of `traces` (same order): `gold`, the consensus of the matching store labels
    (null where the store has none), and `reference:<annotator>` for each annotator's own
    labels, the columns `fpi evaluate --labels` scores against."""
    matched = match_labels(labels, traces).matched
    ids = traces.select("turn_id")
    gold = ids.join(
        consensus(matched).select("turn_id", pl.col("failure_point").alias("gold")),
        on="turn_id",
        how="left",
        maintain_order="left",
    ).select("gold")
    for annotator in sorted(labels.get_column("annotator").unique().to_list()):
        own = matched.filter(pl.col("annotator") == annotator).select(
            "turn_id", pl.col("failure_point").alias(f"reference:{annotator}")
        )
        column = ids.join(own, on="turn_id", how="left", maintain_order="left")
        gold = gold.with_columns(column.get_column(f"reference:{annotator}"))
    return gold


# ---- import and export ---------------------------------------------------------------------

#: Fields a label file row may carry; `turn_id` and `failure_point` are required.
IMPORT_FIELDS = (
    "turn_id",
    "failure_point",
    "annotator",
    "note",
    "created_at",
    "record_hash",
    "source_path",
)
_EXPORT_COLUMNS = [*CURRENT_SCHEMA.names()]


@dataclass
class ImportResult:
    """What `import_labels` did: counts add up to the rows read."""

    read: int = 0
    imported: int = 0
    rejected: list[tuple[int, str]] = field(default_factory=list)  # (line number, reason)

    def counts_add_up(self) -> bool:
        return self.read == self.imported + len(self.rejected)


def label_file_rows(path: Path | str) -> Iterator[tuple[int, dict[str, Any] | str]]:
    """(line number, row) for every record of a .jsonl or .csv label file; a row that cannot
    be read comes as (line, reason). CSV line numbers count the header as line 1."""
    path = Path(path)
    name = path.name.lower()
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise InputError(f"{path}: not UTF-8 text ({exc.reason} at byte {exc.start})") from None
    except OSError as exc:
        raise InputError(f"{path}: cannot read ({exc.strerror})") from None
    if name.endswith(".jsonl"):
        yield from parse_jsonl_rows(text)
    elif name.endswith(".csv"):
        yield from parse_csv_rows(text)
    else:
        raise InputError(f"{path}: a label file must be .jsonl or .csv")


def parse_jsonl_rows(text: str) -> Iterator[tuple[int, dict[str, Any] | str]]:
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError as exc:
            yield number, f"not valid JSON ({exc.msg} at column {exc.colno})"
            continue
        if not isinstance(row, dict):
            yield number, f"expected a JSON object, found {type(row).__name__}"
            continue
        yield number, row


def parse_csv_rows(text: str) -> Iterator[tuple[int, dict[str, Any] | str]]:
    reader = csv.DictReader(io.StringIO(text, newline=""))
    header = reader.fieldnames or []
    if header and "turn_id" not in header:
        yield 1, f"the header has no turn_id column (found {', '.join(header)})"
        return
    start = 1
    try:
        for row in reader:
            line = start + 1
            start = reader.line_num
            if None in row:
                yield line, f"{len(row[None])} more field(s) than the header has"  # type: ignore[index]
                continue
            yield line, {k: (v if v != "" else None) for k, v in row.items()}
    except csv.Error as exc:
        yield reader.line_num, f"unreadable CSV ({exc})"


def check_label_row(
    row: dict[str, Any], known: dict[str, tuple[str, str | None, str]], annotator: str | None
) -> dict[str, Any] | str:
    """A label file row as `LabelStore.add_many` input, or the reason it is rejected.

    `known` maps turn ids to (dialogue_id, source_path, record_hash); `annotator` overrides
    the row's own (and is required when the row has none)."""
    for name in IMPORT_FIELDS:
        value = row.get(name)
        if value is not None and not isinstance(value, str):
            return f"field {name}: expected text, found {json.dumps(value)}"
    turn_id, failure_point = row.get("turn_id"), row.get("failure_point")
    if not turn_id:
        return "field turn_id: missing"
    if not failure_point:
        return "field failure_point: missing"
    if failure_point not in FAILURE_POINTS:
        return f"field failure_point: {failure_point!r} is not one of {', '.join(FAILURE_POINTS)}"
    if turn_id not in known:
        return f"field turn_id: unknown turn {turn_id!r}"
    who = annotator or row.get("annotator")
    if not who:
        return "field annotator: missing (give one with --annotator)"
    dialogue_id, source_path, current_hash = known[turn_id]
    if row.get("record_hash") and row["record_hash"] != current_hash:
        return f"field record_hash: turn {turn_id!r} changed since it was labelled"
    created_at = row.get("created_at")
    if created_at is not None:
        try:
            datetime.fromisoformat(created_at)
        except ValueError:
            return f"field created_at: {created_at!r} is not an ISO 8601 time"
    return {
        "turn_id": turn_id,
        "dialogue_id": dialogue_id,
        "failure_point": failure_point,
        "annotator": who,
        "note": row.get("note"),
        "created_at": created_at,
        "source_path": row.get("source_path") or source_path,
        "record_hash": current_hash,
    }


def known_turns(store: LabelStore, traces: pl.DataFrame | None = None) -> pl.DataFrame:
    """Turns a label file may name: those registered in the store plus those of `traces`."""
    frames = [store.turns()]
    if traces is not None:
        frames.append(turn_registry(traces))
    return pl.concat(frames).unique("turn_id", keep="last", maintain_order=True)


def turn_registry(traces: pl.DataFrame) -> pl.DataFrame:
    """turn_id, dialogue_id, source_path, record_hash of every turn of a trace frame."""
    return traces.select(
        "turn_id",
        "dialogue_id",
        pl.col("source_file").alias("source_path"),
        trace_hashes(traces),
    )


def import_labels(
    store: LabelStore,
    path: Path | str,
    *,
    annotator: str | None = None,
    traces: pl.DataFrame | None = None,
) -> ImportResult:
    """Import a .jsonl/.csv label file: good rows go into the store in one transaction, the
    others are returned with their line numbers and reasons."""
    registry = known_turns(store, traces)
    if registry.is_empty():
        raise InputError(
            f"{store.path}: knows no turns to check the labels against; run `fpi queue ... "
            "--labels DB` first or give the dumps with --dump"
        )
    known = {t: (d, s, h) for t, d, s, h in registry.iter_rows()}
    result = ImportResult()
    good = []
    for number, row in label_file_rows(path):
        result.read += 1
        checked = row if isinstance(row, str) else check_label_row(row, known, annotator)
        if isinstance(checked, str):
            result.rejected.append((number, checked))
        else:
            good.append(checked)
    result.imported = store.add_many(good)
    return result


def export_labels(store: LabelStore, out: Path | str, *, history: bool = False) -> int:
    """Write the current labels (or the whole history) as .jsonl or .csv; returns the rows.
    The file is written next to `out` and moved into place, so a failure keeps the old one."""
    out = Path(out)
    frame = store.history() if history else store.current().select(_EXPORT_COLUMNS)
    name = out.name.lower()
    if not (name.endswith(".jsonl") or name.endswith(".csv")):
        raise InputError(f"{out}: export to a .jsonl or .csv file")
    out.parent.mkdir(parents=True, exist_ok=True)
    partial = out.with_name(f".{out.name}.partial")
    if name.endswith(".jsonl"):
        frame.write_ndjson(partial)
    else:
        frame.write_csv(partial)
    partial.replace(out)
    return frame.height


# ---- agreement -------------------------------------------------------------------------------


def cohen_kappa(a: Sequence[str], b: Sequence[str]) -> float:
    """Cohen's kappa of two raters over the same items (1 = perfect, 0 = chance)."""
    a, b = np.asarray(a, dtype=object), np.asarray(b, dtype=object)
    if len(a) == 0:
        return float("nan")
    observed = float(np.mean(a == b))
    classes = sorted(set(a.tolist()) | set(b.tolist()))
    expected = sum(float(np.mean(a == c)) * float(np.mean(b == c)) for c in classes)
    if expected == 1.0:
        return 1.0 if observed == 1.0 else float("nan")
    return (observed - expected) / (1.0 - expected)


def fleiss_kappa(counts: np.ndarray) -> float:
    """Fleiss' kappa from an items x classes matrix of rater counts (items with at least two
    raters; the number of raters may vary per item)."""
    counts = np.asarray(counts, dtype=np.float64)
    raters = counts.sum(axis=1)
    counts = counts[raters >= 2]
    raters = raters[raters >= 2]
    if len(counts) == 0:
        return float("nan")
    per_item = ((counts**2).sum(axis=1) - raters) / (raters * (raters - 1))
    shares = counts.sum(axis=0) / raters.sum()
    expected = float((shares**2).sum())
    if expected == 1.0:
        return 1.0
    return (float(per_item.mean()) - expected) / (1.0 - expected)


def agreement(labels: pl.DataFrame) -> dict[str, Any]:
    """Agreement on turns labelled by several annotators: Cohen's kappa and confusion for
    every pair, and Fleiss' kappa over all annotators when there are more than two."""
    annotators = sorted(labels.get_column("annotator").unique().to_list())
    wide = labels.pivot(on="annotator", index="turn_id", values="failure_point")
    pairs = []
    for i, first in enumerate(annotators):
        for second in annotators[i + 1 :]:
            both = wide.select(first, second).drop_nulls()
            a, b = both.get_column(first).to_list(), both.get_column(second).to_list()
            confusion = [[0] * len(FAILURE_POINTS) for _ in FAILURE_POINTS]
            for x, y in zip(a, b, strict=True):
                confusion[FAILURE_POINTS.index(x)][FAILURE_POINTS.index(y)] += 1
            pairs.append(
                {
                    "annotators": [first, second],
                    "turns": len(a),
                    "agreement": float(np.mean(np.array(a) == np.array(b))) if a else float("nan"),
                    "kappa": cohen_kappa(a, b),
                    "confusion": {"labels": list(FAILURE_POINTS), "matrix": confusion},
                }
            )
    shared = labels.group_by("turn_id").len().filter(pl.col("len") >= 2).height
    result: dict[str, Any] = {"annotators": annotators, "shared_turns": shared, "pairs": pairs}
    if len(annotators) > 2:
        counts = (
            labels.group_by("turn_id", "failure_point")
            .len()
            .pivot(on="failure_point", index="turn_id", values="len")
            .fill_null(0)
        )
        matrix = np.column_stack(
            [
                counts.get_column(c).to_numpy() if c in counts.columns else np.zeros(counts.height)
                for c in FAILURE_POINTS
            ]
        )
        result["fleiss_kappa"] = fleiss_kappa(matrix)
    return result
