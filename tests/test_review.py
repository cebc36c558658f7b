"""`ReviewSession`: the queue, the label store and the background refit behind `fpi review`."""

from __future__ import annotations

import threading

import numpy as np
import polars as pl
import pytest
from fixtures.review import gold, review_dump

import fpi.adapt
import fpi.review.session
from fpi.explain import describe_stages
from fpi.io import read_traces
from fpi.labels import LabelStore, record_hash
from fpi.queue import next_turns
from fpi.review import ReviewError, ReviewSession
from fpi.schema import FAILURE_POINTS
from fpi.triage import triage_traces


@pytest.fixture(scope="module")
def traces(small_traces, tmp_path_factory):
    return read_traces(review_dump(small_traces, tmp_path_factory.mktemp("review")))


@pytest.fixture
def store(tmp_path):
    with LabelStore(tmp_path / "labels.db") as store:
        yield store


def make_session(traces, store, bundle, **options) -> ReviewSession:
    return ReviewSession(traces, store, bundle, annotator="ann", **options)


@pytest.fixture
def session(traces, store, small_bundle):
    session = make_session(traces, store, small_bundle)
    yield session
    session.close()
    session.wait_for_refit(60)


def test_turns_come_in_queue_order_with_every_stage_and_the_models_guess(
    session, traces, small_bundle
):
    queued = next_turns(traces, small_bundle, labelled=set(), n=session.batch, seed=0)
    turn = session.state()["turn"]
    assert turn["turn_id"] == queued.get_column("turn_id")[0]
    assert turn["why"] == queued.get_column("why")[0]
    record = traces.filter(pl.col("turn_id") == turn["turn_id"]).row(0, named=True)
    assert [(s["stage"], s["output"]) for s in turn["stages"]] == describe_stages(record)
    assert turn["source"] == f"{record['source_file']}:{record['source_line']}"
    dialogue = traces.filter(pl.col("dialogue_id") == record["dialogue_id"]).sort("turn_index")
    triaged = triage_traces(dialogue, small_bundle).filter(pl.col("turn_id") == turn["turn_id"])
    prediction = turn["prediction"]
    assert prediction["predicted"] == triaged.get_column("predicted").item()
    assert set(prediction["probabilities"]) == set(FAILURE_POINTS)
    assert sum(prediction["probabilities"].values()) == pytest.approx(1.0)
    assert prediction["reasons"] == triaged.get_column("reasons").item().to_list()
    assert 0 < len(prediction["reasons"]) <= 5


def test_the_session_records_the_queues_seats(session, traces, store, small_bundle):
    queued = next_turns(traces, small_bundle, labelled=set(), n=session.batch, seed=0)
    assert session.state()["turn"] is not None
    seats = dict(store.seats().iter_rows())
    assert seats == dict(queued.select("turn_id", "seat").iter_rows())
    assert {"random", "model"} <= set(seats.values())


def test_a_turn_shows_its_neighbours_in_the_dialogue(session, traces):
    lengths = traces.group_by("dialogue_id").len().filter(pl.col("len") >= 3)
    dialogue = traces.filter(pl.col("dialogue_id") == lengths.get_column("dialogue_id")[0])
    ids = dialogue.sort("turn_index").get_column("turn_id").to_list()
    middle = session.view(ids[1])
    assert middle["previous"]["turn_id"] == ids[0]
    assert middle["next"]["turn_id"] == ids[2]
    assert middle["position"] == 2 and middle["dialogue_turns"] == len(ids)
    assert session.view(ids[0])["previous"] is None
    assert session.view(ids[-1])["next"] is None


def test_a_label_is_stored_with_its_source_and_hash_and_the_page_moves_on(session, store, traces):
    first = session.state()["turn"]["turn_id"]
    after = session.label(first, "asr", note="  heard 'play' as 'pay'  ")
    assert after["turn"]["turn_id"] != first
    row = store.current().row(0, named=True)
    record = traces.filter(pl.col("turn_id") == first).row(0, named=True)
    assert row["turn_id"] == first and row["failure_point"] == "asr"
    assert row["annotator"] == "ann" and row["note"] == "heard 'play' as 'pay'"
    assert row["dialogue_id"] == record["dialogue_id"]
    assert row["source_path"] == record["source_file"]
    assert row["record_hash"] == record_hash(record)
    progress = after["progress"]
    assert progress["labelled"] == progress["this_session"] == progress["labelled_by_anyone"] == 1
    registered = store.turns()  # so a label file naming these turns can be imported later
    assert set(registered.get_column("turn_id")) == set(traces.get_column("turn_id"))
    assert progress["per_class"] == {c: int(c == "asr") for c in FAILURE_POINTS}


