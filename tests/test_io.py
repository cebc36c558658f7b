"""Reading and writing trace dumps: formats, inputs, batching, whole-file failures."""

from __future__ import annotations

import gzip
import json
import os
import random
from datetime import UTC, datetime
from pathlib import Path

import polars as pl
import pytest
import zstandard
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from polars.testing import assert_frame_equal
from strategies import records_to_frame, trace_frames, trace_records

from fpi.errors import InputError, InvalidRecordsError
from fpi.io import (
    ReadStats,
    RejectsWriter,
    from_trace_records,
    iter_trace_batches,
    read_traces,
    resolve_inputs,
    write_rejects,
    write_traces,
)
from fpi.schema import TRACE_SCHEMA, Reject

FIXTURES = Path(__file__).parent / "fixtures" / "io"
VALID = FIXTURES / "valid.jsonl"
BROKEN = FIXTURES / "broken.jsonl"
FORMATS = [".jsonl", ".jsonl.gz", ".jsonl.zst", ".parquet"]
PROVENANCE = ["source_file", "source_line"]


def record(dialogue: str, turn: int, **fields: object) -> dict:
    return {
        "dialogue_id": dialogue,
        "turn_index": turn,
        "timestamp": "2026-11-17T08:15:02Z",
        **fields,
    }


def write_jsonl(path: Path, records: list[dict | str]) -> Path:
    lines = [r if isinstance(r, str) else json.dumps(r, ensure_ascii=False) for r in records]
    path.write_text("".join(line + "\n" for line in lines), encoding="utf-8")
    return path


# ---- formats and round trips ----------------------------------------------------------------


def test_valid_dump_reads_into_the_trace_schema() -> None:
    traces = read_traces(VALID)
    assert traces.schema == TRACE_SCHEMA
    assert traces["dialogue_id"].to_list() == ["d-0001", "d-0002", "d-0001", "d-0003"]
    assert traces["source_line"].to_list() == [1, 2, 3, 4]
    assert traces["turn_id"].to_list() == ["d-0001/0", "d-0002/0", "custom-turn-id", "d-0003/4"]
    assert traces["timestamp"].to_list() == [
        datetime(2026, 11, 17, 8, 15, 2, 120_000, tzinfo=UTC),
        datetime(2026, 11, 17, 8, 15, 2, tzinfo=UTC),  # 09:15:02+01:00
        datetime(2026, 11, 17, 8, 15, 9, 500_000, tzinfo=UTC),
        datetime(2026, 11, 17, 15, 0, 0, 123_456, tzinfo=UTC),  # nanoseconds truncated
    ]
    assert traces["asr"].struct.field("text")[2] == "¿Qué tiempo hace en São Paulo? 天気 🌧"
    assert json.loads(traces["reference_labels"][2]) == {
        "single_annotator": "er",
        "heuristic": None,
    }
    assert traces["device"][3] is None and traces["asr"][3] is None


@pytest.mark.parametrize("suffix", FORMATS)
def test_write_then_read_gives_the_same_frame(tmp_path: Path, suffix: str) -> None:
    traces = read_traces(VALID)
    copy = read_traces(write_traces(traces, tmp_path / f"copy{suffix}"))
    assert_frame_equal(copy.drop(PROVENANCE), traces.drop(PROVENANCE))
    first_line = 0 if suffix == ".parquet" else 1
    assert copy["source_line"].to_list() == list(range(first_line, first_line + 4))


def test_reference_labels_with_different_keys_keep_their_own_keys(tmp_path: Path) -> None:
    path = write_jsonl(
        tmp_path / "labels.jsonl",
        [
            record("a", 0, reference_labels={"x": "asr"}),
            record("a", 1, reference_labels={"y": "er"}),
        ],
    )
    copy = read_traces(write_traces(read_traces(path), tmp_path / "copy.jsonl"))
    assert [json.loads(t) for t in copy["reference_labels"]] == [{"x": "asr"}, {"y": "er"}]


