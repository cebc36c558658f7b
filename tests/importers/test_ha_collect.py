"""`fpi collect homeassistant` against a fake Home Assistant websocket API on 127.0.0.1."""

from __future__ import annotations

import asyncio
import contextlib
import json
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from websockets.asyncio.server import serve
from websockets.exceptions import ConnectionClosed

from fpi.errors import InputError
from fpi.importers.ha_collect import collect_runs, written_run_ids
from fpi.importers.homeassistant import import_homeassistant
from tests.importers.helpers import FIXTURES, invoke

TOKEN = "secret-token"
FIXTURE_RUNS = [
    json.loads(line)
    for line in (FIXTURES / "homeassistant" / "runs.jsonl").read_text().splitlines()
]


class FakeHomeAssistant:
    """Speaks the auth handshake and the three assist_pipeline commands, like core does."""

    def __init__(self, port: int = 0) -> None:
        self.pipelines: dict[str, list[dict]] = {"p1": [], "p2": []}  # newest last, max 10
        self.commands: list[str] = []
        self.loop = asyncio.new_event_loop()
        self.ready = threading.Event()
        self.port = port
        self.thread = threading.Thread(target=self._run, daemon=True)

    def add_run(self, pipeline: str, run: dict) -> None:
        runs = self.pipelines[pipeline]
        runs.append(run)
        del runs[:-10]  # Home Assistant keeps the last 10 runs per pipeline

    async def _handle(self, ws) -> None:
        with contextlib.suppress(ConnectionClosed):  # a client going away is not an error
            await self._serve(ws)

    async def _serve(self, ws) -> None:
        await ws.send(json.dumps({"type": "auth_required", "ha_version": "2025.1.0"}))
        auth = json.loads(await ws.recv())
        if auth.get("access_token") != TOKEN:
            await ws.send(json.dumps({"type": "auth_invalid", "message": "Invalid access token"}))
            return
        await ws.send(json.dumps({"type": "auth_ok", "ha_version": "2025.1.0"}))
        async for raw in ws:
            message = json.loads(raw)
            self.commands.append(message["type"])
            result = self._answer(message)
            reply = {"id": message["id"], "type": "result", "success": result is not None}
            if result is None:
                reply["error"] = {"code": "not_found", "message": "Unknown"}
            else:
                reply["result"] = result
            await ws.send(json.dumps(reply))

    def _answer(self, message: dict) -> dict | None:
        kind = message["type"]
        if kind == "assist_pipeline/pipeline/list":
            return {"pipelines": [{"id": p} for p in self.pipelines], "preferred_pipeline": "p1"}
        runs = self.pipelines.get(message.get("pipeline_id"), [])
        if kind == "assist_pipeline/pipeline_debug/list":
            return {
                "pipeline_runs": [
                    {
                        "pipeline_run_id": r["pipeline_run_id"],
                        "timestamp": r["events"][0]["timestamp"],
                    }
                    for r in runs
                ]
            }
        if kind == "assist_pipeline/pipeline_debug/get":
            run = next(
                (r for r in runs if r["pipeline_run_id"] == message["pipeline_run_id"]), None
            )
            return None if run is None else {"events": run["events"]}
        return None

    def _run(self) -> None:
        asyncio.set_event_loop(self.loop)

        async def main() -> None:
            async with serve(self._handle, "127.0.0.1", self.port) as server:
                self.port = server.sockets[0].getsockname()[1]
                self.stop = self.loop.create_future()
                self.ready.set()
                await self.stop

        self.loop.run_until_complete(main())

    @property
    def url(self) -> str:
        return f"ws://127.0.0.1:{self.port}/api/websocket"

    def __enter__(self) -> FakeHomeAssistant:
        self.thread.start()
        self.ready.wait(5)
        return self

    def __exit__(self, *exc: object) -> None:
        self.loop.call_soon_threadsafe(self.stop.set_result, None)
        self.thread.join(5)


@pytest.fixture
def ha() -> Iterator[FakeHomeAssistant]:
    with FakeHomeAssistant() as server:
        yield server


@pytest.fixture
def token(tmp_path) -> Path:
    path = tmp_path / "token"
    path.write_text(TOKEN + "\n")
    return path


