"""Outputs: atomic (a failed run leaves an earlier output as it was), refused when they name an
input or a directory, in input order whatever `--batch-turns`; and nothing lost around a bad
byte."""

from __future__ import annotations

import gzip
import json
import random
import tempfile
from pathlib import Path

import polars as pl
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from polars.testing import assert_frame_equal
from typer.testing import CliRunner

from fpi.cli import app
from fpi.errors import InputError
from fpi.io import atomic_output, check_outputs, read_traces, write_traces
from fpi.model import load_bundle
from fpi.triage import run_triage

runner = CliRunner()
FIXTURES = Path(__file__).parent / "fixtures" / "io"


def invoke(*args: object) -> tuple[int, str]:
    result = runner.invoke(app, [str(a) for a in args])
    assert "Traceback" not in result.output
    assert result.exception is None or isinstance(result.exception, SystemExit), result.exception
    return result.exit_code, " ".join(result.output.split())


@pytest.fixture(scope="module")
def dump_lines(small_traces, tmp_path_factory) -> list[bytes]:
    """300 turns of whole dialogues, interleaved, as JSONL lines."""
    path = write_traces(small_traces.head(300), tmp_path_factory.mktemp("d") / "t.jsonl")
    lines = path.read_bytes().splitlines()
    random.Random(5).shuffle(lines)
    return lines


def write_lines(path: Path, lines: list[bytes]) -> Path:
    path.write_bytes(b"".join(x + b"\n" for x in lines))
    return path


# ---- atomic_output --------------------------------------------------------------------------


def test_atomic_output_replaces_only_on_success(tmp_path: Path) -> None:
    target = tmp_path / "out.txt"
    target.write_text("before")
    with pytest.raises(RuntimeError), atomic_output(target) as tmp:
        tmp.write_text("half")
        raise RuntimeError("the run failed")
    assert target.read_text() == "before"
    with atomic_output(target) as tmp:
        assert tmp.parent == tmp_path and tmp.name.endswith("-out.txt")
        tmp.write_text("after")
    assert target.read_text() == "after"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.txt"]


# ---- refusals -------------------------------------------------------------------------------


def test_check_outputs_refuses_inputs_links_directories_and_twins(tmp_path: Path) -> None:
    dump = write_lines(tmp_path / "s.jsonl", [b"{}"])
    (tmp_path / "link.jsonl").symlink_to(dump)
    cases = [
        ({"out": dump}, "--out is an input file"),
        ({"rejects": tmp_path / "link.jsonl"}, "--rejects is an input file"),
        ({"out": tmp_path}, "--out names a directory"),
        ({"out": tmp_path / "a.jsonl", "rejects": tmp_path / "a.jsonl"}, "name the same file"),
    ]
    for outputs, message in cases:
        with pytest.raises(InputError, match=message):
            check_outputs([dump], **outputs)
    check_outputs([dump], out=tmp_path / "new.parquet", rejects=None)


@pytest.mark.parametrize(
    "command",
    [
        ["validate", "{dump}", "--rejects", "{dump}"],
        ["validate", "{dump}", "--rejects", "{dir}"],
        ["triage", "{dump}", "--model", "{model}", "--out", "{dump}"],
        ["triage", "{dump}", "--model", "{model}", "--out", "{dir}"],
        ["triage", "{dump}", "--model", "{model}", "--rejects", "{dump}"],
        ["features", "{dump}", "--out", "{dir}/x.parquet", "--rejects", "{dump}"],
        ["evaluate", "{dump}", "--model", "{model}", "--json", "{dump}"],
        ["simulate", "--out", "{dir}", "--turns", "5"],
    ],
)
def test_outputs_naming_an_input_or_a_directory_are_refused_before_reading(
    tmp_path: Path, small_model_dir: Path, command: list[str]
) -> None:
    dump = tmp_path / "s.jsonl"
    dump.write_bytes((FIXTURES / "broken.jsonl").read_bytes())
    before = dump.read_bytes()
    values = {"dump": dump, "dir": tmp_path, "model": small_model_dir}
    code, output = invoke(*(part.format(**values) for part in command))
    assert code == 2, output
    flat = " ".join(output.replace("│", " ").split())  # typer's usage errors come boxed
    assert any(s in flat for s in ("is an input file", "names a directory", "is a directory"))
    assert dump.read_bytes() == before


# ---- a failed run leaves the earlier output ----------------------------------------------------


