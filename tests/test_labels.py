"""The label store: append-only history, undo, concurrency, hashes, import/export, agreement."""

from __future__ import annotations

import json
import threading

import numpy as np
import polars as pl
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from fpi.io import to_trace_records
from fpi.labels import (
    LabelStore,
    LabelStoreError,
    agreement,
    apply_labels,
    check_label_row,
    cohen_kappa,
    consensus,
    export_labels,
    fleiss_kappa,
    import_labels,
    match_labels,
    parse_csv_rows,
    parse_jsonl_rows,
    record_hash,
    trace_hashes,
    turn_registry,
)
from fpi.schema import FAILURE_POINTS


@pytest.fixture
def traces(small_traces):
    return small_traces.head(60)


@pytest.fixture
def store(tmp_path):
    with LabelStore(tmp_path / "labels.db") as opened:
        yield opened


def _add(store, traces, i, failure_point, annotator="ann", **kw):
    row = traces.row(i, named=True)
    return store.add(
        row["turn_id"],
        row["dialogue_id"],
        failure_point,
        annotator,
        source_path="dump.jsonl",
        record_hash=record_hash(row),
        **kw,
    )


def test_latest_label_counts_and_history_is_append_only(store, traces):
    first = _add(store, traces, 0, "asr")
    second = _add(store, traces, 0, "nlu", note="heard fine")
    _add(store, traces, 0, "er", annotator="bob")
    assert second > first
    current = store.current()
    mine = current.filter(pl.col("annotator") == "ann").row(0, named=True)
    assert (mine["failure_point"], mine["note"]) == ("nlu", "heard fine")
    assert current.height == 2
    assert store.history().get_column("failure_point").to_list() == ["asr", "nlu", "er"]


def test_undo_is_a_row_and_walks_back_through_relabels(store, traces):
    turn = traces.get_column("turn_id")[0]
    _add(store, traces, 0, "asr")
    _add(store, traces, 0, "nlu")
    assert store.undo(turn, "ann")
    assert store.current().get_column("failure_point").to_list() == ["asr"]
    assert store.undo(turn, "ann")
    assert store.current().is_empty()
    assert not store.undo(turn, "ann")  # nothing left to undo
    history = store.history()
    assert history.get_column("action").to_list() == ["label", "label", "undo", "undo"]
    assert history.get_column("undoes").to_list()[2:] == [2, 1]


def test_undo_of_one_annotator_leaves_the_other(store, traces):
    _add(store, traces, 0, "asr")
    _add(store, traces, 0, "nlu", annotator="bob")
    assert store.undo(traces.get_column("turn_id")[0], "bob")
    assert store.current().select("annotator", "failure_point").rows() == [("ann", "asr")]


def test_notes_attach_to_the_current_label(store, traces):
    turn = traces.get_column("turn_id")[0]
    _add(store, traces, 0, "asr")
    store.note(turn, "ann", "barge-in <b>here</b>")
    assert store.current().get_column("note").to_list() == ["barge-in <b>here</b>"]


def test_rejects_unknown_class_and_missing_fields(store, traces):
    with pytest.raises(LabelStoreError, match="not one of"):
        _add(store, traces, 0, "tts")
    with pytest.raises(LabelStoreError, match="annotator"):
        _add(store, traces, 0, "asr", annotator="")
    assert store.history().is_empty()


def test_two_connections_and_threads_write_at_once(tmp_path, traces):
    path = tmp_path / "shared.db"
    stores = [LabelStore(path), LabelStore(path)]
    errors = []

    def write(store, name):
        try:
            for i in range(40):
                _add(store, traces, i, FAILURE_POINTS[i % 6], annotator=name)
        except Exception as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=write, args=(stores[i % 2], f"a{i}")) for i in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not errors
    with LabelStore(path) as reader:
        assert reader.history().height == 160
        assert reader.current().height == 160
        assert reader.stats()["annotators"] == 4
        assert reader._query("PRAGMA journal_mode")[0][0] == "wal"
    for s in stores:
        s.close()