def lines(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_collects_every_finished_run_once_across_restarts(ha, token, tmp_path):
    out = tmp_path / "runs.jsonl"
    ha.add_run("p1", FIXTURE_RUNS[0])
    ha.add_run("p2", FIXTURE_RUNS[1])
    unfinished = {**FIXTURE_RUNS[2], "events": FIXTURE_RUNS[2]["events"][:-1]}  # no run-end
    ha.add_run("p1", unfinished)
    first = collect_runs(ha.url, token, out, once=True)
    assert (first.written, first.total) == (2, 2)
    assert [r["pipeline_id"] for r in lines(out)] == ["p1", "p2"]

    # the run finishes, another arrives; the collector restarts
    ha.pipelines["p1"][-1] = FIXTURE_RUNS[2]
    ha.add_run("p2", FIXTURE_RUNS[3])
    second = collect_runs(ha.url, token, out, once=True)
    assert (second.written, second.total) == (2, 4)
    ids = [r["pipeline_run_id"] for r in lines(out)]
    assert sorted(ids) == sorted(r["pipeline_run_id"] for r in FIXTURE_RUNS)
    assert len(ids) == len(set(ids))
    assert set(ha.commands) == {
        "assist_pipeline/pipeline/list",
        "assist_pipeline/pipeline_debug/list",
        "assist_pipeline/pipeline_debug/get",
    }
    summary = import_homeassistant([out], tmp_path / "ha.jsonl")
    assert (summary.imported, summary.skipped) == (4, 0)


def test_a_crash_mid_line_loses_nothing_and_duplicates_nothing(ha, token, tmp_path):
    out = tmp_path / "runs.jsonl"
    for run in FIXTURE_RUNS[:2]:
        ha.add_run("p1", run)
    collect_runs(ha.url, token, out, once=True)
    complete = out.read_bytes()
    cut = complete.rfind(b"\n", 0, len(complete) - 1) + 1
    out.write_bytes(complete[: cut + 40])  # the last run half written when the process died
    assert written_run_ids(out) == {FIXTURE_RUNS[0]["pipeline_run_id"]}
    assert out.read_bytes() == complete[:cut]  # the partial line is gone
    again = collect_runs(ha.url, token, out, once=True)
    assert again.written == 1
    assert out.read_bytes() == complete


def test_polls_until_interrupted(ha, token, tmp_path, monkeypatch):
    out = tmp_path / "runs.jsonl"
    ha.add_run("p1", FIXTURE_RUNS[0])
    polls: list[int] = []

    def report(new: int, total: int) -> None:
        polls.append(new)
        if len(polls) == 1:
            ha.loop.call_soon_threadsafe(ha.add_run, "p2", FIXTURE_RUNS[1])
        if len(polls) == 3:
            raise KeyboardInterrupt  # what Ctrl-C raises in the collector's thread

    result = collect_runs(ha.url, token, out, interval=0.1, report=report)
    assert (result.polls, result.written) == (3, 2)
    assert polls == [1, 1, 0]
    assert len(lines(out)) == 2


def test_bad_token_and_unreachable_server_are_clear_errors(ha, tmp_path):
    bad = tmp_path / "bad"
    bad.write_text("nope")
    with pytest.raises(InputError, match="authentication refused: Invalid access token"):
        collect_runs(ha.url, bad, tmp_path / "runs.jsonl", once=True)
    empty = tmp_path / "empty"
    empty.write_text("\n")
    with pytest.raises(InputError, match="token file is empty"):
        collect_runs(ha.url, empty, tmp_path / "runs.jsonl", once=True)
    with pytest.raises(InputError, match="cannot talk to Home Assistant"):
        collect_runs("ws://127.0.0.1:1/api/websocket", bad, tmp_path / "runs.jsonl", once=True)


def test_cli_collect_once(ha, token, tmp_path):
    ha.add_run("p1", FIXTURE_RUNS[0])
    out = tmp_path / "runs.jsonl"

    def collect(token_file: Path) -> tuple[int, str]:
        options = ["--url", ha.url, "--token-file", str(token_file), "--out", str(out)]
        return invoke("collect", "homeassistant", *options, "--once")

    code, output = collect(token)
    assert code == 0, output
    assert "collected 1 new run(s) in 1 poll(s); 1 run(s)" in output
    code, output = collect(tmp_path / "none")
    assert code == 2 and "cannot read the token" in output


def test_home_assistant_restarting_mid_run_loses_and_duplicates_nothing(token, tmp_path):
    out = tmp_path / "runs.jsonl"
    first = FakeHomeAssistant()
    first.add_run("p1", FIXTURE_RUNS[0])
    first.__enter__()
    port = first.port
    second = FakeHomeAssistant(port)
    second.add_run("p1", FIXTURE_RUNS[0])  # still held after the restart
    second.add_run("p2", FIXTURE_RUNS[1])  # arrived while it was down
    polls: list[int] = []

    def report(new: int, total: int) -> None:
        polls.append(total)
        if len(polls) == 1:
            first.__exit__()  # Home Assistant goes down...
            second.__enter__()  # ...and comes back on the same port
        if total == 2:
            raise KeyboardInterrupt

    try:
        result = collect_runs(first.url, token, out, interval=0.1, report=report)
    finally:
        second.__exit__()
    assert result.total == 2 and result.written == 2
    ids = [r["pipeline_run_id"] for r in lines(out)]
    assert sorted(ids) == sorted(r["pipeline_run_id"] for r in FIXTURE_RUNS[:2])


def test_ctrl_c_ends_the_command_cleanly(ha, token, tmp_path):
    import signal
    import subprocess
    import sys
    import time

    ha.add_run("p1", FIXTURE_RUNS[0])
    out = tmp_path / "runs.jsonl"
    command = [sys.executable, "-m", "fpi", "collect", "homeassistant", "--url", ha.url]
    command += ["--token-file", str(token), "--out", str(out), "--interval", "0.2"]
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 60
    while not (out.exists() and out.read_text().endswith("\n")) and time.monotonic() < deadline:
        time.sleep(0.1)
    process.send_signal(signal.SIGINT)
    stdout, stderr = process.communicate(timeout=30)
    assert process.returncode == 0, stderr
    assert "Traceback" not in stderr, stderr
    assert "collected 1 new run(s)" in " ".join(stdout.split()), (stdout, stderr)
    assert len(lines(out)) == 1
