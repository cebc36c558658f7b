"""The CLI's one error boundary: exit codes, one-line messages, `--debug`, literal printing."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

import fpi.io
from fpi.cli import app
from fpi.errors import EXIT_BROKEN_PIPE, EXIT_INTERNAL, EXIT_INTERRUPTED, InputError

FIXTURES = Path(__file__).parent / "fixtures" / "io"
runner = CliRunner()


def fail_with(exc: BaseException):
    def fail(*args, **kwargs):
        raise exc

    return fail


def test_an_internal_error_is_one_line_and_exit_three(monkeypatch) -> None:
    monkeypatch.setattr(fpi.io, "validate_dumps", fail_with(ZeroDivisionError("boom")))
    result = runner.invoke(app, ["validate", str(FIXTURES / "valid.jsonl")])
    assert result.exit_code == EXIT_INTERNAL
    assert "Traceback" not in result.output
    lines = result.output.strip().splitlines()
    assert lines == [
        "internal error: ZeroDivisionError: boom; rerun with `fpi --debug ...` for the traceback"
    ]


def test_debug_adds_the_traceback(monkeypatch) -> None:
    monkeypatch.setattr(fpi.io, "validate_dumps", fail_with(ZeroDivisionError("boom")))
    result = runner.invoke(app, ["--debug", "validate", str(FIXTURES / "valid.jsonl")])
    assert result.exit_code == EXIT_INTERNAL
    assert "Traceback (most recent call last)" in result.output
    assert "ZeroDivisionError: boom" in result.output


def test_debug_from_the_environment(monkeypatch) -> None:
    monkeypatch.setattr(fpi.io, "validate_dumps", fail_with(KeyError("k")))
    result = runner.invoke(app, ["validate", str(FIXTURES / "valid.jsonl")], env={"FPI_DEBUG": "1"})
    assert result.exit_code == EXIT_INTERNAL
    assert "Traceback (most recent call last)" in result.output


def test_interrupt_exits_130_with_a_clean_message(monkeypatch) -> None:
    monkeypatch.setattr(fpi.io, "validate_dumps", fail_with(KeyboardInterrupt()))
    result = runner.invoke(app, ["validate", str(FIXTURES / "valid.jsonl")])
    assert result.exit_code == EXIT_INTERRUPTED
    assert result.output.strip() == "stopped: interrupted"


def test_a_closed_pipe_is_quiet(monkeypatch) -> None:
    monkeypatch.setattr(fpi.io, "validate_dumps", fail_with(BrokenPipeError()))
    result = runner.invoke(app, ["validate", str(FIXTURES / "valid.jsonl")])
    assert result.exit_code == EXIT_BROKEN_PIPE
    assert result.output == ""


def test_a_domain_error_prints_its_message_literally(monkeypatch) -> None:
    message = "odd [bold]name[/].jsonl:100: field :smile: x"
    monkeypatch.setattr(fpi.io, "validate_dumps", fail_with(InputError(message)))
    result = runner.invoke(app, ["validate", str(FIXTURES / "valid.jsonl")])
    assert result.exit_code == 2
    assert result.output.strip() == f"error: {message}"


@pytest.mark.parametrize("name", ["file.jsonl", "[bold]x.jsonl", ":smile:.jsonl"])
def test_file_names_and_line_numbers_print_literally(tmp_path: Path, name: str) -> None:
    dump = tmp_path / name
    dump.write_text("\n" * 99 + "{}\n", encoding="utf-8")  # the one record is on line 100
    result = runner.invoke(app, ["validate", str(dump)])
    assert result.exit_code == 1
    assert f"{name}:100:" in result.output
    assert "💯" not in result.output and "😄" not in result.output


def test_a_non_utf8_file_name_prints_safely(tmp_path: Path) -> None:
    name = b"caf\xe9.jsonl".decode("utf-8", "surrogateescape")
    dump = tmp_path / name
    dump.write_bytes(b"{}\n")
    result = runner.invoke(app, ["validate", str(dump)])
    assert result.exit_code == 1
    assert "Traceback" not in result.output
    assert "caf\\udce9.jsonl:1:" in result.output


def test_an_unwritable_path_is_exit_two_naming_it(monkeypatch) -> None:
    denied = PermissionError(13, "Permission denied", "/srv/out.jsonl")
    monkeypatch.setattr(fpi.io, "validate_dumps", fail_with(denied))
    result = runner.invoke(app, ["validate", str(FIXTURES / "valid.jsonl")])
    assert result.exit_code == 2
    assert result.output.strip() == "error: /srv/out.jsonl: Permission denied"


def test_the_cli_week_limit_is_the_reports() -> None:
    from fpi import cli
    from fpi.report.stats import MAX_WEEKS_BACK

    assert cli.MAX_WEEKS == MAX_WEEKS_BACK


def test_help_states_the_exit_codes() -> None:
    result = runner.invoke(app, ["--help"])
    assert result.exit_code == 0
    text = " ".join(result.output.split())
    assert "Exit codes: 0 success, 1 invalid records, 2 unusable input" in text
    assert "--debug" in text