def test_undo_takes_the_latest_label_back_and_shows_its_turn_again(session, store):
    first = session.state()["turn"]["turn_id"]
    second = session.label(first, "nlu", note="wrong intent")["turn"]["turn_id"]
    session.label(second, "correct")
    undone = session.undo()
    assert undone["turn"]["turn_id"] == second
    assert undone["undone"] == {"turn_id": second, "failure_point": "correct", "note": None}
    again = session.undo()
    assert again["turn"]["turn_id"] == first
    assert again["undone"]["note"] == "wrong intent"
    assert store.current().is_empty()
    assert store.history().get_column("action").to_list() == ["label", "label", "undo", "undo"]
    with pytest.raises(ReviewError, match="nothing to undo"):
        session.undo()


def test_a_note_is_stored_at_once_and_travels_with_the_turn(session, store):
    turn = session.state()["turn"]["turn_id"]
    state = session.note(turn, "  barge-in after the prompt ")
    assert state["turn"]["turn_id"] == turn
    assert state["turn"]["note"] == "barge-in after the prompt"
    session.label(turn, "result")
    assert store.current().get_column("note").to_list() == ["barge-in after the prompt"]
    with pytest.raises(ReviewError, match="empty note"):
        session.note(turn, "   ")


def test_skipped_turns_come_back_once_the_rest_is_labelled(small_traces, tmp_path, small_bundle):
    tiny = read_traces(review_dump(small_traces, tmp_path, dialogues=3))
    with LabelStore(tmp_path / "labels.db") as store:
        session = make_session(tiny, store, small_bundle)
        skipped = session.state()["turn"]["turn_id"]
        state = session.skip(skipped, note="not sure")
        seen = {skipped}
        while state["turn"] is not None and state["turn"]["turn_id"] != skipped:
            seen.add(state["turn"]["turn_id"])
            state = session.label(state["turn"]["turn_id"], "correct")
        assert state["turn"]["turn_id"] == skipped
        assert seen == set(tiny.get_column("turn_id"))
        assert state["turn"]["note"] == "not sure"
        state = session.label(skipped, "er")
        assert state["turn"] is None
        assert state["progress"]["labelled"] == tiny.height


def test_unknown_turns_and_classes_are_refused_and_nothing_is_stored(session, store):
    turn = session.state()["turn"]["turn_id"]
    with pytest.raises(ReviewError, match="unknown failure point 'tts'"):
        session.label(turn, "tts")
    with pytest.raises(ReviewError, match="not in the reviewed dump"):
        session.label("no-such-turn", "asr")
    with pytest.raises(ReviewError, match="not in the reviewed dump"):
        session.skip("no-such-turn")
    assert store.history().is_empty()


def queue_order(session: ReviewSession) -> list[str]:
    """Every turn the session would show, in order (skipping through them all)."""
    order: list[str] = []
    while (turn := session.state()["turn"]) is not None and turn["turn_id"] not in order:
        order.append(turn["turn_id"])
        session.skip(turn["turn_id"])
    return order


def test_labels_of_other_annotators_leave_the_queue_but_stale_ones_do_not(
    traces, store, small_bundle
):
    taken, changed = traces.get_column("turn_id").to_list()[:2]
    record = traces.filter(pl.col("turn_id") == taken).row(0, named=True)
    store.add(taken, "d", "asr", "other", source_path="x", record_hash=record_hash(record))
    store.add(changed, "d", "asr", "other", source_path="x", record_hash="0" * 32)
    session = make_session(traces, store, small_bundle)
    progress = session.state()["progress"]
    assert progress["labelled_by_anyone"] == 1 and progress["labelled"] == 0
    order = queue_order(session)
    assert taken not in order and changed in order
    assert len(order) == traces.height - 1


