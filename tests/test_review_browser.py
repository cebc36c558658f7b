"""The review page in the real headless Chromium, typed on with real key presses: labels, undo,
notes and a failed save reach the database as they should, and turn text stays text."""

from __future__ import annotations

import json
import sqlite3
import threading

import pytest
from fixtures.chromium import Chromium
from fixtures.review import HOSTILE, review_dump

from fpi.io import read_traces
from fpi.labels import LabelStore
from fpi.report.browser import chromium_path
from fpi.review import ReviewServer, ReviewSession

pytestmark = pytest.mark.skipif(
    chromium_path() is None,
    reason="headless Chromium not installed (Debian package `chromium`; .ci/run installs it)",
)
NOTE = "said <b>play</b> & got 'pay'"


@pytest.fixture(scope="module")
def chromium():
    with Chromium() as browser:
        yield browser


@pytest.fixture(scope="module")
def traces(small_traces, tmp_path_factory):
    return read_traces(review_dump(small_traces, tmp_path_factory.mktemp("review"), hostile=True))


@pytest.fixture
def review(chromium, traces, small_bundle, tmp_path):
    """A fresh label database and server per test, in the module's browser."""
    store = LabelStore(tmp_path / "labels.db")
    session = ReviewSession(traces, store, small_bundle, annotator="ann", refit_every=100)
    server = ReviewServer(session, port=0)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    chromium.events.clear()
    chromium.goto(server.url)
    chromium.wait_for(
        f"location.port === '{server.port}' && document.body.dataset.state === 'ready'"
    )
    yield chromium, session, store
    server.shutdown()
    server.server_close()
    thread.join(10)
    store.close()


def shown(browser) -> str:
    return browser.evaluate("document.body.dataset.turn")


def act(browser, key: str, actions: int) -> str:
    """Press a key and wait until the page has finished `actions` saves in all."""
    browser.press(key)
    browser.wait_for(f"document.body.dataset.actions === '{actions}'")
    return shown(browser)


def text_of(browser, selector: str) -> str:
    return browser.evaluate(f"document.querySelector({json.dumps(selector)}).textContent")


def test_label_three_turns_undo_one_and_add_a_note(review):
    browser, _, store = review
    first = shown(browser)
    second = act(browser, "3", 1)  # asr
    assert second != first
    browser.press("n")
    browser.wait_for("document.activeElement.id === 'note'")
    browser.type_text(NOTE)
    browser.press("Escape")  # leaves the note unsaved: it goes with the label
    third = act(browser, "4", 2)  # nlu, with the note
    fourth = act(browser, "6", 3)  # result
    assert len({first, second, third, fourth}) == 4
    back = act(browser, "u", 4)
    assert back == third
    assert "Undone: result" in text_of(browser, "#status")
    assert "ann: 2 labelled" in text_of(browser, "#progress")
    current = store.current().select("turn_id", "failure_point", "annotator", "note").rows()
    assert current == [(first, "asr", "ann", None), (second, "nlu", "ann", NOTE)]
    history = store.history().select("action", "turn_id", "failure_point").rows()
    assert history == [
        ("label", first, "asr"),
        ("label", second, "nlu"),
        ("label", third, "result"),
        ("undo", third, None),
    ]
    with sqlite3.connect(store.path) as db:  # the rows are on disk, not only in the process
        assert db.execute("SELECT COUNT(*) FROM labels").fetchone() == (4,)
    assert browser.page_errors() == []


def test_a_note_saved_with_enter_and_keys_pressed_in_a_burst(review):
    browser, _, store = review
    first = shown(browser)
    browser.press("n")
    browser.wait_for("document.activeElement.id === 'note'")
    browser.type_text("keys ")
    for key in "1su":  # typed into the note they are text, not actions
        browser.press(key)
    browser.press("Enter")
    browser.wait_for("document.body.dataset.actions === '1'")
    assert shown(browser) == first
    assert text_of(browser, "#note-state") == "saved"
    for key in "125":  # pressed without waiting: each applies to the next turn in turn
        browser.press(key)
    browser.wait_for("document.body.dataset.actions === '4'")
    labels = store.current().select("turn_id", "failure_point", "note").rows()
    assert [fp for _, fp, _ in labels] == ["correct", "false_wake", "er"]
    assert labels[0] == (first, "correct", "keys 1su")
    assert len({turn for turn, _, _ in labels}) == 3


def test_a_failed_save_keeps_the_label_on_screen_until_it_is_retried(review, monkeypatch):
    browser, _, store = review
    first = shown(browser)
    real_add, calls = store.add, []

    def flaky_add(*args, **kw):
        calls.append(args)
        if len(calls) == 1:
            raise sqlite3.OperationalError("database is locked")
        return real_add(*args, **kw)

    monkeypatch.setattr(store, "add", flaky_add)
    browser.press("3")
    browser.wait_for("document.body.dataset.failed === '1'")
    status = text_of(browser, "#status")
    assert "Not saved" in status and "database is locked" in status and "retry" in status
    assert shown(browser) == first
    assert browser.evaluate("document.querySelector('#keys .pending').dataset.cls") == "asr"
    assert store.current().is_empty()
    browser.press("Enter")
    browser.wait_for("document.body.dataset.actions === '1'")
    assert shown(browser) != first
    assert store.current().select("turn_id", "failure_point").rows() == [(first, "asr")]


def test_hostile_turn_text_renders_as_text(review):
    browser, _, _ = review
    assert HOSTILE in text_of(browser, "#stages")
    assert HOSTILE in text_of(browser, "#context") or "first turn" in text_of(browser, "#context")
    assert browser.evaluate("document.querySelectorAll('main img, footer img').length") == 0
    assert browser.evaluate("document.documentElement.getAttribute('data-fpi-injected')") is None
    assert browser.evaluate("document.getElementById('status').hidden") is True
    assert browser.page_errors() == []
