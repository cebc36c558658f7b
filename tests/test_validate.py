"""Record checks (types per line, values vectorised) and the `validate_dumps` report."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import polars as pl
import pytest
from strategies import records_to_frame

from fpi.errors import InputError
from fpi.io import validate_dumps
from fpi.validate import (
    A_PROBABILITY,
    NOTHING,
    check_record_json,
    duplicate_problems,
    parse_rfc3339,
    value_problems,
)

FIXTURES = Path(__file__).parent / "fixtures" / "io"


def record(**fields: object) -> dict:
    return {"dialogue_id": "d", "turn_index": 0, "timestamp": "2026-11-17T08:15:02Z", **fields}


# ---- types --------------------------------------------------------------------------------------


def test_type_findings_name_the_field_path_expected_and_found() -> None:
    line = json.dumps(
        record(
            turn_index="3",
            asr={"nbest": [{"confidence": 0.5}, {"confidence": "high"}], "audio_ms": True},
            device=["speaker"],
            er={"entities": [{"candidates": 2.0}]},
            x_unknown={"confidence": "anything"},
        )
    )
    check = check_record_json(line)
    assert check.findings == [
        ("turn_index", "an integer", '"3" (a string)'),
        ("device", "an object", '["speaker"] (a list)'),
        ("asr.nbest[1].confidence", "a number", '"high" (a string)'),
        ("asr.audio_ms", "a number", "true (a boolean)"),
        ("er.entities[0].candidates", "an integer", "2.0 (a number)"),
    ]
    assert check.repaired is not None
    assert check.repaired["turn_index"] is None and check.repaired["device"] is None
    assert check.repaired["asr"]["nbest"] == [{"confidence": 0.5}, {"confidence": None}]
    assert "x_unknown" not in check.repaired


@pytest.mark.parametrize(
    ("line", "found"),
    [
        ('{"dialogue_id": "d",', "malformed JSON (Expecting property name enclosed"),
        ('{"asr": {"confidence": NaN}}', "malformed JSON (NaN is not valid JSON)"),
        ('["d", 1]', '["d", 1] (a list)'),
        ('"d"', '"d" (a string)'),
        ("null", "null"),
    ],
)
def test_lines_that_are_not_json_objects(line: str, found: str) -> None:
    check = check_record_json(line)
    assert check.repaired is None
    ((field, expected, what),) = check.findings
    assert (field, expected) == ("", "a JSON object") and what.startswith(found)


def test_numbers_out_of_int64_or_float_range_are_type_findings() -> None:
    check = check_record_json('{"turn_index": 99999999999999999999, "asr": {"snr_db": 1e999}}')
    assert [f[0] for f in check.findings] == ["turn_index", "asr.snr_db"]


# ---- values -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2026-11-17T08:15:02Z", datetime(2026, 11, 17, 8, 15, 2, tzinfo=UTC)),
        ("2026-11-17T08:15:02.5+05:30", datetime(2026, 11, 17, 2, 45, 2, 500_000, tzinfo=UTC)),
        ("2026-11-17t08:15:02.123456789z", datetime(2026, 11, 17, 8, 15, 2, 123_456, tzinfo=UTC)),
        ("2026-11-17 08:15:02-01:00", datetime(2026, 11, 17, 9, 15, 2, tzinfo=UTC)),
        ("2026-11-17T08:15:02", None),  # no offset
        ("2026-11-17T08:15:02.1234567891Z", None),  # ten fraction digits
        ("2026-02-30T08:15:02Z", None),
        ("2026-11-17T25:15:02Z", None),
        ("17/11/2026 08:15", None),
        ("", None),
    ],
)
def test_parse_rfc3339(text: str, expected: datetime | None) -> None:
    parsed = pl.select(parse_rfc3339(pl.lit(text))).item()
    assert parsed == expected


def test_value_problems_cover_ranges_enums_ids_and_timestamps() -> None:
    frame = records_to_frame(
        [
            record(),
            record(
                dialogue_id=" ",
                turn_index=-1,
                turn_id="",
                timestamp="yesterday",
                device={"type": "toaster"},
                wake={"mode": "wake_word", "confidence": 1.01, "verifier_confidence": -0.2},
                asr={"nbest": [{"confidence": 0.5}, {"confidence": 1.5}], "audio_ms": -1},
                nlu={"slots": [{"confidence": 2}], "nbest": [{"confidence": 0.1}]},
                er={"entities": [{"score": 0.5, "candidates": 3, "status": "found"}]},
                result={"status": "ok", "latency_ms": -5},
                tts={"duration_ms": -0.5},
                signals={"barge_in_ms": -1, "explicit_feedback": "meh"},
                label={"failure_point": "tts"},
            ),
            {"turn_index": None, "timestamp": None},
        ]
    ).with_row_index("_row")
    problems = value_problems(frame)
    assert set(problems["_row"]) == {1, 2}
    found = {(f, v) for r, f, _, v in problems.iter_rows() if r == 1}
    assert found == {
        ("dialogue_id", '" "'),
        ("turn_id", '""'),
        ("turn_index", "-1"),
        ("timestamp", '"yesterday"'),
        ("device.type", '"toaster"'),
        ("wake.confidence", "1.01"),
        ("wake.verifier_confidence", "-0.2"),
        ("asr.nbest[1].confidence", "1.5"),
        ("asr.audio_ms", "-1.0"),
        ("nlu.slots[0].confidence", "2.0"),
        ("er.entities[0].status", '"found"'),
        ("result.status", '"ok"'),
        ("result.latency_ms", "-5.0"),
        ("tts.duration_ms", "-0.5"),
        ("signals.barge_in_ms", "-1.0"),
        ("signals.explicit_feedback", '"meh"'),
        ("label.failure_point", '"tts"'),
    }
    missing = problems.filter(pl.col("_row") == 2)
    assert set(missing["field"]) == {"dialogue_id", "turn_index", "timestamp"}
    assert set(missing["found"]) == {NOTHING}
    assert problems.filter(pl.col("field") == "wake.confidence")["expected"][0] == A_PROBABILITY


def test_duplicate_problems_point_at_the_first_record() -> None:
    traces = pl.DataFrame(
        {
            "dialogue_id": ["a", "b", "a", "a", "b"],
            "turn_index": [0, 0, 1, 0, 0],
            "source_file": ["x.jsonl"] * 5,
            "source_line": [1, 2, 3, 4, 5],
        }
    )
    problems = duplicate_problems(traces)
    assert problems["row"].to_list() == [3, 4]
    assert problems["found"].to_list() == [
        '("a", 0), first seen at x.jsonl:1',
        '("b", 0), first seen at x.jsonl:2',
    ]
    assert duplicate_problems(traces.head(3)).is_empty()


# ---- the report ---------------------------------------------------------------------------------


def test_validate_dumps_counts_every_problem(tmp_path: Path) -> None:
    (tmp_path / "empty.jsonl").touch()
    report = validate_dumps(
        [FIXTURES / "broken.jsonl", FIXTURES / "valid.jsonl", tmp_path / "empty.jsonl"],
        rejects_path=tmp_path / "rejects.jsonl",
        max_examples=3,
    )
    assert (report.read, report.accepted, report.rejected) == (15, 7, 8)
    assert report.blank_lines == 1 and report.empty_files == [str(tmp_path / "empty.jsonl")]
    assert not report.clean
    assert report.problem_counts[("asr.nbest[].confidence", A_PROBABILITY)] == 1
    assert report.problem_counts[("", "a JSON object")] == 2
    assert sum(report.problem_counts.values()) == 8
    assert [r.line for r in report.examples] == [2, 3, 4]
    saved = (tmp_path / "rejects.jsonl").read_text(encoding="utf-8").splitlines()
    assert len(saved) == 8


def test_validate_dumps_of_a_clean_dump() -> None:
    report = validate_dumps([FIXTURES / "valid.jsonl"])
    assert report.clean and report.read == report.accepted == 4
    assert report.examples == [] and not report.problem_counts


def test_validate_dumps_refuses_unreadable_input(tmp_path: Path) -> None:
    (tmp_path / "cut.jsonl.gz").write_bytes(b"\x1f\x8b\x08\x00garbage")
    with pytest.raises(InputError, match="truncated or corrupt gzip"):
        validate_dumps([tmp_path / "cut.jsonl.gz"])


def test_validate_dumps_refuses_rejects_that_name_an_input(tmp_path: Path) -> None:
    dump = tmp_path / "s.jsonl"
    dump.write_bytes((FIXTURES / "broken.jsonl").read_bytes())
    before = dump.read_bytes()
    (tmp_path / "link.jsonl").symlink_to(dump)
    for rejects in (dump, tmp_path / "link.jsonl", tmp_path):
        with pytest.raises(InputError, match="--rejects"):
            validate_dumps([dump], rejects_path=rejects)
    assert dump.read_bytes() == before
