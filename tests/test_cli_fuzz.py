"""Every command with hostile arguments and hostile files: an exit code of 0, 1 or 2, never a
traceback, and a message naming the file or option at fault.

Each row is (arguments, expected exit code, text the output must hold). `{name}` in an
argument is a file of the hostile workspace below; `{out}` a fresh path that does not exist.
"""

from __future__ import annotations

import contextlib
import gzip
import json
import shutil
import tempfile
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

from fpi.cli import app

runner = CliRunner()
EXAMPLES = Path(__file__).parents[1] / "examples"
DSTC2 = Path(__file__).parent / "fixtures" / "dstc2"
VALID = Path(__file__).parent / "fixtures" / "io" / "valid.jsonl"  # 4 turns of 2026-W47
NON_UTF8 = b"caf\xe9.jsonl".decode("utf-8", "surrogateescape")
NON_UTF8_PARQUET = b"caf\xe9.parquet".decode("utf-8", "surrogateescape")
NAMED_NON_UTF8_PARQUET = "{" + NON_UTF8_PARQUET + "}"
MATH = "$\\frac{a}{$ [bold]x :100:"


def _record(valid: Path) -> dict:
    return json.loads(valid.read_text(encoding="utf-8").splitlines()[0])


@pytest.fixture(scope="module")
def ws(tmp_path_factory, small_model_dir) -> dict[str, Path]:
    """Hostile files, each under a short name."""
    root = tmp_path_factory.mktemp("hostile")
    files: dict[str, Path] = {"root": root}
    files["valid"] = Path(shutil.copy(VALID, root / "valid.jsonl"))
    record = _record(files["valid"])

    def put(name: str, content: bytes | str) -> None:
        path = root / name
        path.write_bytes(content.encode() if isinstance(content, str) else content)
        files[name] = path

    put("empty.jsonl", b"")
    put("blank.jsonl", b"\n\n\n")
    put("binary.jsonl", b"\x89PNG\r\n\x1a\n\x00\x00\xff\xfe")
    put("nul.jsonl", json.dumps(record).encode() + b"\n\x00\x00\n")
    put("nan.jsonl", json.dumps(record).replace("0.9", "NaN", 1) + "\n")
    put("huge.jsonl", json.dumps(record).replace('"turn_index": 0', '"turn_index": 1e400') + "\n")
    put("negative.jsonl", json.dumps({**record, "turn_index": -1}) + "\n")
    put("deep.jsonl", "[" * 100_000 + "\n")
    put("array.jsonl", "[1, 2]\n")
    put("fake.jsonl.gz", "not gzip\n")
    put("cut.jsonl.gz", gzip.compress(files["valid"].read_bytes())[:-30])
    put("fake.jsonl.zst", "not zstd\n")
    put("fake.parquet", "not parquet\n")
    put("notes.txt", "hello\n")
    hostile = {**record, "asr": {**record["asr"], "text": MATH}}
    hostile["nlu"] = {**record["nlu"], "domain": MATH, "intent": MATH}
    put("math.jsonl", json.dumps(hostile) + "\n")
    for name in ("[bold]x.jsonl", ":smile:.jsonl", NON_UTF8):
        shutil.copy(files["math.jsonl"], root / name)
        files[name] = root / name
    (root / "dir.jsonl").mkdir()
    files["dir.jsonl"] = root / "dir.jsonl"
    (root / "emptydir").mkdir()
    files["emptydir"] = root / "emptydir"
    files["missing.jsonl"] = root / "missing.jsonl"
    put("empty.toml", "")
    put("binary.toml", b"\xff\xfe\x00")
    put("syntax.toml", "[teams\n")
    put("types.toml", "teams = 3\n")
    put("stage.toml", '[teams.a]\ncontact = "x"\n[[rules]]\nteam = "a"\nfailure_point = "x"\n')
    team = "[bold]:smile:"
    put("markup.toml", f'[teams."{team}"]\ncontact = "x"\n[[rules]]\nteam = "{team}"\n')
    put("file_model", "not a model\n")
    (root / "empty_model").mkdir()
    files["empty_model"] = root / "empty_model"
    files["triaged"] = root / "triaged.parquet"
    files["model"] = small_model_dir
    args = ["triage", str(files["valid"]), "--out", str(files["triaged"]), "--model"]
    result = runner.invoke(app, [*args, str(small_model_dir)])
    assert result.exit_code == 0, result.output
    files[NON_UTF8_PARQUET] = Path(shutil.copy(files["triaged"], root / NON_UTF8_PARQUET))
    return files