def test_a_crash_mid_write_loses_only_that_row(tmp_path, traces):
    path = tmp_path / "crash.db"
    store = LabelStore(path)
    _add(store, traces, 0, "asr")
    store._conn.execute("BEGIN IMMEDIATE")  # a write in flight, then the process dies
    store._conn.execute(
        "INSERT INTO labels (action, turn_id, annotator, created_at) "
        "VALUES ('label', 'x', 'ann', 'now')"
    )
    store._conn.close()
    with LabelStore(path) as reopened:
        assert reopened.current().get_column("failure_point").to_list() == ["asr"]


def test_not_a_database_is_a_clear_error(tmp_path):
    bad = tmp_path / "notes.db"
    bad.write_text("this is not sqlite at all, just some text " * 50)
    with pytest.raises(LabelStoreError, match="not a usable label database"):
        LabelStore(bad)


def test_stats_counts_per_class_and_annotator(store, traces):
    _add(store, traces, 0, "asr")
    _add(store, traces, 1, "asr")
    _add(store, traces, 1, "nlu", annotator="bob")
    stats = store.stats()
    assert stats["labels"] == 3 and stats["turns"] == 2
    assert stats["per_class"]["asr"] == 2 and stats["per_class"]["correct"] == 0
    assert stats["per_annotator"] == {"ann": 2, "bob": 1}
    assert stats["per_annotator_class"]["bob"]["nlu"] == 1


# ---- hashes --------------------------------------------------------------------------------


def test_record_hash_is_the_same_for_raw_json_frame_rows_and_vectorised(traces):
    hashes = trace_hashes(traces)
    raw = [json.loads(line) for line in to_trace_records(traces).write_ndjson().splitlines()]
    for i in (0, 7, 33):
        assert record_hash(traces.row(i, named=True)) == hashes[i]
        assert record_hash(raw[i]) == hashes[i]
    assert hashes.n_unique() == traces.height


def test_record_hash_ignores_label_but_not_content(traces):
    row = traces.row(0, named=True)
    relabelled = {**row, "label": {"failure_point": "er", "source": "x"}, "source_line": 99}
    assert record_hash(relabelled) == record_hash(row)
    changed = {**row, "asr": {**row["asr"], "text": "something else entirely"}}
    assert record_hash(changed) != record_hash(row)


def test_a_label_on_a_changed_turn_is_stale_and_never_used(store, traces):
    _add(store, traces, 0, "asr")
    _add(store, traces, 1, "nlu")
    # the same turn id now names another turn (a re-run pipeline, a reused id)
    other_text = pl.struct(
        pl.lit("a different utterance").alias("text"),
        *[pl.col("asr").struct.field(f) for f in ("confidence", "nbest", "audio_ms", "snr_db")],
    )
    changed = traces.with_columns(
        pl.when(pl.int_range(pl.len()) == 0).then(other_text).otherwise(pl.col("asr")).alias("asr")
    )
    match = match_labels(store.current(), changed)
    assert match.matched.get_column("failure_point").to_list() == ["nlu"]
    assert match.stale.get_column("failure_point").to_list() == ["asr"]
    assert "changed since" in match.summary()
    relabelled = apply_labels(changed, store.current(), source="store")
    fps = relabelled.get_column("label").struct.field("failure_point")
    assert fps[1] == "nlu" and fps[0] == traces.get_column("label").struct.field("failure_point")[0]


def test_consensus_takes_the_majority_then_the_latest():
    labels = pl.DataFrame(
        {
            "turn_id": ["t1", "t1", "t1", "t2", "t2"],
            "failure_point": ["asr", "asr", "nlu", "er", "result"],
            "annotator": ["a", "b", "c", "a", "b"],
            "created_at": ["1", "2", "3", "1", "2"],
        }
    )
    result = {r["turn_id"]: r for r in consensus(labels).iter_rows(named=True)}
    assert result["t1"]["failure_point"] == "asr" and result["t1"]["agreement"] == 2 / 3
    assert result["t2"]["failure_point"] == "result"


# ---- import / export -----------------------------------------------------------------------