def test_parquet_with_datetime_timestamps_and_struct_labels(tmp_path: Path) -> None:
    frame = pl.DataFrame(
        {
            "dialogue_id": ["a", "a"],
            "turn_index": [0, 1],
            "timestamp": [datetime(2026, 1, 1, 12, 0, 0, 250), datetime(2026, 1, 1, 12, 0, 5)],
            "reference_labels": [{"single": "asr"}, None],
            "x_extra": [1, 2],
        }
    ).with_columns(pl.col("timestamp").dt.replace_time_zone("Europe/Berlin"))
    frame.write_parquet(tmp_path / "t.parquet")
    traces = read_traces(tmp_path / "t.parquet")
    assert traces.schema == TRACE_SCHEMA
    assert traces["timestamp"].to_list() == [
        datetime(2026, 1, 1, 11, 0, 0, 250, tzinfo=UTC),
        datetime(2026, 1, 1, 11, 0, 5, tzinfo=UTC),
    ]
    assert json.loads(traces["reference_labels"][0]) == {"single": "asr"}
    assert traces["source_line"].to_list() == [0, 1]


def test_parquet_with_other_types_is_checked_row_by_row(tmp_path: Path) -> None:
    frame = pl.DataFrame(
        {
            "dialogue_id": ["a", "a", "b"],
            "turn_index": pl.Series([0, 1, -2], dtype=pl.Int32),
            "timestamp": ["2026-01-01T00:00:00Z", "not a time", "2026-01-01T00:00:00Z"],
            "asr": [{"confidence": 0.5}, {"confidence": 0.25}, {"confidence": 0.75}],
        }
    )
    frame.write_parquet(tmp_path / "t.parquet")
    rejects: list[Reject] = []
    traces = read_traces(tmp_path / "t.parquet", rejects=rejects)
    assert traces["turn_index"].to_list() == [0]
    assert traces["asr"].struct.field("confidence").to_list() == [0.5]
    assert [(r.line, [p.field for p in r.problems]) for r in rejects] == [
        (1, ["timestamp"]),
        (2, ["turn_index"]),
    ]
    assert json.loads(rejects[0].record)["timestamp"] == "not a time"


def test_parquet_duplicates_are_rejected_with_the_row_as_json(tmp_path: Path) -> None:
    write_traces(read_traces(VALID), tmp_path / "a.parquet")
    write_traces(read_traces(VALID).head(2), tmp_path / "b.parquet")
    rejects: list[Reject] = []
    traces = read_traces(tmp_path, rejects=rejects)
    assert len(traces) == 4
    assert [(Path(r.file).name, r.line) for r in rejects] == [("b.parquet", 0), ("b.parquet", 1)]
    assert json.loads(rejects[0].record)["dialogue_id"] == "d-0001"
    assert rejects[0].problems[0].found.endswith("a.parquet:0")


def test_concatenated_zstd_frames_and_gzip_members_are_read(tmp_path: Path) -> None:
    first, second = (json.dumps(record("a", i)).encode() + b"\n" for i in range(2))
    compressor = zstandard.ZstdCompressor()
    (tmp_path / "two.jsonl.zst").write_bytes(
        compressor.compress(first) + compressor.compress(second)
    )
    (tmp_path / "two.jsonl.gz").write_bytes(gzip.compress(first) + gzip.compress(second))
    for name in ["two.jsonl.zst", "two.jsonl.gz"]:
        assert read_traces(tmp_path / name)["turn_index"].to_list() == [0, 1]


