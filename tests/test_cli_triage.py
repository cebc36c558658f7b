"""The model-facing commands through typer's CliRunner: train, evaluate, triage, explain."""

import json

import polars as pl
import pytest
from polars.testing import assert_frame_equal
from typer.testing import CliRunner

from fpi.cli import app
from fpi.schema import FAILURE_POINTS

runner = CliRunner()


def test_train_writes_a_bundle(small_dump, tmp_path):
    out = tmp_path / "model"
    result = runner.invoke(
        app,
        ["train", str(small_dump), "--out", str(out), "--rounds", "8", "--param", "num_leaves=7"],
    )
    assert result.exit_code == 0, result.output
    assert "trained on 4000 turns" in result.output
    meta = json.loads((out / "metadata.json").read_text())
    assert meta["params"]["num_leaves"] == 7 and meta["params"]["rounds"] == 8
    assert meta["params"]["class_weighting"] == "sqrt"


def test_train_weighs_classes_and_boosts_as_asked(small_dump, tmp_path):
    out = tmp_path / "model"
    args = ["train", str(small_dump), "--out", str(out), "--rounds", "4"]
    result = runner.invoke(
        app, [*args, "--class-weights", "inverse", "--no-early-stopping", "--bag", "2"]
    )
    assert result.exit_code == 0, result.output
    assert "a bag of 2 boosters" in result.output
    params = json.loads((out / "metadata.json").read_text())["params"]
    assert params["class_weighting"] == "inverse" and params["bag"] == 2
    assert params["early_stopping"] is False and params["best_iteration"] == 2 * 4
    refused = runner.invoke(app, [*args, "--class-weights", "cube"])
    assert refused.exit_code == 2 and "cube" in refused.output
    assert runner.invoke(app, [*args, "--bag", "0"]).exit_code == 2


def test_class_weighting_choices_match_the_model():
    from fpi.cli import ClassWeighting
    from fpi.model import CLASS_WEIGHTINGS

    assert tuple(c.value for c in ClassWeighting) == tuple(CLASS_WEIGHTINGS)


def test_train_rejects_a_malformed_param(small_dump, tmp_path):
    result = runner.invoke(app, ["train", str(small_dump), "--out", str(tmp_path), "--param", "x"])
    assert result.exit_code == 2


@pytest.mark.parametrize(
    ("param", "message"),
    [
        ("objective=multiclassova", "other objectives are refused"),
        ("num_leaves=-5", "num_leaves"),
        ("num_threads=two", "num_threads=two: must be a whole number"),
        ("leaves=7", "leaves: not a LightGBM parameter"),
    ],
)
def test_train_refuses_bad_params_before_reading(tmp_path, param, message):
    out = tmp_path / "model"
    missing = tmp_path / "no-such-dump.jsonl"  # never read: the parameters fail first
    result = runner.invoke(app, ["train", str(missing), "--out", str(out), "--param", param])
    assert result.exit_code == 2, result.output
    assert message in " ".join(result.output.split())
    assert "Traceback" not in result.output and not out.exists()


def test_evaluate_prints_tables_and_writes_json(small_dump, small_model_dir, tmp_path):
    out = tmp_path / "metrics.json"
    result = runner.invoke(
        app, ["evaluate", str(small_dump), "--model", str(small_model_dir), "--json", str(out)]
    )
    assert result.exit_code == 0, result.output
    assert "single_annotator" in result.output and "rule baseline" in result.output
    report = json.loads(out.read_text())
    assert report["n"] == 4000
    assert set(report["per_class"]) == set(FAILURE_POINTS)
    assert report["references"]["single_annotator"]["n"] == 4000
    assert report["accuracy"] > report["rule_baseline"]["accuracy"]
    assert report["coverage"][0]["threshold"] == 0.0
    assert report["calibration"] in ("temperature", "isotonic")
    assert 0 <= report["ece"] < report["ece_uncalibrated"]
    assert sum(row["count"] for row in report["reliability"]) == 4000
    line = next(line for line in result.output.splitlines() if "ECE" in line)
    assert f"ECE {report['ece_uncalibrated']:.4f} before, {report['ece']:.4f} after" in line


