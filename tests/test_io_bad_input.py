"""Bad input stays line-level and memory stays bounded: damaged bytes, surrogates, repeated
keys, over-long lines, floods of blank lines or rejects, repeated records."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import polars as pl
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from strategies import trace_records

from fpi.errors import InvalidRecordsError
from fpi.io import ReadStats, iter_trace_batches, read_traces
from fpi.io.decode import first_line
from fpi.io.triagefile import is_triage_file
from fpi.schema import Reject
from fpi.validate import A_TEXT, A_UNIQUE_NAME


def record(dialogue: str, turn: int) -> dict:
    return {"dialogue_id": dialogue, "turn_index": turn, "timestamp": "2026-11-17T08:15:02Z"}


def line(dialogue: str, turn: int, **fields: object) -> bytes:
    return json.dumps({**record(dialogue, turn), **fields}).encode()


def write_lines(path: Path, lines: list[bytes]) -> Path:
    path.write_bytes(b"".join(x + b"\n" for x in lines))
    return path


def read_with_rejects(path: Path, **options: object) -> tuple[list[int], list[Reject]]:
    rejects: list[Reject] = []
    traces = read_traces(path, rejects=rejects, **options)  # type: ignore[arg-type]
    return traces["source_line"].to_list(), rejects


def fields(reject: Reject) -> list[str]:
    return [p.field for p in reject.problems]


# ---- encoding damage ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("bad", "field", "found"),
    [
        (b'"asr": {"text": "caf\xe9"}', "asr.text", "invalid UTF-8 (byte 0xe9)"),
        (b'"asr": {"text": "a\x00b"}', "asr.text", "a NUL byte"),
        (b'"asr": {"text": "\\ud800"}', "asr.text", "a lone surrogate (\\ud800)"),
        (b'"asr": {"text": "x\\udc00y"}', "asr.text", "a lone surrogate (\\udc00)"),
        (b'"x_extra": ["ok", "\\uDBFF"]', "x_extra[1]", "a lone surrogate (\\udbff)"),
        (b'"caf\xe9": 1', "caf\\xe9", "invalid UTF-8 (byte 0xe9) in the key"),
    ],
)
def test_one_damaged_line_among_valid_ones_is_one_reject_naming_the_field(
    tmp_path: Path, bad: bytes, field: str, found: str
) -> None:
    damaged = line("d", 100)[:-1] + b", " + bad + b"}"
    lines = [line("d", i) for i in range(100)] + [damaged] + [line("e", i) for i in range(100)]
    kept, rejects = read_with_rejects(write_lines(tmp_path / "damaged.jsonl", lines))
    assert len(kept) == 200 and 101 not in kept
    (reject,) = rejects
    assert reject.line == 101
    assert [(p.field, p.expected, p.found) for p in reject.problems] == [(field, A_TEXT, found)]
    json.dumps(reject.to_json(), ensure_ascii=False).encode("utf-8")  # writable as UTF-8


def test_surrogate_pairs_and_escaped_nul_are_text_not_damage(tmp_path: Path) -> None:
    texts = ["rain 🌧", "a\x00b"]  # json.dumps writes \ud83c\udf27 and \u0000
    path = write_lines(
        tmp_path / "ok.jsonl", [line("d", i, asr={"text": t}) for i, t in enumerate(texts)]
    )
    traces = read_traces(path)
    assert traces["asr"].struct.field("text").to_list() == texts


def test_a_bad_byte_outside_any_string_is_a_record_level_reject(tmp_path: Path) -> None:
    path = write_lines(tmp_path / "bad.jsonl", [line("d", 0), b'{"dialogue_id": \xff}'])
    kept, (reject,) = read_with_rejects(path)
    assert kept == [1]
    assert reject.problems[0].found.startswith("invalid UTF-8 (byte 0xff at column 17)")
    assert reject.record == '{"dialogue_id": \\xff}'


def test_binary_garbage_is_rejected_line_by_line(tmp_path: Path) -> None:
    path = tmp_path / "binary.jsonl"
    path.write_bytes(bytes(range(256)) * 4 + b"\n" + line("d", 0) + b"\n")
    kept, rejects = read_with_rejects(path)
    assert kept == [len(rejects) + 1]
    assert rejects and all(r.problems for r in rejects)


# ---- repeated keys -----------------------------------------------------------------------


KEY = '"dialogue_id": "d", "turn_index": 0, "timestamp": "2026-11-17T08:15:02Z"'


@pytest.mark.parametrize(
    ("text", "field"),
    [
        ('{"turn_index": 5, ' + KEY + "}", "turn_index"),
        ("{" + KEY + ', "asr": {"confidence": 0.9, "confidence": 0.1}}', "asr.confidence"),
        ("{" + KEY + ', "nlu": {"slots": [{"name": "a", "name": "b"}]}}', "nlu.slots[0].name"),
        ("{" + KEY + ', "x": 1, "\\u0078": 2}', "x"),
    ],
)
def test_a_key_given_twice_is_a_reject_naming_the_key(
    tmp_path: Path, text: str, field: str
) -> None:
    path = write_lines(tmp_path / "twice.jsonl", [line("a", 0), text.encode(), line("b", 0)])
    kept, (reject,) = read_with_rejects(path)
    assert kept == [1, 3]
    assert (reject.line, fields(reject)) == (2, [field])
    assert reject.problems[0].expected == A_UNIQUE_NAME


def test_the_same_key_in_different_objects_is_fine(tmp_path: Path) -> None:
    text = line(
        "a",
        0,
        asr={"text": "x", "confidence": 0.5, "nbest": [{"text": "x", "confidence": 0.5}]},
        tts={"text": "y"},
    )
    assert read_traces(write_lines(tmp_path / "ok.jsonl", [text])).height == 1


# ---- line length -------------------------------------------------------------------------


@pytest.mark.parametrize("block_bytes", [1 << 20, 64])  # inside one block, or streamed by
def test_a_line_over_the_cap_is_a_reject_and_the_rest_is_read(
    tmp_path: Path, block_bytes: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("fpi.io.decode.BLOCK_BYTES", block_bytes)
    long = line("d", 1, asr={"text": "x" * 5000})
    lines = [line("d", 0), long, line("d", 2)]
    path = write_lines(tmp_path / "long.jsonl", lines)
    kept, (reject,) = read_with_rejects(path, max_line_bytes=1000)
    assert kept == [1, 3]
    (problem,) = reject.problems
    assert (reject.line, problem.field) == (2, "")
    assert problem.expected == "a line of at most 1,000 bytes"
    assert problem.found == f"a line of {len(long):,} bytes"
    assert reject.record.startswith(long[:100].decode()) and len(reject.record) < 1100


def test_a_long_run_of_spaces_is_a_blank_line(tmp_path: Path) -> None:
    path = tmp_path / "spaces.jsonl.gz"
    path.write_bytes(gzip.compress(line("d", 0) + b"\n" + b" " * (4 << 20) + b"\n"))
    stats = ReadStats()
    batches = list(iter_trace_batches([path], stats=stats, max_line_bytes=1 << 20))
    assert sum(b.read for b in batches) == 1 and stats.blank_lines == 1


def test_a_gzip_of_newlines_is_counted_not_split(tmp_path: Path) -> None:
    path = tmp_path / "newlines.jsonl.gz"
    path.write_bytes(gzip.compress(b"\n" * (64 << 20) + line("d", 0) + b"\n", compresslevel=1))
    stats = ReadStats()
    (batch,) = iter_trace_batches([path], stats=stats)
    assert batch.traces["source_line"].to_list() == [(64 << 20) + 1]
    assert stats.blank_lines == 64 << 20


def test_report_sniffing_reads_a_bounded_prefix(tmp_path: Path) -> None:
    spaces = tmp_path / "spaces.jsonl.gz"
    spaces.write_bytes(gzip.compress(b" " * (32 << 20)))
    assert first_line(spaces, limit=1 << 20) is None
    assert not is_triage_file(spaces)
    triage = tmp_path / "t.jsonl"
    triage.write_text('\n\n{"failure_point": "asr", "p_correct": 0.1}\n{"x": 1}\n')
    assert is_triage_file(triage)


# ---- floods: rejects and repeats ------------------------------------------------------------


def test_rejects_go_to_the_sink_as_they_are_found(tmp_path: Path) -> None:
    path = write_lines(tmp_path / "empty-records.jsonl", [b"{}"] * 50 + [line("d", 0)])
    seen: list[Reject] = []
    batches = iter_trace_batches([path], batch_turns=10, rejects_sink=seen.append)
    first = next(batches)
    assert first.traces.is_empty() and first.rejected == len(seen) >= 10  # counted, not held
    assert not hasattr(first, "rejects")
    rest = list(batches)
    assert sum(b.read for b in [first, *rest]) == 51 and len(seen) == 50


@pytest.mark.parametrize("batch_turns", [7, 1_000_000])
def test_copies_of_one_record_keep_the_first(tmp_path: Path, batch_turns: int) -> None:
    copy = line("d", 0, asr={"text": "again"})
    path = write_lines(tmp_path / "copies.jsonl", [line("e", 0)] + [copy] * 2000)
    seen: list[Reject] = []
    batches = list(iter_trace_batches([path], batch_turns=batch_turns, rejects_sink=seen))
    kept = [n for b in batches for n in b.traces["source_line"].to_list()]
    assert sorted(kept) == [1, 2]
    assert sorted(r.line for r in seen) == list(range(3, 2002))
    assert all(r.record == copy.decode() for r in seen)
    assert seen[0].problems[0].found.endswith("copies.jsonl:2")
    assert sum(b.read for b in batches) == 2001


def test_without_a_sink_reading_stops_at_a_bounded_number_of_rejects(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("fpi.io.batches.MAX_REPORTED_REJECTS", 20)
    path = write_lines(tmp_path / "bad.jsonl", [b"{}"] * 100)
    with pytest.raises(InvalidRecordsError, match="stopped at the first 20") as caught:
        read_traces(path)
    assert len({p.line for p in caught.value.problems}) == 20


# ---- property: mutated records ------------------------------------------------------------

#: (mutation name, field path the reject must name; "" = the whole line)
MUTATIONS = {
    "wrong type": "turn_index",
    "missing field": "timestamp",
    "bad byte": "asr.text",
    "surrogate": "asr.text",
    "nul": "asr.text",
    "repeated key": "dialogue_id",
    "long line": "",
    "not an object": "",
    "out of range": "asr.confidence",
}
MAX_LINE = 4096


def mutate(valid: dict, mutation: str, draw: st.DrawFn) -> bytes:
    """A valid record turned into an invalid line by one mutation."""
    record = dict(valid)
    if mutation == "wrong type":
        record["turn_index"] = draw(st.sampled_from(["3", 1.5, True, [1], {"n": 1}]))
    elif mutation == "missing field":
        del record["timestamp"]
    elif mutation == "out of range":
        record["asr"] = {"confidence": draw(st.sampled_from([1.5, -0.1, 7]))}
    elif mutation == "long line":
        record["asr"] = {"text": "x" * MAX_LINE}
    elif mutation == "not an object":
        return json.dumps(draw(st.sampled_from([[record], "text", 3, None]))).encode()
    elif mutation == "repeated key":
        text = json.dumps(record)
        return (text[:-1] + ', "dialogue_id": "other"}').encode()
    else:
        marker = {"bad byte": b"\xc3(", "surrogate": b"\\udfff", "nul": b"\x00"}[mutation]
        record["asr"] = {"text": "MARK"}
        return json.dumps(record).encode().replace(b"MARK", b"a" + marker + b"b")
    return json.dumps(record).encode()


@st.composite
def mutated_dumps(draw: st.DrawFn) -> tuple[list[bytes], dict[int, str]]:
    """Lines of valid records with some mutated; {1-based line: field the reject names}."""
    records = draw(st.lists(trace_records(), min_size=1, max_size=12))
    lines, expected = [], {}
    for i, valid in enumerate(records):
        valid["dialogue_id"], valid["turn_index"] = f"d{i % 3}", i
        valid.pop("asr", None)
        mutation = draw(st.none() | st.sampled_from(sorted(MUTATIONS)))
        if mutation is None:
            lines.append(json.dumps(valid, ensure_ascii=draw(st.booleans())).encode())
        else:
            lines.append(mutate(valid, mutation, draw))
            expected[len(lines)] = MUTATIONS[mutation]
    return lines, expected


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(dump=mutated_dumps(), batch_turns=st.integers(1, 20))
def test_every_mutated_record_is_one_reject_naming_its_field(
    tmp_path: Path, dump: tuple[list[bytes], dict[int, str]], batch_turns: int
) -> None:
    lines, expected = dump
    path = write_lines(tmp_path / "mutated.jsonl", lines)
    seen: list[Reject] = []
    batches = list(
        iter_trace_batches(
            [path], batch_turns=batch_turns, rejects_sink=seen, max_line_bytes=MAX_LINE
        )
    )
    accepted = [n for b in batches for n in b.traces["source_line"].to_list()]
    assert sum(b.read for b in batches) == len(lines) == len(accepted) + len(seen)
    assert sum(b.rejected for b in batches) == len(seen)
    assert sorted(accepted) == [n for n in range(1, len(lines) + 1) if n not in expected]
    assert {r.line: r for r in seen}.keys() == expected.keys()
    for reject in seen:
        assert expected[reject.line] in fields(reject), (reject, lines[reject.line - 1])
        json.dumps(reject.to_json(), ensure_ascii=False).encode("utf-8")


@settings(
    max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(dump=mutated_dumps(), batch_turns=st.integers(1, 20))
def test_batch_size_never_changes_what_is_read(
    tmp_path: Path, dump: tuple[list[bytes], dict[int, str]], batch_turns: int
) -> None:
    path = write_lines(tmp_path / "mutated.jsonl", dump[0])

    def read(size: int) -> tuple[pl.DataFrame, list[tuple]]:
        seen: list[Reject] = []
        batches = list(
            iter_trace_batches([path], batch_turns=size, rejects_sink=seen, max_line_bytes=MAX_LINE)
        )
        frames = [b.traces.with_columns(b.order) for b in batches if b.traces.height]
        traces = pl.concat(frames).sort("_order") if frames else pl.DataFrame()
        return traces, sorted((r.line, r.record, r.problems) for r in seen)

    small, large = read(batch_turns), read(10**6)
    assert small[1] == large[1]
    assert small[0].equals(large[0])
