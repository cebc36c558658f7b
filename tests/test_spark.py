"""`fpi.spark` in Spark local mode: the same answers as the single-process triage."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys

import polars as pl
import pytest
from typer.testing import CliRunner

pytest.importorskip("pyspark", reason="PySpark not installed (pip install 'fpi[spark]')")
if shutil.which("java") is None:
    pytest.skip("Java not found (Spark needs Java 17)", allow_module_level=True)

from fpi import spark as fpi_spark
from fpi.cli import app
from fpi.io import read_traces, write_traces
from fpi.schema import PROBABILITY_COLUMNS, TRIAGE_SCHEMA
from fpi.triage import triage_paths

TURNS = 600


@pytest.fixture(scope="module")
def spark():
    session = fpi_spark.session("local[2]", app_name="fpi-tests")
    session.sparkContext.setLogLevel("ERROR")
    session.conf.set("spark.sql.shuffle.partitions", "2")
    yield session


@pytest.fixture(scope="module")
def traces(small_traces):
    dialogues = small_traces.get_column("dialogue_id").unique(maintain_order=True).head(150)
    return small_traces.filter(pl.col("dialogue_id").is_in(dialogues.implode())).head(TURNS)


def _collect(df) -> pl.DataFrame:
    import pyarrow as pa

    return pl.from_arrow(pa.Table.from_batches(df._collect_as_arrow(), schema=None))


def _same_answers(local: pl.DataFrame, on_spark: pl.DataFrame) -> None:
    assert on_spark.height == local.height
    joined = local.join(on_spark, on="turn_id", suffix="_spark", how="inner")
    assert joined.height == local.height
    assert (joined["failure_point"] == joined["failure_point_spark"]).all()
    for column in ("confidence", *PROBABILITY_COLUMNS):
        assert (joined[column] - joined[f"{column}_spark"]).abs().max() <= 1e-9
    assert joined["reasons"].to_list() == joined["reasons_spark"].to_list()


def test_spark_triage_equals_the_single_process(spark, traces, small_model_dir, tmp_path):
    dump = write_traces(traces, tmp_path / "dump.jsonl")
    on_spark = _collect(
        fpi_spark.triage(fpi_spark.read_dumps(spark, [dump]), small_model_dir, top_k=3)
    )
    assert list(on_spark.columns) == TRIAGE_SCHEMA.names()
    _same_answers(triage_paths([dump], model_dir=small_model_dir, top_k=3), on_spark)


def test_a_dialogue_split_across_two_files_keeps_its_context(
    spark, traces, small_model_dir, tmp_path
):
    whole = write_traces(traces, tmp_path / "whole.jsonl")
    first = traces.filter(pl.col("turn_index") == pl.col("turn_index").min().over("dialogue_id"))
    rest = traces.join(first.select("turn_id"), on="turn_id", how="anti")
    parts = [write_traces(rest, tmp_path / "b.jsonl"), write_traces(first, tmp_path / "a.jsonl")]
    on_spark = _collect(fpi_spark.triage(fpi_spark.read_dumps(spark, parts), small_model_dir))
    _same_answers(triage_paths([whole], model_dir=small_model_dir), on_spark)


def test_a_lake_table_of_trace_columns_triages_the_same(spark, traces, small_model_dir, tmp_path):
    dump = write_traces(traces, tmp_path / "dump.parquet")
    table = spark.read.parquet(str(dump))
    on_spark = _collect(fpi_spark.triage(table, small_model_dir))
    _same_answers(triage_paths([dump], model_dir=small_model_dir), on_spark)


def _damaged_dump(traces: pl.DataFrame, path):
    write_traces(traces.head(40), path)
    lines = path.read_text().splitlines()
    lines[3] = "{not json"
    record = json.loads(lines[5])
    record["asr"] = {"text": 7}
    lines[5] = json.dumps(record)
    lines.append(lines[10])  # a repeated (dialogue_id, turn_index)
    lines.append('{"dialogue_id": "' + "x" * 3000 + '"}')  # over a 2,000-byte line cap
    path.write_text("\n".join(lines) + "\n")
    return path


def test_bad_records_land_in_rejects_with_the_same_reasons(
    spark, traces, small_model_dir, tmp_path
):
    dump = _damaged_dump(traces, tmp_path / "bad.jsonl")
    local_rejects: list = []
    read_traces([dump], rejects=local_rejects, max_line_bytes=2000)
    local = triage_paths([dump], model_dir=small_model_dir, rejects=[])
    lines = fpi_spark.read_dumps(spark, [dump], max_line_bytes=2000)
    run = fpi_spark.triage_with_rejects(lines, small_model_dir, max_line_bytes=2000)
    rejects = sorted(
        (r["file"], r["line"], r["record"], [p["message"] for p in r["reasons"]])
        for r in run.rejects.collect()
    )
    expected = sorted(
        (r.file, r.line, r.record, [p.message for p in r.problems]) for r in local_rejects
    )
    assert rejects == expected and len(rejects) == 4
    assert run.turns.count() + len(rejects) == 42
    _same_answers(local, _collect(run.turns.drop("_kept")))


def test_cli_spark_engine_writes_weeks_that_the_report_reads(
    traces, small_model_dir, tmp_path, spark
):
    dump = _damaged_dump(traces, tmp_path / "bad.jsonl")
    out, rejects = tmp_path / "triaged", tmp_path / "rejects.jsonl"
    runner = CliRunner()
    args = ["triage", str(dump), "--engine", "spark", "--master", "local[2]"]
    args += ["--model", str(small_model_dir), "--out", str(out)]
    refused = runner.invoke(app, args)
    assert refused.exit_code == 1 and not out.exists()  # invalid records, nothing written
    result = runner.invoke(app, [*args, "--rejects", str(rejects)])
    assert result.exit_code == 0, result.output
    assert "read 42 turns = 38 triaged + 4 rejected" in result.output
    assert len(rejects.read_text().splitlines()) == 4
    weeks = sorted(p.name for p in out.iterdir() if p.is_dir())
    assert weeks and all(w.startswith("week=") for w in weeks)
    triaged = pl.read_parquet(out / weeks[-1] / "*.parquet")
    assert not [p for p in out.rglob("*") if p.suffix == ".crc" or p.name == "_SUCCESS"]
    local = triage_paths([dump], model_dir=small_model_dir, rejects=[])
    week = weeks[-1].removeprefix("week=")
    assert set(triaged["turn_id"]) <= set(local["turn_id"])
    report = runner.invoke(app, ["report", str(out), "--week", week, "--out", str(tmp_path / "r")])
    assert report.exit_code == 0, report.output
    assert (tmp_path / "r" / "report.json").is_file()


def test_a_failed_spark_run_keeps_the_earlier_output(traces, small_model_dir, tmp_path, spark):
    dump = _damaged_dump(traces, tmp_path / "bad.jsonl")
    out = tmp_path / "triaged"
    (out / "week=2026-W01").mkdir(parents=True)
    (out / "week=2026-W01" / "keep.parquet").write_bytes(b"earlier")
    args = ["triage", str(dump), "--engine", "spark", "--master", "local[2]"]
    result = CliRunner().invoke(app, [*args, "--model", str(small_model_dir), "--out", str(out)])
    assert result.exit_code == 1
    assert (out / "week=2026-W01" / "keep.parquet").read_bytes() == b"earlier"


def test_the_core_package_never_imports_pyspark():
    code = (
        "import sys, fpi.cli, fpi.triage, fpi.io, fpi.report, fpi.model; "
        "assert 'pyspark' not in sys.modules"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


def test_the_spark_submit_example_runs_on_the_example_week(spark, tmp_path, monkeypatch, capsys):
    import runpy

    out = tmp_path / "example"
    monkeypatch.setattr(sys, "argv", ["spark_triage.py", "--out", str(out)])
    runpy.run_path("examples/spark_triage.py", run_name="__main__")
    assert "read 3,000 turns = 3,000 triaged + 0 rejected" in capsys.readouterr().out
    assert pl.read_parquet(out / "**" / "*.parquet").height == 3_000