def test_triage_summary_and_component_filter(small_dump, small_model_dir):
    result = runner.invoke(
        app, ["triage", str(small_dump), "--model", str(small_model_dir), "--component", "asr"]
    )
    assert result.exit_code == 0, result.output
    assert "read 4,000 turns = 4,000 triaged + 0 rejected" in result.output
    assert "most confident defects of each failure point" in result.output
    assert "nlu" not in result.output.split("failure points")[1].split("most confident")[0]


def test_triage_profile_shows_where_the_time_went(small_dump, small_model_dir, tmp_path):
    out = tmp_path / "t.parquet"
    args = ["triage", str(small_dump), "--model", str(small_model_dir), "--out", str(out)]
    result = runner.invoke(app, [*args, "--profile"])
    assert result.exit_code == 0, result.output
    profile = result.output.split("where the time went")[1]
    for phase in ("read", "features", "predict", "explain", "reasons", "write"):
        assert f"\n│ {phase} " in profile
    assert "where the time went" not in runner.invoke(app, args).output


def test_triage_writes_every_format(small_dump, small_model_dir, tmp_path):
    for suffix in (".parquet", ".jsonl", ".csv"):
        out = tmp_path / f"t{suffix}"
        args = ["triage", str(small_dump), "--model", str(small_model_dir), "--out", str(out)]
        result = runner.invoke(app, [*args, "--min-confidence", "0.8", "--device-type", "speaker"])
        assert result.exit_code == 0, result.output
        frame = {
            ".parquet": pl.read_parquet,
            ".jsonl": pl.read_ndjson,
            ".csv": pl.read_csv,
        }[suffix](out)
        assert len(frame) > 0
        assert (frame["confidence"] >= 0.8).all()
        assert set(frame["device_type"]) == {"speaker"}


def test_triage_bad_component_and_bad_model(small_dump, tmp_path):
    bad = runner.invoke(app, ["triage", str(small_dump), "--component", "nope"])
    assert bad.exit_code == 2
    missing = runner.invoke(app, ["triage", str(small_dump), "--model", str(tmp_path)])
    assert missing.exit_code == 2
    assert "no model bundle" in missing.output


def test_explain_shows_stages_reasons_and_writes_png(
    small_dump, small_model_dir, small_traces, tmp_path
):
    turn_id = small_traces["turn_id"][10]
    png = tmp_path / "w.png"
    result = runner.invoke(
        app,
        ["explain", str(small_dump), turn_id, "--model", str(small_model_dir), "--png", str(png)],
    )
    assert result.exit_code == 0, result.output
    for stage in ("wake", "asr", "nlu", "result", "class probabilities"):
        assert stage in result.output
    assert png.read_bytes().startswith(b"\x89PNG")
    unknown = runner.invoke(
        app, ["explain", str(small_dump), "no-such-turn", "--model", str(small_model_dir)]
    )
    assert unknown.exit_code == 2 and "no-such-turn" in unknown.output


def test_triage_output_does_not_depend_on_the_batch_size(small_dump, small_model_dir, tmp_path):
    """Dialogue-relative features see only the turn's own dialogue, never its batch."""
    outputs = []
    for batch_turns in (150, 1_000_000):
        out = tmp_path / f"b{batch_turns}.parquet"
        result = runner.invoke(
            app,
            [
                *("triage", str(small_dump), "--model", str(small_model_dir)),
                *("--out", str(out), "--batch-turns", str(batch_turns)),
            ],
        )
        assert result.exit_code == 0, result.output
        outputs.append(pl.read_parquet(out).sort("turn_id"))
    small, whole = outputs
    assert small.height == whole.height == 4_000
    assert_frame_equal(small, whole, check_exact=False, rel_tol=1e-9)
