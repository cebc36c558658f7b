"""`fpi collect homeassistant`: keep every Assist pipeline run before Home Assistant forgets it.

Home Assistant holds only the last 10 runs per pipeline, in memory. The collector logs in to
the websocket API (`auth_required` -> `auth` -> `auth_ok` / `auth_invalid`), and on every
poll lists the pipelines (`assist_pipeline/pipeline/list`), their stored runs
(`assist_pipeline/pipeline_debug/list`) and fetches each finished run it has not written yet
(`assist_pipeline/pipeline_debug/get`), appending one JSON line per run to the output:
`{"pipeline_run_id", "pipeline_id", "timestamp", "events"}`, the input `fpi import
homeassistant` reads. Each line is flushed to disk before the next run is fetched; on start
the output's run ids are read back and a last line cut short by a crash is removed, so a
restart never duplicates or loses a run Home Assistant still holds. A run still in progress
(no `run-end` event yet) is fetched again on the next poll.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from fpi.errors import InputError

#: Seconds to wait for any one answer from Home Assistant.
REPLY_TIMEOUT = 30.0


@dataclass
class CollectResult:
    """What a collection did: new runs written, polls made, runs now in the output."""

    written: int = 0
    polls: int = 0
    total: int = 0


class CollectError(InputError):
    """Home Assistant refused or broke the conversation (bad token, a failed command...)."""


def written_run_ids(path: Path) -> set[str]:
    """The run ids already in `path`, after cutting off a last line a crash left incomplete."""
    if not path.exists():
        return set()
    ids: set[str] = set()
    with path.open("rb+") as fh:
        data = fh.read()
        complete = data.rfind(b"\n") + 1
        if complete < len(data):  # a partially written last line: drop it, fetch it again
            fh.truncate(complete)
        for line in data[:complete].splitlines():
            try:
                run_id = json.loads(line).get("pipeline_run_id")
            except (ValueError, AttributeError):
                continue
            if isinstance(run_id, str):
                ids.add(run_id)
    return ids


def _append(path: Path, run: dict) -> None:
    line = json.dumps(run, ensure_ascii=False, separators=(",", ":")) + "\n"
    with path.open("a", encoding="utf-8") as fh:
        fh.write(line)
        fh.flush()
        os.fsync(fh.fileno())


class _Session:
    """One authenticated websocket connection speaking Home Assistant's command protocol."""

    def __init__(self, connection) -> None:
        self.connection = connection
        self.next_id = 1

    async def receive(self) -> dict:
        message = json.loads(await asyncio.wait_for(self.connection.recv(), REPLY_TIMEOUT))
        if not isinstance(message, dict):
            raise CollectError(f"unexpected message from Home Assistant: {message!r}")
        return message

    async def authenticate(self, token: str) -> None:
        hello = await self.receive()
        if hello.get("type") != "auth_required":
            raise CollectError(f"expected auth_required, got {hello.get('type')!r}")
        await self.connection.send(json.dumps({"type": "auth", "access_token": token}))
        answer = await self.receive()
        if answer.get("type") == "auth_invalid":
            raise CollectError(f"authentication refused: {answer.get('message', 'auth_invalid')}")
        if answer.get("type") != "auth_ok":
            raise CollectError(f"expected auth_ok, got {answer.get('type')!r}")

    async def command(self, kind: str, **fields: Any) -> Any:
        message_id = self.next_id
        self.next_id += 1
        await self.connection.send(json.dumps({"id": message_id, "type": kind, **fields}))
        while True:
            reply = await self.receive()
            if reply.get("id") == message_id and reply.get("type") == "result":
                break
        if not reply.get("success"):
            error = reply.get("error") or {}
            raise CollectError(f"{kind} failed: {error.get('code')}: {error.get('message')}")
        return reply.get("result")


async def _poll(session: _Session, out: Path, written: set[str], result: CollectResult) -> int:
    """Fetch and append every finished run not yet written; the number appended. `result`
    counts each run as soon as it is on disk (Ctrl-C may come at any point)."""
    new = 0
    pipelines = (await session.command("assist_pipeline/pipeline/list")).get("pipelines") or []
    for pipeline in pipelines:
        pipeline_id = pipeline.get("id")
        listed = await session.command(
            "assist_pipeline/pipeline_debug/list", pipeline_id=pipeline_id
        )
        for entry in listed.get("pipeline_runs") or []:
            run_id = entry.get("pipeline_run_id")
            if not isinstance(run_id, str) or run_id in written:
                continue
            run = await session.command(
                "assist_pipeline/pipeline_debug/get",
                pipeline_id=pipeline_id,
                pipeline_run_id=run_id,
            )
            events = (run or {}).get("events") or []
            if not any(isinstance(e, dict) and e.get("type") == "run-end" for e in events):
                continue  # still running: next poll
            _append(
                out,
                {
                    "pipeline_run_id": run_id,
                    "pipeline_id": pipeline_id,
                    "timestamp": entry.get("timestamp"),
                    "events": events,
                },
            )
            written.add(run_id)
            new += 1
            result.written += 1
            result.total = len(written)
    return new


async def _collect(
    url: str,
    token: str,
    out: Path,
    result: CollectResult,
    *,
    interval: float,
    once: bool,
    report: Callable[[int, int], None] | None,
) -> None:
    from websockets.asyncio.client import connect
    from websockets.exceptions import InvalidURI, WebSocketException

    written = written_run_ids(out)
    result.total = len(written)
    connected_once = False
    while True:
        try:
            async with connect(url, max_size=64 << 20, open_timeout=REPLY_TIMEOUT) as connection:
                session = _Session(connection)
                await session.authenticate(token)
                connected_once = True
                while True:
                    new = await _poll(session, out, written, result)
                    result.polls += 1
                    if report is not None:
                        report(new, result.total)
                    if once:
                        return
                    await asyncio.sleep(interval)
        except InvalidURI as exc:
            raise InputError(f"{url}: not a websocket URL ({exc})") from None
        except (OSError, TimeoutError, WebSocketException, ValueError) as exc:
            if once or not connected_once:
                raise InputError(f"{url}: cannot talk to Home Assistant ({exc})") from None
            await asyncio.sleep(interval)  # Home Assistant restarting: try again


def collect_runs(
    url: str,
    token_file: Path | str,
    out: Path | str,
    *,
    interval: float = 5.0,
    once: bool = False,
    report: Callable[[int, int], None] | None = None,
) -> CollectResult:
    """Poll Home Assistant until Ctrl-C (or once), appending new runs to `out`."""
    out = Path(out)
    try:
        token = Path(token_file).read_text(encoding="utf-8").strip()
    except (OSError, UnicodeDecodeError) as exc:
        raise InputError(f"{token_file}: cannot read the token ({exc})") from None
    if not token:
        raise InputError(f"{token_file}: the token file is empty")
    if out.is_dir():
        raise InputError(f"{out}: is a directory, not an output file")
    out.parent.mkdir(parents=True, exist_ok=True)
    result = CollectResult()
    with contextlib.suppress(KeyboardInterrupt):  # Ctrl-C: every run written is complete
        asyncio.run(_collect(url, token, out, result, interval=interval, once=once, report=report))
    return result