def test_a_failed_triage_leaves_the_earlier_output(
    tmp_path: Path, small_model_dir: Path, dump_lines: list[bytes]
) -> None:
    good = write_lines(tmp_path / "good.jsonl", dump_lines)
    out, rejects = tmp_path / "triaged.parquet", tmp_path / "rejects.jsonl"
    code, output = invoke("triage", good, "--model", small_model_dir, "--out", out)
    assert code == 0, output
    rejects.write_text("earlier rejects\n")
    earlier = out.read_bytes()
    invalid = write_lines(tmp_path / "invalid.jsonl", [*dump_lines, b"{}"])
    assert invoke("triage", invalid, "--model", small_model_dir, "--out", out)[0] == 1
    corrupt = tmp_path / "corrupt.jsonl.gz"
    corrupt.write_bytes(gzip.compress(b"\n".join(dump_lines) * 20)[:-100])
    command = ["triage", corrupt, "--model", small_model_dir, "--out", out, "--rejects", rejects]
    assert invoke(*command)[0] == 2
    assert out.read_bytes() == earlier
    assert rejects.read_text() == "earlier rejects\n"
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith(".")) == []


def test_a_failed_features_run_leaves_the_earlier_matrix(
    tmp_path: Path, dump_lines: list[bytes]
) -> None:
    out = tmp_path / "features.parquet"
    assert invoke("features", write_lines(tmp_path / "a.jsonl", dump_lines), "--out", out)[0] == 0
    earlier = out.read_bytes()
    broken = write_lines(tmp_path / "b.jsonl", [*dump_lines, b"not json"])
    assert invoke("features", broken, "--out", out)[0] == 1
    assert out.read_bytes() == earlier


# ---- line-level damage through the CLI ----------------------------------------------------------


def test_one_bad_byte_among_200_records_loses_nothing(
    tmp_path: Path, small_model_dir: Path, dump_lines: list[bytes]
) -> None:
    lines = dump_lines[:200]
    bad = lines[100].replace(b'"dialogue_id":"', b'"dialogue_id":"\xff', 1)
    assert bad != lines[100]
    dump = write_lines(tmp_path / "one-bad-byte.jsonl", [*lines[:100], bad, *lines[100:]])
    out, rejects = tmp_path / "t.parquet", tmp_path / "rejects.jsonl"
    command = ["triage", dump, "--model", small_model_dir, "--out", out, "--rejects", rejects]
    code, output = invoke(*command)
    assert code == 0, output
    assert "read 201 turns = 200 triaged + 1 rejected" in output
    assert pl.read_parquet(out).height == 200
    (saved,) = [json.loads(x) for x in rejects.read_text(encoding="utf-8").splitlines()]
    assert saved["line"] == 101
    assert saved["reasons"][0]["field"] == "dialogue_id"
    assert saved["reasons"][0]["found"] == "invalid UTF-8 (byte 0xff)"


def test_max_line_bytes_makes_long_lines_rejects(tmp_path: Path, dump_lines: list[bytes]) -> None:
    dump = write_lines(tmp_path / "d.jsonl", dump_lines[:20])
    longest = max(len(x) for x in dump_lines[:20])
    code, output = invoke("validate", dump, "--max-line-bytes", longest - 1)
    assert code == 1
    assert f"expected a line of at most {longest - 1:,} bytes" in output
    assert invoke("validate", dump, "--max-line-bytes", longest)[0] == 0
    assert invoke("validate", dump, "--max-line-bytes", 0)[0] == 2


# ---- order --------------------------------------------------------------------------------------


@settings(max_examples=5, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(batch_turns=st.integers(1, 320), seed=st.integers(0, 2**16), suffix=st.sampled_from(
    [".parquet", ".jsonl", ".csv"]
))  # fmt: skip
def test_triage_output_is_in_input_order_whatever_the_batch_size(
    small_model_dir: Path, dump_lines: list[bytes], batch_turns: int, seed: int, suffix: str
) -> None:
    lines = list(dump_lines)
    random.Random(seed).shuffle(lines)
    bundle = _bundle(small_model_dir)
    with tempfile.TemporaryDirectory() as scratch:
        dump = write_lines(Path(scratch) / "d.jsonl", lines)
        outputs = []
        for size in (batch_turns, 10**6):
            out = Path(scratch) / f"t{size}{suffix}"
            run_triage([dump], bundle, out=out, batch_turns=size, rejects=[])
            outputs.append(pl.read_parquet(out) if suffix == ".parquet" else _read(out))
        assert_frame_equal(outputs[0], outputs[1])
        expected = read_traces(dump)["turn_id"].to_list()
        assert outputs[0]["turn_id"].to_list() == expected


def _read(path: Path) -> pl.DataFrame:
    return pl.read_csv(path) if path.suffix == ".csv" else pl.read_ndjson(path)


_BUNDLES: dict[Path, object] = {}


def _bundle(model_dir: Path):
    if model_dir not in _BUNDLES:
        _BUNDLES[model_dir] = load_bundle(model_dir)
    return _BUNDLES[model_dir]