CASES: list[tuple[list[str], int, str]] = [
    # simulate
    (["simulate", "--out", "{out}.jsonl", "--turns", "0"], 2, "--turns"),
    (["simulate", "--out", "{out}.jsonl", "--turns", "-3"], 2, "--turns"),
    (["simulate", "--out", "{out}.jsonl", "--turns", "10000000000000000000000"], 2, "--turns"),
    (["simulate", "--out", "{out}.jsonl", "--weeks", "0"], 2, "--weeks"),
    (["simulate", "--out", "{out}.jsonl", "--weeks", "100000000"], 2, "--weeks"),
    (["simulate", "--out", "{out}.jsonl", "--seed", "-1"], 2, "--seed"),
    (["simulate", "--out", "{out}.jsonl", "--turns", "5", "--start", "0001-01-01"], 2, "--start"),
    (["simulate", "--out", "{out}.jsonl", "--turns", "5", "--start", "9999-12-31"], 2, "--start"),
    (["simulate", "--out", "{out}.jsonl", "--scenario", "moon"], 2, "--scenario"),
    (["simulate", "--out", "{out}.txt", "--turns", "5"], 2, ".txt"),
    (["simulate", "--out", "{dir.jsonl}", "--turns", "5"], 2, "dir.jsonl"),
    (["simulate", "--out", "{out}/[bold]:smile:.jsonl", "--turns", "5"], 0, "[bold]:smile:.jsonl"),
    # validate
    (["validate", "{empty.jsonl}"], 0, "empty.jsonl: empty"),
    (["validate", "{blank.jsonl}"], 0, "3 blank line(s)"),
    (["validate", "{binary.jsonl}"], 1, "binary.jsonl:1: expected UTF-8"),
    (["validate", "{nul.jsonl}"], 1, "nul.jsonl:2"),
    (["validate", "{nan.jsonl}"], 1, "nan.jsonl:1"),
    (["validate", "{huge.jsonl}"], 1, "huge.jsonl:1"),
    (["validate", "{negative.jsonl}"], 1, "negative.jsonl:1"),
    (["validate", "{deep.jsonl}"], 1, "deep.jsonl:1"),
    (["validate", "{array.jsonl}"], 1, "array.jsonl:1"),
    (["validate", "{fake.jsonl.gz}"], 2, "fake.jsonl.gz"),
    (["validate", "{cut.jsonl.gz}"], 2, "cut.jsonl.gz"),
    (["validate", "{fake.jsonl.zst}"], 2, "fake.jsonl.zst"),
    (["validate", "{fake.parquet}"], 2, "fake.parquet"),
    (["validate", "{notes.txt}"], 2, "notes.txt"),
    (["validate", "{dir.jsonl}"], 2, "dir.jsonl"),
    (["validate", "{emptydir}"], 2, "emptydir"),
    (["validate", "{missing.jsonl}"], 2, "missing.jsonl"),
    (["validate", "{[bold]x.jsonl}"], 0, "all records valid"),
    (["validate", "{:smile:.jsonl}"], 0, "all records valid"),
    (["validate", "{" + NON_UTF8 + "}"], 0, "all records valid"),
    (["validate", "{array.jsonl}", "--rejects", "{dir.jsonl}"], 2, "dir.jsonl"),
    (["validate", "{array.jsonl}", "--rejects", "{out}/r.jsonl"], 1, "written to"),
    # features
    (["features", "{valid}", "--out", "{dir.jsonl}"], 2, "--out"),
    (["features", "{valid}", "--out", "{out}.csv"], 2, "--out"),
    (["features", "{valid}"], 2, "--out"),
    (["features", "--out", "{out}.parquet"], 2, "DUMP"),
    (["features", "{empty.jsonl}", "--out", "{out}.parquet"], 0, "0 turns"),
    (["features", "{binary.jsonl}", "--out", "{out}.parquet"], 1, "binary.jsonl:1"),
    (["features", "{deep.jsonl}", "--out", "{out}.parquet"], 1, "deep.jsonl:1"),
    (["features", "{math.jsonl}", "--out", "{out}.parquet"], 0, "1 turns"),
    # train
    (["train", "{valid}", "--out", "{out}", "--param", "x"], 2, "--param"),
    (["train", "{valid}", "--out", "{out}", "--param", "=3"], 2, "--param"),
    (["train", "{valid}", "--out", "{out}", "--rounds", "0"], 2, "--rounds"),
    (["train", "{valid}", "--out", "{out}", "--seed", "-1"], 2, "--seed"),
    (["train", "{valid}", "--out", "{out}", "--without-stage", "moon"], 2, "--without-stage"),
    (["train", "{empty.jsonl}", "--out", "{out}"], 2, "too few dialogues"),
    (["train", "{binary.jsonl}", "--out", "{out}"], 1, "binary.jsonl:1"),
    (["train", "{valid}", "--out", "{valid}", "--rounds", "2"], 2, "valid.jsonl"),
    # evaluate
    (["evaluate", "{empty.jsonl}"], 2, "no turns to evaluate"),
    (["evaluate", "{blank.jsonl}"], 2, "no turns to evaluate"),
    (["evaluate", "{binary.jsonl}"], 1, "binary.jsonl:1"),
    (["evaluate", "{valid}", "--model", "{missing.jsonl}"], 2, "missing.jsonl"),
    (["evaluate", "{valid}", "--model", "{empty_model}"], 2, "empty_model"),
    (["evaluate", "{valid}", "--model", "{file_model}"], 2, "file_model"),
    (["evaluate", "{valid}", "--json", "{dir.jsonl}"], 2, "dir.jsonl"),
    (["evaluate", "{math.jsonl}"], 0, "1 labelled turns"),
    # triage
    (["triage", "{valid}", "--top-k", "0"], 2, "--top-k"),
    (["triage", "{valid}", "--top-k", "-1"], 2, "--top-k"),
    (["triage", "{valid}", "--batch-turns", "0"], 2, "--batch-turns"),
    (["triage", "{valid}", "--abstain-below", "2"], 2, "--abstain-below"),
    (["triage", "{valid}", "--abstain-below", "nan"], 2, "--abstain-below"),
    (["triage", "{valid}", "--min-confidence", "nan"], 2, "--min-confidence"),
    (["triage", "{valid}", "--min-confidence", "inf"], 2, "--min-confidence"),
    (["triage", "{valid}", "--min-confidence", "-0.5"], 2, "--min-confidence"),
    (["triage", "{valid}", "--since", "2026-12-01", "--until", "2026-11-01"], 2, "--since"),
    (
        [
            "triage",
            "{valid}",
            "--top-k",
            "1000000000000",
            "--since",
            "0001-01-01",
            "--until",
            "9999-12-31",
            "--owners",
            "{markup.toml}",
        ],
        0,
        "4 triaged",
    ),
    (["triage", "{valid}", "--since", "yesterday"], 2, "--since"),
    (["triage", "{valid}", "--component", "moon"], 2, "--component"),
    (["triage", "{valid}", "--device-type", "toaster"], 2, "--device-type"),
    (["triage", "{valid}", "--owner", "x"], 2, "--owners"),
    (["triage", "{valid}", "--owners", "{missing.jsonl}"], 2, "missing.jsonl"),
    (["triage", "{valid}", "--owners", "{empty.toml}"], 2, "empty.toml"),
    (["triage", "{valid}", "--owners", "{binary.toml}"], 2, "binary.toml"),
    (["triage", "{valid}", "--owners", "{syntax.toml}"], 2, "syntax.toml"),
    (["triage", "{valid}", "--owners", "{types.toml}"], 2, "types.toml"),
    (["triage", "{valid}", "--owners", "{stage.toml}"], 2, "stage.toml"),
    (["triage", "{valid}", "--owners", "{dir.jsonl}"], 2, "dir.jsonl"),
    (["triage", "{valid}", "--out", "{dir.jsonl}"], 2, "dir.jsonl"),
    (["triage", "{valid}", "--out", "{out}.txt"], 2, ".txt"),
    (["triage", "{valid}", "--rejects", "{dir.jsonl}"], 2, "dir.jsonl"),
    (["triage", "{valid}", "--model", "{file_model}"], 2, "file_model"),
    (["triage", "{empty.jsonl}"], 0, "read 0 turns"),
    (["triage", "{binary.jsonl}"], 1, "binary.jsonl:1"),
    (["triage", "{deep.jsonl}"], 1, "deep.jsonl:1"),
    (["triage", "{deep.jsonl}", "--rejects", "{out}.jsonl"], 0, "1 rejected"),
    (["triage", "{math.jsonl}"], 0, "1 triaged"),
    (["triage", "{" + NON_UTF8 + "}", "--out", "{out}.jsonl"], 0, "1 triaged"),
    (["triage", "{valid}", "--out", "{out}" + NON_UTF8_PARQUET], 2, "not valid UTF-8"),
    (["validate", NAMED_NON_UTF8_PARQUET], 2, "caf\\udce9.parquet: rename it"),
    (["features", "{valid}", "--out", "{out}" + NON_UTF8_PARQUET], 2, "not valid UTF-8"),
    (
        ["route", "{" + NON_UTF8_PARQUET + "}", "--owners", "{markup.toml}", "--out", "{out}"],
        2,
        "caf",
    ),
    (["report", NAMED_NON_UTF8_PARQUET, "--week", "2026-W47", "--out", "{out}"], 2, "caf"),
    # explain
    (["explain", "{valid}", "no-such-turn"], 2, "no-such-turn"),
    (["explain", "{empty.jsonl}", "t"], 2, "empty.jsonl"),
    (["explain", "{binary.jsonl}", "t"], 2, "binary.jsonl"),
    (["explain", "{valid}", "{turn}", "--top", "0"], 2, "--top"),
    (["explain", "{valid}", "{turn}", "--png", "{dir.jsonl}"], 2, "dir.jsonl"),
    (["explain", "{valid}", "{turn}", "--png", "{out}.txt"], 2, "--png"),
    (["explain", "{math.jsonl}", "{turn}", "--png", "{out}.png"], 0, "waterfall written"),
    # route
    (["route", "{triaged}", "--owners", "{markup.toml}", "--out", "{out}"], 0, "[bold]:smile:"),
    (["route", "{triaged}", "--owners", "{syntax.toml}", "--out", "{out}"], 2, "syntax.toml"),
    (["route", "{valid}", "--owners", "{markup.toml}", "--out", "{out}"], 2, "valid.jsonl"),
    (["route", "{empty.jsonl}", "--owners", "{markup.toml}", "--out", "{out}"], 2, "empty.jsonl"),
    (["route", "{binary.jsonl}", "--owners", "{markup.toml}", "--out", "{out}"], 2, "binary"),
    (["route", "{fake.parquet}", "--owners", "{markup.toml}", "--out", "{out}"], 2, "fake.parquet"),
    (["route", "{triaged}", "--owners", "{markup.toml}", "--out", "{valid}"], 2, "valid.jsonl"),
    # report
    (["report", "{triaged}", "--week", "0001-W01"], 2, "--week"),
    (["report", "{triaged}", "--week", "9999-W52"], 2, "--week"),
    (["report", "{triaged}", "--week", "2026-W99"], 2, "--week"),
    (["report", "{triaged}", "--week", "week 3"], 2, "--week"),
    (["report", "{triaged}", "--week", "2026-W47", "--weeks-back", "0"], 2, "--weeks-back"),
    (["report", "{triaged}", "--week", "2026-W47", "--weeks-back", "100000000"], 2, "--weeks"),
    (["report", "{triaged}", "--week", "2020-W01", "--out", "{out}"], 2, "no turns in 2020-W01"),
    (["report", "{empty.jsonl}", "--week", "2026-W47", "--out", "{out}"], 2, "no turns in"),
    (["report", "{binary.jsonl}", "--week", "2026-W47", "--out", "{out}"], 1, "binary.jsonl:1"),
    (["report", "{missing.jsonl}", "--week", "2026-W47", "--out", "{out}"], 2, "missing.jsonl"),
    (["report", "{triaged}", "--week", "2026-W47", "--out", "{valid}"], 2, "valid.jsonl"),
    (["report", "{triaged}", "--week", "2026-W47", "--owner", "x", "--out", "{out}"], 2, "--owner"),
    (["report", "{math.jsonl}", "--week", "2026-W47", "--out", "{out}"], 0, "written"),
    # demo: only the arguments (a demo run takes seconds)
    (["demo", "--weeks", "1"], 2, "--weeks"),
    (["demo", "--turns-per-week", "0"], 2, "--turns-per-week"),
    (["demo", "--weeks", "100000000"], 2, "--weeks"),
    # import dstc2
    (["import", "dstc2", "{missing.jsonl}", "--out", "{out}.jsonl"], 2, "missing.jsonl"),
    (["import", "dstc2", "{valid}", "--out", "{out}.jsonl"], 2, "valid.jsonl"),
    (["import", "dstc2", str(DSTC2), "--flist", "moon", "--out", "{out}.jsonl"], 2, "moon"),
    (["import", "dstc2", str(DSTC2), "--flist", "{binary.jsonl}", "--out", "{out}.x"], 2, "bin"),
    (["import", "dstc2", str(DSTC2), "--out", "{dir.jsonl}"], 2, "dir.jsonl"),
    # global
    (["--debug"], 2, "Missing command"),
    (["moon"], 2, "No such command"),
]