def test_import_rejects_with_line_numbers_and_counts(store, traces, tmp_path):
    store.register_turns(turn_registry(traces))
    ids = traces.get_column("turn_id").to_list()
    lines = [
        json.dumps({"turn_id": ids[0], "failure_point": "asr"}),
        "",
        json.dumps({"turn_id": "nope/1", "failure_point": "asr"}),
        json.dumps({"turn_id": ids[1], "failure_point": "tts"}),
        "{broken",
        json.dumps({"turn_id": ids[2], "failure_point": "er", "annotator": "bob", "note": "n"}),
        json.dumps([1, 2]),
    ]
    path = tmp_path / "in.jsonl"
    path.write_text("\n".join(lines) + "\n")
    result = import_labels(store, path, annotator=None)
    reasons = dict(result.rejected)
    assert result.read == 6 and result.imported == 1 and result.counts_add_up()
    assert sorted(reasons) == [1, 3, 4, 5, 7]
    assert "annotator" in reasons[1]
    assert "unknown turn" in reasons[3]
    assert "'tts' is not one of" in reasons[4]
    assert "not valid JSON" in reasons[5]
    assert "JSON object" in reasons[7]
    result = import_labels(store, path, annotator="cli")
    assert result.imported == 2  # --annotator fills the gap and overrides bob
    assert store.current().filter(pl.col("annotator") == "cli").height == 2


def test_import_needs_known_turns(store, tmp_path):
    path = tmp_path / "in.csv"
    path.write_text("turn_id,failure_point\nt,asr\n")
    with pytest.raises(Exception, match="knows no turns"):
        import_labels(store, path)


def test_import_csv_line_numbers_count_the_header(store, traces, tmp_path):
    ids = traces.get_column("turn_id").to_list()
    path = tmp_path / "in.csv"
    path.write_text(
        f'turn_id,failure_point,note\n{ids[0]},asr,"two\nlines"\n{ids[1]},bad,\n{ids[2]},nlu,x,extra\n'
    )
    result = import_labels(store, path, annotator="ann", traces=traces)
    assert result.imported == 1
    assert [line for line, _ in result.rejected] == [4, 5]
    assert store.current().get_column("note").to_list() == ["two\nlines"]


@pytest.mark.parametrize("suffix", [".jsonl", ".csv"])
def test_export_then_import_round_trips(store, traces, tmp_path, suffix):
    _add(store, traces, 0, "asr", note='quote " and, comma')
    _add(store, traces, 1, "result", annotator="bob")
    _add(store, traces, 2, "correct")
    out = tmp_path / f"labels{suffix}"
    assert export_labels(store, out) == 3
    with LabelStore(tmp_path / "copy.db") as copy:
        result = import_labels(copy, out, traces=traces)
        assert result.imported == 3 and not result.rejected
        assert copy.current().equals(store.current())


def test_import_rejects_a_label_whose_turn_changed(store, traces, tmp_path):
    path = tmp_path / "in.jsonl"
    row = {
        "turn_id": traces.get_column("turn_id")[0],
        "failure_point": "asr",
        "record_hash": "0" * 32,
    }
    path.write_text(json.dumps(row) + "\n")
    result = import_labels(store, path, annotator="a", traces=traces)
    assert result.imported == 0 and "changed since" in result.rejected[0][1]


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(st.text(max_size=300))
def test_label_file_parsing_never_crashes_and_accounts_for_every_line(text):
    known = {"t1": ("d", "p", "h")}
    for parse in (parse_jsonl_rows, parse_csv_rows):
        for number, row in parse(text):
            assert number >= 1
            if not isinstance(row, str):
                checked = check_label_row(row, known, annotator="x")
                assert isinstance(checked, str | dict)
    non_blank = [line for line in text.splitlines() if line.strip()]
    assert len(list(parse_jsonl_rows(text))) == len(non_blank)