@pytest.mark.parametrize("suffix", [".jsonl", ".jsonl.gz", ".jsonl.zst"])
def test_line_numbers_hold_across_many_small_blocks(
    tmp_path: Path, suffix: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("fpi.io.decode.BLOCK_BYTES", 200)  # a few lines a block, some longer
    lines = BROKEN.read_text(encoding="utf-8").splitlines() * 5
    path = tmp_path / f"broken{suffix}"
    data = ("\n".join(lines) + "\n").encode()
    if suffix == ".jsonl.gz":
        data = gzip.compress(data)
    elif suffix == ".jsonl.zst":
        data = zstandard.ZstdCompressor().compress(data)
    path.write_bytes(data)
    rejects: list[Reject] = []
    traces = read_traces(path, rejects=rejects)
    assert len(traces) + len(rejects) == 55
    for row in traces.iter_rows(named=True):
        assert json.loads(lines[row["source_line"] - 1])["turn_index"] == row["turn_index"]
    assert all(r.record == lines[r.line - 1] for r in rejects)


# ---- inputs ---------------------------------------------------------------------------------


def test_resolve_inputs_recurses_directories_and_expands_globs(tmp_path: Path) -> None:
    for name in ["b/2.jsonl.gz", "a/1.parquet", "a/deep/0.jsonl.zst", "notes.txt", "c.jsonl"]:
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).touch()
    assert resolve_inputs([tmp_path]) == [
        tmp_path / "a/1.parquet",
        tmp_path / "a/deep/0.jsonl.zst",
        tmp_path / "b/2.jsonl.gz",
        tmp_path / "c.jsonl",
    ]
    assert resolve_inputs([tmp_path / "c.jsonl", os.path.relpath(tmp_path / "c.jsonl")]) == [
        tmp_path / "c.jsonl"
    ]
    assert resolve_inputs([str(tmp_path / "*" / "*.jsonl*"), tmp_path / "c.jsonl"]) == [
        tmp_path / "b/2.jsonl.gz",
        tmp_path / "c.jsonl",
    ]


@pytest.mark.parametrize(
    ("given", "message"),
    [
        ("missing.jsonl", "no such file"),
        ("nothing-*.jsonl", "no trace dumps match"),
        ("notes.txt", "not a trace dump"),
        ("empty-dir", "no trace dumps in this directory"),
    ],
)
def test_resolve_inputs_names_what_is_wrong(tmp_path: Path, given: str, message: str) -> None:
    (tmp_path / "notes.txt").touch()
    (tmp_path / "empty-dir").mkdir()
    with pytest.raises(InputError, match=message):
        resolve_inputs([tmp_path / given])


# ---- invalid records ----------------------------------------------------------------------------


def test_broken_dump_raises_naming_every_problem() -> None:
    with pytest.raises(InvalidRecordsError) as caught:
        read_traces(BROKEN)
    located = {(p.line, p.field) for p in caught.value.problems}
    assert located == {
        (2, ""),
        (3, "turn_index"),
        (4, "asr.nbest[1].confidence"),
        (5, "device.type"),
        (6, "timestamp"),
        (7, "dialogue_id"),
        (8, "(dialogue_id, turn_index)"),
        (9, ""),
    }
    assert "broken.jsonl:4: field asr.nbest[1].confidence: expected a number in 0..1" in str(
        caught.value
    )


def test_broken_dump_with_rejects_loses_nothing(tmp_path: Path) -> None:
    rejects: list[Reject] = []
    traces = read_traces(BROKEN, rejects=rejects)
    assert traces["source_line"].to_list() == [1, 11, 12]  # the blank line 10 is skipped
    assert [r.line for r in rejects] == [2, 3, 4, 5, 6, 7, 8, 9]
    assert len(traces) + len(rejects) == 11
    duplicate = rejects[6].problems[0]
    assert duplicate.found.endswith("broken.jsonl:1")
    lines = BROKEN.read_text(encoding="utf-8").splitlines()
    written = write_rejects(rejects, tmp_path / "rejects.jsonl")
    saved = [json.loads(line) for line in written.read_text(encoding="utf-8").splitlines()]
    assert [s["record"] for s in saved] == [lines[r.line - 1] for r in rejects]
    assert saved[1]["reasons"][0]["field"] == "turn_index"


def test_one_record_with_several_problems_is_one_reject(tmp_path: Path) -> None:
    path = write_jsonl(
        tmp_path / "many.jsonl",
        [
            {
                "dialogue_id": "",
                "turn_index": 1.5,
                "timestamp": "2026-11-17",
                "wake": {"mode": "shout", "confidence": 2},
                "er": {"entities": [{"candidates": -1, "status": "resolved"}]},
                "locale": ["en"],
            }
        ],
    )
    rejects: list[Reject] = []
    read_traces(path, rejects=rejects)
    (reject,) = rejects
    assert {p.field for p in reject.problems} == {
        "dialogue_id",
        "turn_index",
        "timestamp",
        "wake.mode",
        "wake.confidence",
        "er.entities[0].candidates",
        "locale",
    }