MODEL_COMMANDS = {"triage", "evaluate", "explain"}


def _expand(arg: str, ws: dict[str, Path], out: Path, turn: str) -> str:
    arg = arg.replace("{out}", str(out)).replace("{turn}", turn)
    if arg.startswith("{") and arg.endswith("}") and arg[1:-1] in ws:
        return str(ws[arg[1:-1]])
    return arg


@pytest.mark.parametrize(("args", "code", "needle"), CASES, ids=[" ".join(c[0]) for c in CASES])
def test_hostile_invocation(ws, tmp_path, args: list[str], code: int, needle: str) -> None:
    first = _record(ws["valid"])
    turn = f"{first['dialogue_id']}/{first['turn_index']}"
    argv = [_expand(a, ws, tmp_path / "out", turn) for a in args]
    if args[0] in MODEL_COMMANDS and "--model" not in args:
        argv += ["--model", str(ws["model"])]  # the tests' model, not the bundled one
    result = runner.invoke(app, argv)
    output = " ".join(result.output.split())  # rich's line wrapping undone
    assert "Traceback" not in result.output
    assert result.exit_code == code, result.output
    assert " ".join(needle.split()) in output, result.output


# ---- every option's value drawn by hypothesis ------------------------------------------------

MISSING = "missing-input.jsonl"
NO_MODEL = "missing-model-dir"
# (arguments that fail fast once the options are accepted, the option, what the failure names)
OPTIONS = [
    (["triage", MISSING, "--model", NO_MODEL], "--top-k", NO_MODEL),
    (["triage", MISSING, "--model", NO_MODEL], "--batch-turns", NO_MODEL),
    (["triage", MISSING, "--model", NO_MODEL], "--min-confidence", NO_MODEL),
    (["triage", MISSING, "--model", NO_MODEL], "--abstain-below", NO_MODEL),
    (["triage", MISSING, "--model", NO_MODEL], "--since", NO_MODEL),
    (["triage", MISSING, "--model", NO_MODEL], "--until", NO_MODEL),
    (["triage", MISSING, "--model", NO_MODEL], "--component", NO_MODEL),
    (["triage", MISSING, "--model", NO_MODEL], "--device-type", NO_MODEL),
    (["explain", MISSING, "t", "--model", NO_MODEL], "--top", NO_MODEL),
    (["explain", MISSING, "t", "--model", NO_MODEL], "--png", NO_MODEL),
    (["report", MISSING, "--weeks-back", "4"], "--week", MISSING),
    (["report", MISSING, "--week", "2026-W47"], "--weeks-back", MISSING),
    (["simulate", "--out", "x.txt"], "--turns", "x.txt"),
    (["simulate", "--out", "x.txt"], "--weeks", "x.txt"),
    (["simulate", "--out", "x.txt"], "--seed", "x.txt"),
    (["simulate", "--out", "x.txt"], "--start", "x.txt"),
    (["simulate", "--out", "x.txt"], "--scenario", "x.txt"),
    (["train", MISSING, "--out", "model-out"], "--rounds", MISSING),
    (["train", MISSING, "--out", "model-out"], "--seed", MISSING),
    (["train", MISSING, "--out", "model-out"], "--without-stage", MISSING),
]
HOSTILE_VALUES = st.one_of(
    st.integers(min_value=-(2**80), max_value=2**80).map(str),
    st.floats(allow_nan=True, allow_infinity=True).map(str),
    st.sampled_from(
        [
            "",
            " ",
            "nan",
            "-inf",
            "1e400",
            "0x10",
            "1_000",
            "0001-W01",
            "9999-W52",
            "2026-W53",
            "2026-W47",
            "0001-01-01",
            "9999-12-31",
            "2026-11-03T10:00:00",
            "asr",
            "base",
            "x.png",
            "[bold]x[/]",
            ":smile:",
            "--help",
            "$\\frac{a}{$",
        ]
    ),
    st.text(st.characters(exclude_categories=("Cs",), exclude_characters="\x00"), max_size=12),
)


@pytest.mark.parametrize(("prefix", "option", "decoy"), OPTIONS, ids=[o[1] for o in OPTIONS])
@settings(max_examples=6, deadline=None)
@given(value=HOSTILE_VALUES)
def test_any_option_value_is_refused_or_accepted_cleanly(
    prefix: list[str], option: str, decoy: str, value: str
) -> None:
    with tempfile.TemporaryDirectory() as scratch, contextlib.chdir(scratch):
        result = runner.invoke(app, [*prefix, f"{option}={value}"])
    output = " ".join(result.output.split())
    assert "Traceback" not in result.output
    assert result.exit_code == 2, result.output
    assert option in output or decoy in output or MISSING in output, result.output
