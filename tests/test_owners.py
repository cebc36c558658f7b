from __future__ import annotations

from pathlib import Path

import polars as pl
import pytest
from typer.testing import CliRunner

from fpi.cli import app
from fpi.errors import ConfigError
from fpi.owners import (
    assign_owners,
    load_owners,
    owner_file_stems,
    parse_owners,
    route,
    safe_file_stem,
)
from fpi.schema import TRIAGE_SCHEMA

EXAMPLE = Path(__file__).parents[1] / "examples" / "owners.toml"

OWNERS = """\
[teams.asr-core]
contact = "asr@example.com"

[teams."asr car"]
contact = "#asr-car"

[teams.catch-all]
contact = "triage@example.com"

[[rules]]
failure_point = "asr"
device_type = ["car", "headphones"]
team = "asr car"

[[rules]]
failure_point = "asr"
team = "asr-core"

[[rules]]
team = "catch-all"
"""


def _turns(*rows: tuple[str, str | None]) -> pl.DataFrame:
    """Triage rows from (failure_point, device_type) pairs."""
    frame = pl.DataFrame(
        {
            "turn_id": [f"d{i}/0" for i in range(len(rows))],
            "failure_point": [fp for fp, _ in rows],
            "device_type": [device for _, device in rows],
        }
    )
    return frame.with_columns(
        pl.lit(None, dtype=TRIAGE_SCHEMA[c]).alias(c)
        for c in TRIAGE_SCHEMA
        if c not in frame.columns
    ).select(TRIAGE_SCHEMA.names())


def test_first_matching_rule_owns_the_turn():
    owners = parse_owners(OWNERS)
    turns = _turns(
        ("asr", "car"),
        ("asr", "headphones"),
        ("asr", "speaker"),
        ("asr", None),
        ("nlu", "car"),
        ("uncertain", "tv"),
        ("correct", "car"),
    )
    owned = assign_owners(turns, owners)
    assert owned.get_column("owner").to_list() == [
        "asr car",
        "asr car",
        "asr-core",
        "asr-core",
        "catch-all",
        "catch-all",
        None,
    ]
    assert owned.get_column("owner_contact").to_list()[:3] == [
        "#asr-car",
        "#asr-car",
        "asr@example.com",
    ]


def test_no_matching_rule_leaves_the_turn_unowned():
    owners = parse_owners(OWNERS.replace('[[rules]]\nteam = "catch-all"\n', ""))
    owned = assign_owners(_turns(("nlu", "car"), ("asr", "car")), owners)
    assert owned.get_column("owner").to_list() == [None, "asr car"]
    assert owned.get_column("owner_contact").to_list() == [None, "#asr-car"]


def test_example_owners_file_loads():
    owners = load_owners(EXAMPLE)
    owned = assign_owners(_turns(("asr", "car"), ("uncertain", "tv")), owners)
    assert owned.get_column("owner").to_list() == ["asr-automotive", "annotation"]


def _error(text: str, tmp_path: Path) -> str:
    path = tmp_path / "owners.toml"
    path.write_text(text)
    with pytest.raises(ConfigError) as caught:
        load_owners(path)
    return str(caught.value)


TEAM = '[teams.asr-core]\ncontact = "asr@example.com"\n\n'  # lines 1-3


@pytest.mark.parametrize(
    ("text", "line", "words"),
    [
        (TEAM + '[[rules]]\nfailure_point = "asrr"\nteam = "asr-core"\n', 5, ["'asrr'", "'asr'"]),
        (TEAM + '[[rules]]\nfailure_point = "correct"\nteam = "asr-core"\n', 5, ["no owner"]),
        (TEAM + '[[rules]]\nteam = "asr-cor"\n', 5, ["unknown team 'asr-cor'", "'asr-core'"]),
        (TEAM + '[[rules]]\nteam = "asr-core"\nteem = "x"\n', 6, ["unknown key 'teem'"]),
        (TEAM + '[[rules]]\nteam = "asr-core"\ndevice_type = "cars"\n', 6, ["'cars'", "'car'"]),
        (TEAM + '[[rules]]\nteam = "asr-core"\ndomain = 3\n', 6, ["list of strings"]),
        (TEAM + '[[rules]]\nteam = "asr-core"\n\n[[rules]]\n\nintent = "X"\n', 7, ["rule 2"]),
        ('[teams.a]\ncontact = "a"\n[teams.b]\ncontacts = "b"\n', 4, ["team 'b'", "'contacts'"]),
        ('[teams."q r"]\n\n[[rules]]\nteam = "q r"\n', 1, ["team 'q r'", "contact"]),
        (TEAM + "[[rules]]\nteam = asr-core\n", 5, ["invalid TOML"]),
        ('owner = "x"\n' + TEAM + '[[rules]]\nteam = "asr-core"\n', 1, ["top-level key 'owner'"]),
        (TEAM, 1, ["at least one [[rules]]"]),
    ],
    ids=[
        "unknown-stage",
        "correct-stage",
        "unknown-team",
        "unknown-rule-key",
        "unknown-device",
        "not-a-string",
        "second-rule-missing-team",
        "unknown-team-key",
        "missing-contact-quoted-team",
        "syntax",
        "unknown-top-level",
        "no-rules",
    ],
)
def test_errors_name_the_file_and_line(tmp_path, text, line, words):
    path = tmp_path / "owners.toml"
    path.write_text(text)
    with pytest.raises(ConfigError) as caught:
        load_owners(path)
    message = str(caught.value)
    assert message.startswith(f"{path}:{line}: "), message
    for word in words:
        assert word in message, message