@settings(max_examples=60, deadline=None)
@given(
    st.dictionaries(
        st.sampled_from(["turn_id", "failure_point", "annotator", "note", "created_at", "x"]),
        st.one_of(st.none(), st.text(max_size=10), st.integers(), st.sampled_from(FAILURE_POINTS)),
    )
)
def test_check_label_row_accepts_only_good_rows(row):
    checked = check_label_row(row, {"t1": ("d", "p", "h")}, annotator=None)
    if isinstance(checked, dict):
        assert checked["turn_id"] == "t1" and checked["failure_point"] in FAILURE_POINTS
        assert checked["annotator"] and checked["record_hash"] == "h"


# ---- agreement -----------------------------------------------------------------------------


def test_cohen_kappa_on_known_values():
    # 2x2 textbook example: 20 yes/yes, 5 yes/no, 10 no/yes, 15 no/no -> kappa = 0.4
    a = ["asr"] * 25 + ["nlu"] * 25
    b = ["asr"] * 20 + ["nlu"] * 5 + ["asr"] * 10 + ["nlu"] * 15
    assert cohen_kappa(a, b) == pytest.approx(0.4)
    assert cohen_kappa(a, a) == 1.0


def test_fleiss_kappa_on_the_wikipedia_example():
    counts = np.array(
        [
            [0, 0, 0, 0, 14],
            [0, 2, 6, 4, 2],
            [0, 0, 3, 5, 6],
            [0, 3, 9, 2, 0],
            [2, 2, 8, 1, 1],
            [7, 7, 0, 0, 0],
            [3, 2, 6, 3, 0],
            [2, 5, 3, 2, 2],
            [6, 5, 2, 1, 0],
            [0, 2, 2, 3, 7],
        ]
    )
    assert fleiss_kappa(counts) == pytest.approx(0.210, abs=1e-3)


def test_agreement_reports_pairs_confusion_and_fleiss():
    rows = [
        ("t1", "asr", "a"), ("t1", "asr", "b"), ("t1", "nlu", "c"),
        ("t2", "er", "a"), ("t2", "er", "b"), ("t2", "er", "c"),
        ("t3", "nlu", "a"), ("t3", "asr", "b"),
    ]  # fmt: skip
    labels = pl.DataFrame(rows, schema=["turn_id", "failure_point", "annotator"], orient="row")
    report = agreement(labels)
    ab = report["pairs"][0]
    assert ab["annotators"] == ["a", "b"] and ab["turns"] == 3
    assert ab["agreement"] == pytest.approx(2 / 3)
    matrix = ab["confusion"]["matrix"]
    assert matrix[FAILURE_POINTS.index("nlu")][FAILURE_POINTS.index("asr")] == 1
    assert report["shared_turns"] == 3 and "fleiss_kappa" in report


def test_seats_are_recorded_latest_first_and_joined_to_labels(store, traces):
    ids = traces.get_column("turn_id").to_list()
    store.record_seats(pl.DataFrame({"turn_id": ids[:3], "seat": ["model", "random", "model"]}))
    store.record_seats(pl.DataFrame({"turn_id": [ids[2]], "seat": ["dialogue"]}))  # queued again
    for i in range(4):
        _add(store, traces, i, "asr")
    seated = store.seated()
    assert seated.drop("seat").equals(store.current())
    assert seated.get_column("seat").to_list() == ["model", "random", "dialogue", None]
    with pytest.raises(LabelStoreError, match="unknown queue seat"):
        store.record_seats(pl.DataFrame({"turn_id": [ids[5]], "seat": ["uncertain"]}))


def test_a_database_from_before_seats_is_read_and_gains_them(tmp_path, traces):
    import sqlite3

    path = tmp_path / "old.db"
    with LabelStore(path) as store:
        _add(store, traces, 0, "nlu")
    with sqlite3.connect(path) as conn:  # the schema of the first release: no seats table
        conn.execute("DROP TABLE seats")
    with LabelStore(path) as store:
        assert store.seated().get_column("seat").to_list() == [None]
        assert store.current().get_column("failure_point").to_list() == ["nlu"]
        store.record_seats(
            pl.DataFrame({"turn_id": [traces.item(0, "turn_id")], "seat": ["random"]})
        )
        assert store.seated().get_column("seat").to_list() == ["random"]