def test_string_fields_holding_other_json_types_are_rejected(tmp_path: Path) -> None:
    path = write_jsonl(
        tmp_path / "types.jsonl",
        [
            record("a", 0, asr={"text": 42}),
            record("a", 1, reference_labels="asr"),
            record("a", 2, x_unknown={"text": 42}),  # an unknown field may hold anything
        ],
    )
    rejects: list[Reject] = []
    traces = read_traces(path, rejects=rejects)
    assert traces["turn_index"].to_list() == [2]
    assert [(r.line, r.problems[0].field, r.problems[0].expected) for r in rejects] == [
        (1, "asr.text", "a string"),
        (2, "reference_labels", "a JSON object"),
    ]


# ---- batches ----------------------------------------------------------------------------------


def scattered_dump(path: Path, dialogues: int, seed: int = 7) -> list[dict]:
    rng = random.Random(seed)
    records = [
        record(f"dlg-{d}", t, asr={"text": f"turn {t}", "confidence": 0.5})
        for d in range(dialogues)
        for t in range(rng.randint(1, 6))
    ]
    rng.shuffle(records)
    write_jsonl(path, records)
    return records


@pytest.mark.parametrize("batch_turns", [10, 1_000_000])
def test_batches_never_split_a_dialogue(tmp_path: Path, batch_turns: int) -> None:
    records = scattered_dump(tmp_path / "scattered.jsonl", dialogues=200)
    bad = ["not json", json.dumps(record("dlg-0", 0))]  # a broken line and a duplicate
    with (tmp_path / "scattered.jsonl").open("a") as fh:
        fh.write("\n".join(bad) + "\n")
    rejects: list[Reject] = []
    batches = list(iter_trace_batches([tmp_path], batch_turns=batch_turns, rejects_sink=rejects))
    seen: dict[str, int] = {}
    for number, batch in enumerate(batches):
        assert batch.traces.schema == TRACE_SCHEMA
        assert batch.read == len(batch.traces) + batch.rejected
        assert batch.order.is_sorted() and len(batch.order) == len(batch.traces)
        for dialogue in batch.traces["dialogue_id"].unique():
            assert seen.setdefault(dialogue, number) == number
    assert sum(b.read for b in batches) == len(records) + 2
    assert sum(len(b.traces) for b in batches) == len(records)
    assert sorted(r.line for r in rejects) == [len(records) + 1, len(records) + 2]
    assert [r.record for r in sorted(rejects, key=lambda r: r.line)] == bad
    assert len(seen) == 200
    if batch_turns == 10:
        assert len(batches) > 5
        assert max(len(b.traces) for b in batches) <= 10 + 5  # at most one oversized dialogue
    else:
        assert len(batches) == 1


def test_a_dialogue_larger_than_a_batch_stays_whole(tmp_path: Path) -> None:
    records = [record("long", t) for t in range(40)] + [record(f"s{i}", 0) for i in range(30)]
    random.Random(3).shuffle(records)
    write_jsonl(tmp_path / "long.jsonl", records)
    batches = list(iter_trace_batches([tmp_path / "long.jsonl"], batch_turns=8))
    holding = [b for b in batches if "long" in b.traces["dialogue_id"].to_list()]
    assert len(holding) == 1 and holding[0].traces["dialogue_id"].eq("long").sum() == 40
    assert sum(b.read for b in batches) == 70


def test_batches_without_a_sink_stop_at_an_invalid_record(tmp_path: Path) -> None:
    path = write_jsonl(tmp_path / "bad.jsonl", [record("a", 0), record("a", -1)])
    with pytest.raises(InvalidRecordsError, match=r"bad.jsonl:2: field turn_index"):
        list(iter_trace_batches([path]))


def test_rejects_writer_streams_rejects(tmp_path: Path) -> None:
    with RejectsWriter(tmp_path / "out" / "rejects.jsonl") as writer:
        list(iter_trace_batches([BROKEN], rejects_sink=writer))
    lines = (tmp_path / "out" / "rejects.jsonl").read_text(encoding="utf-8").splitlines()
    assert writer.count == len(lines) == 8


# ---- whole files --------------------------------------------------------------------------------