def test_unreadable_owners_file_is_a_config_error(tmp_path):
    with pytest.raises(ConfigError, match="cannot read"):
        load_owners(tmp_path / "missing.toml")


@pytest.mark.parametrize(
    ("name", "stem"),
    [
        ("asr-core", "asr-core"),
        ("../x", "x"),
        ("a/b", "a_b"),
        ("a\\b", "a_b"),
        ("..", "team"),
        ("", "team"),
        ("   ", "team"),
        ("nul\x00byte", "nul_byte"),
        ("CON", "_CON"),
        ("con.txt", "_con.txt"),
        ("lpt1", "_lpt1"),
        ("ＡＳＲ team", "ASR_team"),
        ("équipe", "équipe"),
        ("trailing. ", "trailing"),
        ("x" * 300, "x" * 120),
    ],
)
def test_safe_file_stem(name, stem):
    assert safe_file_stem(name) == stem


def test_file_stems_are_distinct_even_ignoring_case():
    names = ["unowned", "unowned", "A", "a", "a/b", "a_b", "e\u0301", "\u00e9"]
    stems = owner_file_stems(names)
    assert stems == ["unowned", "unowned-2", "A", "a-2", "a_b", "a_b-2", "é", "é-2"]
    assert len({s.casefold() for s in stems}) == len(stems)


NASTY = ["../x", "a/b", "CON", "Ｔｅａｍ", "", "x\x00y", "unowned", "<b>bold</b>"]


def _nasty_owners() -> str:
    teams = "".join(f'[teams."{name}"]\ncontact = "c"\n' for name in NASTY)
    teams = teams.replace("\x00", "\\u0000")
    rules = "".join(
        f'[[rules]]\nfailure_point = "{fp}"\nteam = "{name}"\n'.replace("\x00", "\\u0000")
        for fp, name in zip(["asr", "nlu", "er", "result", "false_wake"], NASTY, strict=False)
    )
    return teams + rules


def test_route_writes_one_safe_file_per_owner(tmp_path):
    owners = parse_owners(_nasty_owners())
    assert list(owners.teams) == NASTY
    turns = _turns(
        ("asr", "car"),
        ("asr", "tv"),
        ("nlu", None),
        ("er", None),
        ("result", None),
        ("false_wake", None),
        ("uncertain", None),
        ("correct", None),
    )
    out = tmp_path / "routed"
    routed = route(turns, owners, out, suffix=".parquet")
    assert routed.get_column("owner").to_list() == ["unowned", *NASTY]
    assert routed.get_column("turns").to_list() == [1, 2, 1, 1, 1, 1, 0, 0, 0]
    files = [Path(f) for f in routed.get_column("file")]
    assert len({f.name.casefold() for f in files}) == len(files)
    for file in files:
        assert file.parent == out and file.is_file()
        assert file.resolve().parent == out.resolve()
        assert "\x00" not in file.name and "/" not in file.name
    assert files[0].name == "unowned.parquet"
    assert files[NASTY.index("unowned") + 1].name == "unowned-2.parquet"
    assert files[NASTY.index("CON") + 1].name == "_CON.parquet"
    first = pl.read_parquet(files[1])
    assert first.get_column("owner").to_list() == ["../x", "../x"]
    assert set(first.columns) >= {*TRIAGE_SCHEMA.names(), "owner", "owner_contact"}
    unowned = pl.read_parquet(files[0])
    assert unowned.get_column("failure_point").to_list() == ["uncertain"]


def test_route_cli_keeps_the_input_format(tmp_path):
    owners = tmp_path / "owners.toml"
    owners.write_text(OWNERS)
    turns = _turns(("asr", "car"), ("asr", "tv"), ("nlu", None), ("correct", None))
    source = tmp_path / "triage.jsonl"
    turns.write_ndjson(source)
    out = tmp_path / "routed"
    result = CliRunner().invoke(
        app, ["route", str(source), "--owners", str(owners), "--out", str(out)]
    )
    assert result.exit_code == 0, result.output
    output = " ".join(result.output.split())
    assert "asr car" in output and "catch-all" in output
    assert sorted(p.name for p in out.iterdir()) == [
        "asr-core.jsonl",
        "asr_car.jsonl",
        "catch-all.jsonl",
        "unowned.jsonl",
    ]
    routed = pl.read_ndjson(out / "asr_car.jsonl")
    assert routed.get_column("turn_id").to_list() == ["d0/0"]


def test_route_cli_reports_owners_mistakes_with_exit_2(tmp_path):
    owners = tmp_path / "owners.toml"
    owners.write_text(TEAM + '[[rules]]\nfailure_point = "asrr"\nteam = "asr-core"\n')
    source = tmp_path / "triage.parquet"
    _turns(("asr", "car")).write_parquet(source)
    result = CliRunner().invoke(
        app, ["route", str(source), "--owners", str(owners), "--out", str(tmp_path / "o")]
    )
    assert result.exit_code == 2
    output = "".join(result.output.split())
    assert "owners.toml:5:" in output and "Traceback" not in output
