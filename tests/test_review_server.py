"""The review page's HTTP API on a loopback port: pages, JSON actions, and what it refuses."""

from __future__ import annotations

import http.client
import json
import re
import threading
from concurrent.futures import ThreadPoolExecutor
from importlib import resources

import pytest
from fixtures.review import review_dump

from fpi.io import read_traces
from fpi.labels import LabelStore
from fpi.review import ReviewServer, ReviewSession
from fpi.review.server import MAX_BODY_BYTES, TOKEN_HEADER


@pytest.fixture(scope="module")
def traces(small_traces, tmp_path_factory):
    return read_traces(review_dump(small_traces, tmp_path_factory.mktemp("review")))


@pytest.fixture
def server(traces, small_bundle, tmp_path):
    store = LabelStore(tmp_path / "labels.db")
    session = ReviewSession(traces, store, small_bundle, annotator="<b>ann</b>")
    server = ReviewServer(session, port=0)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()
    thread.join(10)
    store.close()


def request(server, method, path, body=None, *, headers=None, raw=None):
    """(status, headers, decoded JSON or text) of one request, token and JSON by default."""
    connection = http.client.HTTPConnection("127.0.0.1", server.port, timeout=30)
    sent = {"Host": f"127.0.0.1:{server.port}", TOKEN_HEADER: server.token}
    if body is not None or raw is not None:
        sent["Content-Type"] = "application/json"
    sent.update(headers or {})
    payload = raw if raw is not None else (json.dumps(body).encode() if body is not None else None)
    connection.request(method, path, body=payload, headers=sent)
    response = connection.getresponse()
    data = response.read().decode()
    connection.close()
    kind = response.getheader("Content-Type", "")
    return response.status, response, json.loads(data) if "json" in kind else data


def current_turn(server) -> str:
    return request(server, "GET", "/api/state")[2]["turn"]["turn_id"]


def test_the_page_and_its_assets_are_served_from_the_package(server):
    status, response, page = request(server, "GET", "/")
    assert status == 200 and response.getheader("Content-Type").startswith("text/html")
    assert f'<meta name="fpi-token" content="{server.token}">' in page
    assert "script-src 'self'" in response.getheader("Content-Security-Policy")
    assert response.getheader("X-Content-Type-Options") == "nosniff"
    for path, kind in (("/review.js", "text/javascript"), ("/review.css", "text/css")):
        status, response, text = request(server, "GET", path)
        assert status == 200 and response.getheader("Content-Type").startswith(kind)
        assert (
            text.encode() == resources.files("fpi.review").joinpath("static", path[1:]).read_bytes()
        )
    assert request(server, "GET", "/nothing-here")[0] == 404


def test_nothing_is_fetched_from_the_internet():
    static = resources.files("fpi.review").joinpath("static")
    for name in ("index.html", "review.js", "review.css"):
        text = static.joinpath(name).read_text()
        assert not re.search(r"https?://|//[a-z]", text), name
        assert not re.search(
            r"\.(innerHTML|outerHTML)\s*=|insertAdjacentHTML|document\.write", text
        )


def test_state_is_json_with_the_turn_and_progress(server):
    status, _, state = request(server, "GET", "/api/state")
    assert status == 200
    assert state["annotator"] == "<b>ann</b>"
    assert state["turn"]["stages"][0]["stage"] == "device"
    assert state["progress"]["labelled"] == 0
    assert state["model"]["version"] == 0


def test_a_label_is_stored_before_the_answer_comes_back(server):
    turn = current_turn(server)
    status, _, state = request(
        server, "POST", "/api/label", {"turn_id": turn, "failure_point": "er", "note": "<i>x</i>"}
    )
    assert status == 200
    assert state["turn"]["turn_id"] != turn
    assert state["progress"]["per_class"]["er"] == 1
    rows = server.session.store.current()
    assert rows.select("turn_id", "failure_point", "annotator", "note").rows() == [
        (turn, "er", "<b>ann</b>", "<i>x</i>")
    ]


