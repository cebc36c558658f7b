"""The importer contract: atomic output, validation before writing, pass-through, counts."""

from __future__ import annotations

import json

import pytest

from fpi.errors import InputError
from fpi.importers.base import (
    Pending,
    Skipped,
    check_record,
    rfc3339,
    run_import,
    unmapped,
)
from tests.importers.helpers import FIXTURES

GOOD = {"dialogue_id": "d", "turn_index": 0, "timestamp": "2024-01-01T00:00:00.000Z"}


def test_unmapped_keeps_exactly_what_the_mapping_did_not_read():
    value = {"a": 1, "b": {"c": 2, "d": 3}, "e": [{"f": 1, "g": 2}, {"f": 3}], "h": None}
    mapped = {"a": True, "b": {"c": True}, "e": [{"f": True}]}
    assert unmapped(value, mapped) == {"b": {"d": 3}, "e": [{"g": 2}, None], "h": None}
    assert unmapped({"a": 1}, {"a": True}) is None


@pytest.mark.parametrize(
    ("value", "text"),
    [
        ("2024-05-02T18:00:00.100000+00:00", "2024-05-02T18:00:00.100Z"),
        ("2024-05-02T20:00:00.123456+02:00", "2024-05-02T18:00:00.123456Z"),
        ("2022-03-25T02:06:07.382Z", "2022-03-25T02:06:07.382Z"),
        (1517821726.200036, "2018-02-05T09:08:46.200036Z"),
    ],
)
def test_timestamps_become_rfc3339_utc(value, text):
    assert rfc3339(value) == text


def problem(record: dict) -> str | None:
    return check_record(record).problem


def test_type_problems_name_the_field():
    assert problem(GOOD) is None
    assert problem({**GOOD, "asr": {"text": 5}}) == (
        "field asr.text: expected a string, found 5 (a number)"
    )
    assert problem({**GOOD, "nlu": {"confidence": float("inf")}}) == (
        "field nlu.confidence: expected a finite number, found inf"
    )
    assert problem({**GOOD, "passthrough": {"anything": [1, "x", float("nan")]}}) is None


@pytest.mark.parametrize("suffix", [".jsonl", ".parquet"])
def test_a_nan_the_source_logged_outside_the_trace_is_kept_as_text(tmp_path, suffix):
    from tests.importers.helpers import read_records

    record = {**GOOD, "passthrough": {"score": float("nan"), "ok": [1.5]}}
    out = tmp_path / f"o{suffix}"
    summary = run_import("test", "unit", units(Pending("u", lambda: [record])), out)
    assert summary.imported == 1
    assert read_records(out)[0]["passthrough"] == {"score": "nan", "ok": [1.5]}


def units(*items):
    return iter(items)


def test_read_is_imported_plus_skipped_and_bad_units_never_reach_the_output(tmp_path):
    out = tmp_path / "out.jsonl"
    rejects = tmp_path / "skipped.jsonl"

    def boom() -> list[dict]:
        raise KeyError("events")

    summary = run_import(
        "test",
        "unit",
        units(
            Pending("ok", lambda: [{**GOOD, "passthrough": {"raw": {"x": 1}}}]),
            Pending("dup", lambda: [GOOD]),
            Pending("range", lambda: [{**GOOD, "turn_index": 1, "asr": {"confidence": 2.0}}]),
            Pending("crash", boom),
            Skipped("file", "cannot read"),
            Pending("ok2", lambda: [{**GOOD, "turn_index": 2, "result": {"status": "success"}}]),
        ),
        out,
        rejects=rejects,
    )
    assert (summary.read, summary.imported, summary.skipped, summary.turns) == (6, 2, 4, 2)
    assert dict(summary.reasons) == {
        "dup": "turn 'd'/0: ('dialogue_id', 'turn_index') ('d', 0) repeats an earlier turn",
        "range": "turn 'd'/1: field asr.confidence: expected a number in 0..1, found 2.0",
        "crash": "missing key 'events'",
        "file": "cannot read",
    }
    written = [json.loads(line) for line in out.read_text().splitlines()]
    assert [r["turn_index"] for r in written] == [0, 2]
    assert written[0]["passthrough"] == {"raw": {"x": 1}}
    assert len(rejects.read_text().splitlines()) == 4


def test_a_failed_import_leaves_the_previous_output_untouched(tmp_path):
    out = tmp_path / "out.jsonl"
    out.write_text("previous\n")

    def interrupted():
        yield Pending("ok", lambda: [GOOD])
        raise InputError("disk on fire")

    with pytest.raises(InputError, match="disk on fire"):
        run_import("test", "unit", interrupted(), out)
    assert out.read_text() == "previous\n"
    assert [p.name for p in tmp_path.iterdir()] == ["out.jsonl"]  # no temporary left


def test_outputs_that_cannot_be_written_are_refused_before_reading(tmp_path):
    with pytest.raises(InputError, match="unknown trace format"):
        run_import("test", "unit", units(), tmp_path / "out.csv")
    (tmp_path / "dir.jsonl").mkdir()
    with pytest.raises(InputError, match="names a directory"):
        run_import("test", "unit", units(), tmp_path / "dir.jsonl")
    with pytest.raises(InputError, match="name the same file"):
        run_import("test", "unit", units(), tmp_path / "o.jsonl", rejects=tmp_path / "o.jsonl")


def test_an_output_that_is_an_input_is_refused(tmp_path):
    from fpi.importers.lex import import_lex

    log = tmp_path / "log.jsonl"
    log.write_text("{}\n")
    for kwargs in ({"out": log}, {"out": tmp_path / "o.jsonl", "rejects": log}):
        with pytest.raises(InputError, match="is an input file"):
            import_lex([tmp_path], **kwargs)
    assert log.read_text() == "{}\n"


def test_an_overlong_line_is_one_skipped_unit(tmp_path, monkeypatch):
    from fpi.importers import base
    from fpi.importers.lex import import_lex

    monkeypatch.setattr(base, "MAX_LINE_BYTES", 100)
    good = (FIXTURES / "lex" / "speech_session.jsonl").read_text().splitlines()[0]
    path = tmp_path / "log.jsonl"
    path.write_text('{"x": "' + "a" * 500 + '"}\n' + good[:99] + "\n")
    summary = import_lex([path], tmp_path / "o.jsonl")
    assert (summary.read, summary.skipped) == (2, 2)
    assert summary.reasons[0] == (f"{path}:1", "a line of 509 bytes (the cap is 100)")


def test_text_the_reader_would_refuse_skips_the_unit_even_in_passthrough(tmp_path):
    out = tmp_path / "o.jsonl"
    bad = {**GOOD, "passthrough": {"raw": "a\ud800b"}}
    summary = run_import("test", "unit", units(Pending("u", lambda: [bad])), out)
    assert (summary.imported, summary.skipped) == (0, 1)
    assert "surrogate" in summary.reasons[0][1]
