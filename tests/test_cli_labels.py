"""The batch labelling path through typer's CliRunner: queue -> labels import -> adapt, plus
labels stats/export/agreement and train/evaluate with --labels."""

from __future__ import annotations

import json

import polars as pl
import pytest
from typer.testing import CliRunner

from fpi.cli import app
from fpi.io import read_traces, write_traces
from fpi.labels import LabelStore, record_hash

runner = CliRunner()


@pytest.fixture(scope="module")
def dump(small_traces, tmp_path_factory):
    return write_traces(small_traces.head(1_200), tmp_path_factory.mktemp("d") / "dump.jsonl")


def _invoke(*args):
    result = runner.invoke(app, [str(a) for a in args])
    return result


def test_queue_import_adapt_end_to_end(dump, small_model_dir, tmp_path):
    db, queue = tmp_path / "labels.db", tmp_path / "next.jsonl"
    result = _invoke("queue", dump, "--labels", db, "--model", small_model_dir, "--n", 30,
                     "--out", queue)  # fmt: skip
    assert result.exit_code == 0, result.output
    rows = [json.loads(line) for line in queue.read_text().splitlines()]
    assert len(rows) == 30
    assert set(rows[0]) == {"turn_id", "dialogue_id", "predicted", "confidence", "why", "seat"}
    gold = dict(
        read_traces(dump).select("turn_id", pl.col("label").struct.field("failure_point")).rows()
    )
    answers = tmp_path / "answers.jsonl"
    lines = [
        json.dumps({"turn_id": r["turn_id"], "failure_point": gold[r["turn_id"]]}) for r in rows
    ]
    lines.append(json.dumps({"turn_id": "no/such", "failure_point": "asr"}))
    answers.write_text("\n".join(lines) + "\n")
    result = _invoke("labels", "import", db, answers, "--annotator", "ann")
    assert result.exit_code == 1  # one row rejected
    assert "answers.jsonl:31: field turn_id: unknown turn" in result.output
    assert "read 31 row(s) = 30 imported + 1 rejected" in result.output
    with LabelStore(db) as store:  # each label knows the seat the queue gave its turn
        seats = dict(store.seated().select("turn_id", "seat").rows())
    assert seats == {r["turn_id"]: r["seat"] for r in rows}
    assert "random" in seats.values()
    # the labelled turns never come back
    result = _invoke("queue", dump, "--labels", db, "--model", small_model_dir, "--n", 30,
                     "--out", queue)  # fmt: skip
    assert result.exit_code == 0, result.output
    again = {json.loads(line)["turn_id"] for line in queue.read_text().splitlines()}
    assert not again & {r["turn_id"] for r in rows}
    out = tmp_path / "adapted"
    result = _invoke("adapt", dump, "--labels", db, "--from", small_model_dir, "--out", out)
    assert result.exit_code == 0, result.output
    assert "30 label(s) on 30 turn(s) from 1 annotator(s)" in result.output
    meta = json.loads((out / "metadata.json").read_text())
    assert meta["adaptation"]["annotators"] == 1 and meta["adaptation"]["labels"] == 30
    said = " ".join(result.output.split())  # the console wraps long lines
    start, fit = meta["adaptation"]["start_brier_on_labels"], meta["adaptation"]["cv_brier"]
    assert f"Brier score {start:.3f} (start model) against {fit:.3f} (new fit" in said
    result = _invoke("triage", dump, "--model", out, "--out", tmp_path / "t.parquet")
    assert result.exit_code == 0, result.output


def _store_with_two_annotators(db, traces):
    with LabelStore(db) as store:
        for i, row in enumerate(traces.head(20).iter_rows(named=True)):
            for annotator in ("ann", "bob"):
                fp = row["label"]["failure_point"] if annotator == "ann" or i % 4 else "asr"
                store.add(row["turn_id"], row["dialogue_id"], fp, annotator,
                          source_path="dump.jsonl", record_hash=record_hash(row))  # fmt: skip


def test_stats_export_and_agreement(dump, tmp_path):
    db = tmp_path / "labels.db"
    _store_with_two_annotators(db, read_traces(dump))
    result = _invoke("labels", "stats", db)
    assert result.exit_code == 0 and "40 label(s) on 20 turn(s)" in result.output
    for suffix in (".jsonl", ".csv"):
        result = _invoke("labels", "export", db, "--out", tmp_path / f"out{suffix}")
        assert result.exit_code == 0 and "40 row(s) written" in result.output
    report = tmp_path / "agreement.json"
    result = _invoke("labels", "agreement", db, "--json", report)
    assert result.exit_code == 0, result.output
    assert "Cohen's kappa" in result.output and "ann vs bob" in result.output
    pair = json.loads(report.read_text())["pairs"][0]
    assert pair["turns"] == 20 and pair["agreement"] < 1


def test_train_and_evaluate_take_the_store(dump, small_model_dir, tmp_path):
    db = tmp_path / "labels.db"
    traces = read_traces(dump)
    _store_with_two_annotators(db, traces)
    result = _invoke("evaluate", dump, "--model", small_model_dir, "--labels", db,
                     "--json", tmp_path / "m.json")  # fmt: skip
    assert result.exit_code == 0, result.output
    report = json.loads((tmp_path / "m.json").read_text())
    assert report["n"] == 20  # only store-labelled turns are gold
    assert set(report["references"]) >= {"ann", "bob"}
    assert report["references"]["ann"]["n"] == 20
    out = tmp_path / "model"
    result = _invoke("train", dump, "--labels", db, "--out", out, "--rounds", 5)
    assert result.exit_code == 0, result.output
    assert "40 label(s) match the traces" in result.output
    assert (
        "label store"
        in json.loads((out / "metadata.json").read_text())["training"]["label_sources"]
    )


def test_import_without_known_turns_is_a_clear_error(tmp_path):
    answers = tmp_path / "a.csv"
    answers.write_text("turn_id,failure_point\nt1,asr\n")
    result = _invoke("labels", "import", tmp_path / "labels.db", answers, "--annotator", "a")
    assert result.exit_code == 2 and "knows no turns" in result.output


def test_cli_choices_follow_the_library():
    from fpi.adapt import METHODS
    from fpi.cli import AdaptMethod, QueueStrategy
    from fpi.queue import STRATEGIES

    assert tuple(m.value for m in AdaptMethod) == METHODS
    assert tuple(s.value for s in QueueStrategy) == STRATEGIES
