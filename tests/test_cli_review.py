"""`fpi review` through typer's CliRunner: it starts, prints its URL, serves, and stops cleanly."""

from __future__ import annotations

import json
import threading
import urllib.request

from fixtures.review import review_dump
from typer.testing import CliRunner

from fpi.cli import app
from fpi.review import ReviewServer

runner = CliRunner()


def test_review_starts_prints_its_url_and_serves(
    small_traces, small_model_dir, tmp_path, monkeypatch
):
    dump = review_dump(small_traces, tmp_path, dialogues=10)
    fetched = {}
    serve_forever = ReviewServer.serve_forever

    def serve_then_stop(server, *args, **kw):
        def visit():
            with urllib.request.urlopen(server.url + "api/state", timeout=30) as response:
                fetched.update(json.load(response))
            server.shutdown()

        threading.Thread(target=visit, daemon=True).start()
        serve_forever(server, *args, **kw)

    monkeypatch.setattr(ReviewServer, "serve_forever", serve_then_stop)
    db = tmp_path / "labels.db"
    args = ["review", str(dump), "--labels", str(db), "--model", str(small_model_dir)]
    result = runner.invoke(app, [*args, "--annotator", "ann", "--port", "0", "--no-browser"])
    assert result.exit_code == 0, result.output
    assert "fpi review: http://127.0.0.1:" in result.output
    assert "stopped; 0 label(s) by ann stored in" in result.output
    assert fetched["annotator"] == "ann" and fetched["turn"]["turn_id"]
    assert db.is_file()


def test_ctrl_c_stops_the_server_cleanly(small_traces, small_model_dir, tmp_path, monkeypatch):
    dump = review_dump(small_traces, tmp_path, dialogues=5)
    closed = []

    def interrupted(server, *args, **kw):
        raise KeyboardInterrupt

    real_close = ReviewServer.server_close
    monkeypatch.setattr(ReviewServer, "serve_forever", interrupted)
    monkeypatch.setattr(
        ReviewServer, "server_close", lambda server: (closed.append(True), real_close(server))
    )
    db = tmp_path / "labels.db"
    result = runner.invoke(
        app,
        [
            "review",
            str(dump),
            "--labels",
            str(db),
            "--model",
            str(small_model_dir),
            "--annotator",
            "ann",
            "--port",
            "0",
            "--no-browser",
        ],
    )
    assert result.exit_code == 0, result.output
    assert "stopped;" in result.output and closed == [True]


def test_review_errors_are_clear(small_model_dir, tmp_path):
    db = tmp_path / "labels.db"
    missing = tmp_path / "missing.jsonl"
    args = ["review", str(missing), "--labels", str(db), "--annotator", "ann", "--no-browser"]
    result = runner.invoke(app, args)
    assert result.exit_code != 0
    assert "missing.jsonl" in result.output
    result = runner.invoke(
        app, ["review", str(missing), "--labels", str(db), "--annotator", "a", "--port", "70000"]
    )
    assert result.exit_code == 2
