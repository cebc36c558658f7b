"""`fpi validate`: exit codes, the summary, the rejects file, and no tracebacks."""

from __future__ import annotations

import gzip
import json
from pathlib import Path
from typing import NamedTuple

import pytest
from typer.testing import CliRunner

from fpi.cli import app

FIXTURES = Path(__file__).parent / "fixtures" / "io"
runner = CliRunner()


class Run(NamedTuple):
    exit_code: int
    output: str  # with rich's line wrapping undone


def run(*args: str | Path) -> Run:
    result = runner.invoke(app, ["validate", *map(str, args)])
    assert "Traceback" not in result.output
    assert result.exception is None or isinstance(result.exception, SystemExit)
    return Run(result.exit_code, " ".join(result.output.split()))


def test_clean_dump_exits_zero() -> None:
    result = run(FIXTURES / "valid.jsonl")
    assert result.exit_code == 0
    assert "4 records read = 4 accepted + 0 rejected" in result.output
    assert "all records valid" in result.output


def test_broken_dump_exits_one_with_every_problem(tmp_path: Path) -> None:
    rejects = tmp_path / "rejects.jsonl"
    result = run(FIXTURES / "broken.jsonl", "--rejects", rejects)
    assert result.exit_code == 1
    assert "11 records read = 3 accepted + 8 rejected" in result.output
    assert "1 blank line(s) skipped" in result.output
    assert (
        "broken.jsonl:4: field asr.nbest[1].confidence: expected a number in 0..1" in result.output
    )
    assert "asr.nbest[].confidence" in result.output  # the per-kind table
    assert "8 rejected record(s) written to" in result.output
    saved = [json.loads(line) for line in rejects.read_text(encoding="utf-8").splitlines()]
    assert [s["line"] for s in saved] == [2, 3, 4, 5, 6, 7, 9, 8]
    source = (FIXTURES / "broken.jsonl").read_text(encoding="utf-8").splitlines()
    assert all(s["record"] == source[s["line"] - 1] for s in saved)


def test_empty_file_is_reported_not_an_error(tmp_path: Path) -> None:
    (tmp_path / "empty.jsonl").touch()
    result = run(tmp_path / "empty.jsonl")
    assert result.exit_code == 0
    assert "empty, no records" in result.output


@pytest.mark.parametrize(
    ("name", "content", "message"),
    [
        (
            "cut.jsonl.gz",
            gzip.compress(b'{"a": 1}\n' * 5000, mtime=0)[:-40],
            "truncated or corrupt gzip",
        ),
        ("missing.jsonl", None, "no such file"),
    ],
)
def test_unreadable_input_exits_two(
    tmp_path: Path, name: str, content: bytes | None, message: str
) -> None:
    if content is not None:
        (tmp_path / name).write_bytes(content)
    result = run(tmp_path / name)
    assert result.exit_code == 2
    assert message in result.output and name in result.output


def test_unicode_and_a_ten_megabyte_line(tmp_path: Path) -> None:
    text = "天気 🌧 " * (1 << 20)
    record = {"dialogue_id": "d", "turn_index": 0, "timestamp": "2026-11-17T08:15:02Z"}
    path = tmp_path / "big.jsonl"
    path.write_text(json.dumps({**record, "asr": {"text": text}}, ensure_ascii=False) + "\n")
    result = run(path)
    assert result.exit_code == 0
    assert "1 records read = 1 accepted + 0 rejected" in result.output