def test_skip_note_and_undo(server):
    first = current_turn(server)
    status, _, state = request(server, "POST", "/api/note", {"turn_id": first, "note": "hmm"})
    assert status == 200 and state["turn"]["note"] == "hmm"
    second = request(server, "POST", "/api/skip", {"turn_id": first})[2]["turn"]["turn_id"]
    assert second != first
    request(server, "POST", "/api/label", {"turn_id": second, "failure_point": "asr"})
    status, _, state = request(server, "POST", "/api/undo", {})
    assert status == 200 and state["turn"]["turn_id"] == second
    assert state["undone"]["failure_point"] == "asr"
    status, _, answer = request(server, "POST", "/api/undo", {})
    assert status == 400 and "nothing to undo" in answer["error"]
    actions = server.session.store.history().get_column("action").to_list()
    assert actions == ["note", "label", "undo"]


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ({"turn_id": "t", "failure_point": "tts"}, "unknown failure point"),
        ({"failure_point": "asr"}, "field 'turn_id'"),
        ({"turn_id": 3, "failure_point": "asr"}, "field 'turn_id'"),
        ({"turn_id": "no-such-turn", "failure_point": "asr"}, "not in the reviewed dump"),
        ({"turn_id": "t", "failure_point": "asr", "note": 5}, "field 'note'"),
    ],
)
def test_bad_label_requests_say_what_is_wrong(server, body, message):
    if body.get("turn_id") == "t":
        body["turn_id"] = current_turn(server)
    status, _, answer = request(server, "POST", "/api/label", body)
    assert status == 400 and message in answer["error"]
    assert server.session.store.history().is_empty()


def test_requests_from_elsewhere_are_refused(server):
    turn = current_turn(server)
    body = {"turn_id": turn, "failure_point": "asr"}
    assert request(server, "POST", "/api/label", body, headers={TOKEN_HEADER: "guess"})[0] == 403
    no_token = {TOKEN_HEADER: ""}
    assert request(server, "POST", "/api/label", body, headers=no_token)[0] == 403
    rebound = {"Host": f"attacker.example:{server.port}"}
    assert request(server, "GET", "/api/state", headers=rebound)[0] == 403
    assert request(server, "POST", "/api/label", body, headers=rebound)[0] == 403
    form = {"Content-Type": "application/x-www-form-urlencoded"}
    assert request(server, "POST", "/api/label", raw=b"turn_id=x", headers=form)[0] == 415
    assert request(server, "POST", "/api/label", raw=b"{not json")[0] == 400
    assert request(server, "POST", "/api/label", raw=b"[1, 2]")[0] == 400
    huge = json.dumps({"turn_id": turn, "failure_point": "asr", "note": "x" * MAX_BODY_BYTES})
    assert request(server, "POST", "/api/label", raw=huge.encode())[0] == 413
    assert request(server, "POST", "/api/nothing", {})[0] == 404
    assert server.session.store.history().is_empty()


def test_labels_posted_at_once_are_all_stored(server, traces):
    turns = traces.get_column("turn_id").to_list()[:12]

    def post(turn):
        return request(server, "POST", "/api/label", {"turn_id": turn, "failure_point": "nlu"})[0]

    with ThreadPoolExecutor(max_workers=6) as pool:
        assert list(pool.map(post, turns)) == [200] * len(turns)
    stored = server.session.store.current()
    assert sorted(stored.get_column("turn_id").to_list()) == sorted(turns)
    assert request(server, "GET", "/api/state")[2]["progress"]["labelled"] == len(turns)


def test_a_busy_port_is_a_clear_error(server):
    from fpi.errors import FpiError

    with pytest.raises(FpiError, match=f"cannot listen on 127.0.0.1:{server.port}.*--port 0"):
        ReviewServer(server.session, port=server.port)