def test_empty_and_blank_files_hold_zero_records(tmp_path: Path) -> None:
    (tmp_path / "empty.jsonl").touch()
    (tmp_path / "blank.jsonl").write_text("\n  \n\r\n")
    (tmp_path / "empty.jsonl.gz").write_bytes(gzip.compress(b""))
    stats = ReadStats()
    assert list(iter_trace_batches([tmp_path], stats=stats)) == []
    assert len(stats.empty_files) == 3 and stats.blank_lines == 3
    assert read_traces(tmp_path).schema == TRACE_SCHEMA


def test_crlf_lines_and_a_byte_order_mark(tmp_path: Path) -> None:
    text = "\ufeff" + json.dumps(record("a", 0)) + "\r\n" + json.dumps(record("a", 1)) + "\r\n"
    (tmp_path / "crlf.jsonl").write_bytes(text.encode())
    assert read_traces(tmp_path / "crlf.jsonl")["turn_index"].to_list() == [0, 1]


@pytest.mark.parametrize(
    ("name", "content", "message"),
    [
        (
            "cut.jsonl.gz",
            gzip.compress(b'{"a": 1}\n' * 5000, mtime=0)[:-40],
            "truncated or corrupt gzip",
        ),
        (
            "cut.jsonl.zst",
            zstandard.ZstdCompressor().compress(b'{"a": 1}\n' * 5000)[:-20],
            "truncated or corrupt zstd",
        ),
        ("named.jsonl", gzip.compress(b"{}\n", mtime=0), "gzip data, but the name says .jsonl"),
        ("plain.jsonl.gz", b"{}\n", "not gzip data"),
        ("fake.parquet", b"PAR1 not really", "unreadable Parquet"),
        ("text.parquet", b'{"a": 1}\n', "not Parquet data"),
    ],
)
def test_unreadable_files_are_input_errors(
    tmp_path: Path, name: str, content: bytes, message: str
) -> None:
    (tmp_path / name).write_bytes(content)
    with pytest.raises(InputError, match=message) as caught:
        read_traces(tmp_path / name)
    assert name in str(caught.value)


def test_a_ten_megabyte_line_is_read(tmp_path: Path) -> None:
    long_text = "ü" * (5 << 20)  # 10 MB of UTF-8
    path = write_jsonl(
        tmp_path / "long.jsonl", [record("a", 0), record("a", 1, asr={"text": long_text})]
    )
    traces = read_traces(path)
    assert traces["asr"].struct.field("text")[1] == long_text


def test_from_trace_records_converts_frames_from_strategies() -> None:
    frame = records_to_frame(
        [record("a", 0), record("a", 1, timestamp="2026-11-17T09:15:02+01:00")]
    )
    traces = from_trace_records(frame)
    assert traces.schema == TRACE_SCHEMA
    assert traces["timestamp"].n_unique() == 1
    with pytest.raises(InvalidRecordsError, match="turn_index"):
        from_trace_records(records_to_frame([record("a", -3)]))


# ---- property --------------------------------------------------------------------------------


@settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(records=st.lists(trace_records(), min_size=1, max_size=8), suffix=st.sampled_from(FORMATS))
def test_any_valid_record_round_trips_and_validates_clean(
    tmp_path: Path, records: list[dict], suffix: str
) -> None:
    for i, r in enumerate(records):  # unique keys
        r["dialogue_id"], r["turn_index"] = f"d{i % 3}", i
    path = write_jsonl(tmp_path / "drawn.jsonl", records)
    rejects: list[Reject] = []
    traces = read_traces(path, rejects=rejects)
    assert rejects == []
    assert_frame_equal(
        traces.drop(PROVENANCE), from_trace_records(records_to_frame(records)).drop(PROVENANCE)
    )
    copy = read_traces(write_traces(traces, tmp_path / f"copy{suffix}"))
    assert_frame_equal(copy.drop(PROVENANCE), traces.drop(PROVENANCE))


@settings(max_examples=15, deadline=None)
@given(frame=trace_frames())
def test_drawn_frames_are_valid_traces(frame: pl.DataFrame) -> None:
    traces = from_trace_records(frame)
    assert len(traces) == len(frame)
    assert traces.select("dialogue_id", "turn_index").is_unique().all()