def test_the_refit_runs_in_the_background_while_labels_keep_coming(
    traces, store, small_bundle, monkeypatch
):
    real_adapt, release, started = fpi.adapt.adapt, threading.Event(), threading.Event()
    seen_labels = []

    def slow_adapt(traces, labels, **kw):
        seen_labels.append(labels.height)
        started.set()
        assert release.wait(60)
        return real_adapt(traces, labels, **kw)

    monkeypatch.setattr(fpi.review.session, "adapt", slow_adapt)
    session = make_session(traces, store, small_bundle, refit_every=4)
    labelled = []
    state = session.state()
    for _ in range(4):
        turn = state["turn"]["turn_id"]
        state = session.label(turn, gold(traces, turn))
        labelled.append(turn)
    assert started.wait(30)
    assert state["model"]["refitting"] and state["model"]["version"] == 0
    for _ in range(2):  # accepted while the refit is running
        turn = state["turn"]["turn_id"]
        state = session.label(turn, gold(traces, turn))
        labelled.append(turn)
    shown = state["turn"]["turn_id"]
    release.set()
    assert session.wait_for_refit(120)
    after = session.state()
    assert seen_labels == [4]
    assert after["model"] == {
        "version": 1,
        "labels": 4,
        "refitting": False,
        "error": None,
        "refit_every": 4,
        "next_refit_in": 2,
    }
    assert session.bundle is not small_bundle
    assert after["turn"]["turn_id"] == shown  # the turn on screen stays put
    remaining = []
    while (state := session.state())["turn"] is not None and len(remaining) < 30:
        remaining.append(state["turn"]["turn_id"])
        session.skip(state["turn"]["turn_id"])
    assert not set(remaining) & set(labelled)
    assert store.current().height == 6
    session.close()


def test_a_failed_refit_keeps_the_old_model_and_says_why(traces, store, small_bundle, monkeypatch):
    def broken_adapt(*args, **kw):
        raise RuntimeError("out of memory")

    monkeypatch.setattr(fpi.review.session, "adapt", broken_adapt)
    session = make_session(traces, store, small_bundle, refit_every=1)
    turn = session.state()["turn"]["turn_id"]
    session.label(turn, "asr")
    assert session.wait_for_refit(30)
    state = session.state()
    assert state["model"]["error"] == "RuntimeError: out of memory"
    assert state["model"]["version"] == 0 and session.bundle is small_bundle
    session.label(state["turn"]["turn_id"], "nlu")
    assert store.current().height == 2
    assert session.wait_for_refit(30)  # the second label's refit, before the store closes
    session.close()


def test_a_real_refit_swaps_in_adapts_bundle_and_its_predictions(traces, store, small_bundle):
    # 12 labels are too few to judge a new fit: adapt returns (a copy of) the start model
    session = make_session(traces, store, small_bundle, refit_every=12)
    state = session.state()
    for _ in range(12):
        turn = state["turn"]["turn_id"]
        state = session.label(turn, gold(traces, turn))
    assert session.wait_for_refit(120)
    state = session.state()
    assert state["model"]["version"] == 1 and state["model"]["error"] is None
    assert state["model"]["labels"] == 12
    probabilities = np.array(list(state["turn"]["prediction"]["probabilities"].values()))
    assert probabilities.sum() == pytest.approx(1.0)
    assert session.bundle.metadata["adaptation"]["labels"] == 12
    assert session.bundle is not small_bundle


def test_bad_session_options_are_refused(traces, store, small_bundle):
    with pytest.raises(ReviewError, match="annotator"):
        ReviewSession(traces, store, small_bundle, annotator=" ")
    with pytest.raises(ReviewError, match="refit_every"):
        make_session(traces, store, small_bundle, refit_every=0)
    with pytest.raises(ReviewError, match="no turns"):
        make_session(traces.head(0), store, small_bundle)


def test_a_turn_another_annotator_labels_leaves_my_queue_at_once(traces, store, small_bundle):
    ann = make_session(traces, store, small_bundle)
    bob = ReviewSession(traces, store, small_bundle, annotator="bob")
    first = ann.state()["turn"]["turn_id"]
    assert bob.state()["turn"]["turn_id"] == first
    ann.label(first, "asr")
    state = bob.state()
    assert state["turn"]["turn_id"] != first
    assert state["progress"]["labelled"] == 0 and state["progress"]["labelled_by_anyone"] == 1


def test_ctrl_c_reaching_the_refit_thread_stops_it_quietly(
    traces, store, small_bundle, monkeypatch, capfd
):
    def interrupted(*args, **kw):
        raise KeyboardInterrupt  # polars re-raises Ctrl-C in whichever thread runs a query

    monkeypatch.setattr(fpi.review.session, "adapt", interrupted)
    session = make_session(traces, store, small_bundle, refit_every=1)
    session.label(session.state()["turn"]["turn_id"], "asr")
    assert session.wait_for_refit(30)
    assert session.state()["model"]["error"] is None
    assert session.labels_given == 1
    assert "Traceback" not in capfd.readouterr().err
