"""Shift detection: PSI and AUC math, the streamed sample, verdicts on simulated traffic, the
`fpi shift` command, the triage Parquet record and the report's input drift section."""

from __future__ import annotations

import json
import shutil

import numpy as np
import polars as pl
import pytest
from typer.testing import CliRunner

from fpi.cli import app
from fpi.profile import PROFILE_FILE, BinnedSample
from fpi.shift import (
    DECIMALS,
    FEATURE_MOVED,
    MIXTURE_SHIFT_THRESHOLD,
    SHIFT_THRESHOLD,
    DumpSample,
    ShiftCheck,
    ShiftReport,
    assess,
    auc,
    compare,
    psi,
    read_recorded_input,
)

runner = CliRunner()


def test_psi_on_known_distributions():
    assert psi([50, 50], [50, 50]) == 0.0
    assert psi([1, 1], [900, 100]) == pytest.approx(0.4 * np.log(1.8) + 0.4 * np.log(5.0))
    assert psi([10, 30, 60], [60, 30, 10]) == pytest.approx(psi([60, 30, 10], [10, 30, 60]))
    # an empty bin is floored at 1e-4 of the turns, never infinite
    assert psi([100, 0], [50, 50]) == pytest.approx(
        (0.5 - 1.0) * np.log(0.5 / 1.0) + (0.5 - 1e-4) * np.log(0.5 / 1e-4)
    )
    assert psi([0, 0], [1, 2]) == 0.0


def test_auc_counts_ties_half():
    assert auc(np.array([0, 0, 1, 1]), np.array([0.1, 0.2, 0.8, 0.9])) == 1.0
    assert auc(np.array([0, 0, 1, 1]), np.array([0.9, 0.8, 0.2, 0.1])) == 0.0
    assert auc(np.array([0, 1, 0, 1]), np.array([0.5, 0.5, 0.5, 0.5])) == 0.5
    with pytest.raises(ValueError):
        auc(np.array([1, 1]), np.array([0.1, 0.2]))


def _binned(codes: np.ndarray) -> BinnedSample:
    return BinnedSample(codes.astype(np.uint8), np.arange(len(codes)) // 2)


def test_separability_is_a_half_for_one_distribution_and_one_when_apart():
    from fpi.shift import separability

    rng = np.random.default_rng(0)
    same = separability(
        _binned(rng.integers(2, 9, (600, 3))), _binned(rng.integers(2, 9, (600, 3))), [False] * 3
    )
    assert abs(same - 0.5) < 0.06
    apart = separability(
        _binned(rng.integers(2, 5, (600, 3))), _binned(rng.integers(6, 9, (600, 3))), [False] * 3
    )
    assert apart > 0.99


def test_weighted_auc_counts_pairs_by_weight():
    rng = np.random.default_rng(2)
    labels, scores = rng.integers(0, 2, 300), rng.integers(0, 20, 300).astype(float)
    assert auc(labels, scores, np.full(300, 3.0)) == pytest.approx(auc(labels, scores))
    # a negative of weight 0 is no negative at all
    labels, scores = np.array([0, 0, 1]), np.array([0.9, 0.1, 0.5])
    assert auc(labels, scores, np.array([0.0, 1.0, 1.0])) == 1.0
    assert auc(labels, scores) == 0.5


# ---- a profile of several training pipelines -----------------------------------------------


def _pipeline_turns(kind: str, n: int, seed: int) -> pl.DataFrame:
    """Turns of one of three made-up pipelines, on a few catalogue features."""
    rng = np.random.default_rng([seed, len(kind), ord(kind[0])])
    low, high, snr, domains = {
        "a": (0.2, 0.7, 20.0, ["music", "weather"]),
        "b": (0.5, 0.95, 10.0, ["timer", "weather"]),
        "neither": (0.0, 0.3, 35.0, ["news", "sports"]),
    }[kind]
    return pl.DataFrame(
        {
            "asr__confidence": rng.uniform(low, high, n),
            "asr__snr_db": rng.normal(snr, 3.0, n),
            "nlu__confidence": rng.uniform(1 - high, 1 - low, n),
            "nlu__domain": rng.choice(domains, n).tolist(),
        }
    )


def _mixture_profile(components: bool = True):
    from fpi.profile import build_profile

    frame = pl.concat([_pipeline_turns("a", 2000, 0), _pipeline_turns("b", 2000, 0)])
    names = ["pipe-a"] * 2000 + ["pipe-b"] * 2000
    return build_profile(
        frame,
        dialogue_ids=[f"d{i // 4}" for i in range(4000)],
        components=names if components else None,
        sample_turns=1600,
    )


def _dump(profile, *parts: tuple[str, int]) -> BinnedSample:
    frame = pl.concat([_pipeline_turns(kind, n, seed=1) for kind, n in parts])
    return profile.bin(frame, [f"x{i // 4}" for i in range(len(frame))])


def test_em_recovers_the_mixture_weights_of_a_dump():
    from fpi.shift import mixture_weights

    profile = _mixture_profile()
    weights = mixture_weights(profile.components, _dump(profile, ("a", 300), ("b", 700)))
    assert weights.sum() == pytest.approx(1.0)
    assert weights == pytest.approx([0.3, 0.7], abs=0.03)
    only_b = mixture_weights(profile.components, _dump(profile, ("b", 500)))
    assert only_b[1] > 0.98


def test_one_pipeline_of_a_mixture_fits_and_another_world_does_not():
    profile = _mixture_profile()
    report = compare(profile, _dump(profile, ("a", 800)))
    assert abs(report.score - 0.5) < 0.07 and report.verdict == "fits"
    assert report.reference_components[0]["name"] == "pipe-a"
    assert report.reference_components[0]["weight"] > 0.98
    assert "pipe-a" in report.sentence() and "most resembles" in report.sentence()
    assert report.features.get_column("shift").max() < FEATURE_MOVED  # PSI on pipe-a's bins
    back = ShiftReport.from_dict(json.loads(json.dumps(report.to_dict())))
    assert back.reference_components == report.reference_components
    # against the whole mixture (one component) the same dump is told apart at once
    whole = compare(_mixture_profile(components=False), _dump(profile, ("a", 800)))
    assert whole.verdict == "shifted" and whole.reference_components == ()
    assert report.threshold == MIXTURE_SHIFT_THRESHOLD and whole.threshold == SHIFT_THRESHOLD
    far = compare(profile, _dump(profile, ("neither", 800)))
    assert far.verdict == "shifted" and far.score > 0.95
    assert "does not look like the training pipelines" in far.warning()


def test_a_one_component_profile_scores_as_before():
    from fpi.shift import separability

    profile = _mixture_profile(components=False)
    dump = _dump(profile, ("a", 300), ("b", 300))
    categorical = [f.categorical for f in profile.features]
    report = compare(profile, dump)
    assert report.score == separability(profile.sample, dump, categorical)
    assert report.reference_components == ()
    assert report.sentence().startswith("The traffic looks like the model's training traffic")


def test_fresh_base_traffic_fits_the_bundled_mixture_and_names_base():
    # the bundled model trains on randomised pipelines and `base` blocks (fpi.models.rebuild)
    from fpi.model import load_bundle

    profile = load_bundle().profile
    assert profile.is_mixture and "base" in [c.name for c in profile.components]
    report = assess(_sampled(_fresh("base", 5, 3000)), profile)
    assert report.verdict == "fits", report.sentence()
    assert report.reference_components[0]["name"] == "base"
    # base leads by far; the rest goes to drawn pipelines that resemble it (0.88-0.89 here)
    assert report.reference_components[0]["weight"] > 0.8


def _fresh(scenario: str, seed: int, turns: int = 1500) -> pl.DataFrame:
    from fpi.simulate import simulate

    return simulate(turns, seed=seed, scenario=scenario, weeks=2)


def _sampled(traces: pl.DataFrame) -> DumpSample:
    sample = DumpSample()
    sample.offer(traces)
    return sample


def _held_out(traces: pl.DataFrame) -> pl.DataFrame:
    """The dialogues `train` kept out of its training split (same seed, same fractions)."""
    from fpi.model import dialogue_split

    split = dialogue_split(
        traces.get_column("dialogue_id"), {"train": 0.8, "valid": 0.1, "test": 0.1}
    )
    return traces.filter(split != "train")


def test_fresh_training_traffic_fits_and_another_world_is_shifted(small_bundle, small_traces):
    # fresh turns of the same simulated world: a small simulation's user population differs
    # from seed to seed, so another seed at this size is (rightly) a different world
    fits = assess(_sampled(_held_out(small_traces)), small_bundle.profile)
    assert fits.verdict == "fits" and fits.shifted is False and fits.warning() is None
    assert fits.score < SHIFT_THRESHOLD
    far = assess(_sampled(_fresh("farfield", 41)), small_bundle.profile)
    assert far.verdict == "shifted" and far.score >= SHIFT_THRESHOLD
    # ordered by the shift as reported (rounded), ties by name
    assert far.features.get_column("shift").round(DECIMALS).is_sorted(descending=True)
    top = far.features.row(0, named=True)
    assert top["stage"] in far.stages()
    warning = far.warning()
    assert top["name"] in warning and "fpi review" in warning and "fpi adapt" in warning


def test_a_stage_that_stopped_logging_shows_in_missing_rates(small_bundle, small_traces):
    traces = _held_out(small_traces)
    traces = traces.with_columns(pl.lit(None, dtype=traces.schema["asr"]).alias("asr"))
    report = assess(_sampled(traces), small_bundle.profile)
    assert report.shifted
    confidence = report.features.filter(pl.col("name") == "asr__confidence").row(0, named=True)
    assert confidence["missing_rate_dump"] == 1.0 and confidence["missing_rate_train"] < 0.1
    assert "asr" in report.stages()[:2]


def test_without_a_profile_the_shift_is_unknown():
    report = assess(DumpSample(), None, source="old-bundle")
    assert report.score is None and report.shifted is None and report.verdict == "unknown"
    assert "old-bundle" in report.sentence() and report.to_dict()["shifted"] is None


def test_too_few_turns_give_no_verdict(small_bundle):
    sample = small_bundle.profile.sample
    report = compare(small_bundle.profile, BinnedSample(sample.codes[:50], sample.groups[:50]))
    assert report.verdict == "too few turns" and report.shifted is None
    assert "only 50 turns" in report.sentence()


def test_the_sample_keeps_whole_dialogues_whatever_the_batches(small_traces):
    whole = DumpSample(turns_per_week=600)
    whole.offer(small_traces)
    batched = DumpSample(turns_per_week=600)
    dialogues = small_traces.get_column("dialogue_id").unique().sort()
    for part in range(4):
        chosen = dialogues.gather_every(4, offset=part).implode()
        batched.offer(small_traces.filter(pl.col("dialogue_id").is_in(chosen)))
    assert whole.weeks() == batched.weeks() and len(whole.weeks()) >= 2
    for week in whole.weeks():
        a, b = whole.features(week), batched.features(week)
        assert 0 < len(a) <= 600
        assert sorted(a.get_column("turn_id")) == sorted(b.get_column("turn_id"))
    sampled = whole.features().get_column("dialogue_id").unique()
    counts = small_traces.filter(pl.col("dialogue_id").is_in(sampled.implode())).height
    assert counts == whole.turns  # every turn of every sampled dialogue
    assert len(whole.features(turns=300)) <= 300


def test_shift_check_skips_sampling_without_a_profile(small_traces):
    check = ShiftCheck(None, source="x")
    check.offer(small_traces)
    assert check.sample.turns == 0 and check.report().verdict == "unknown"


def test_report_dict_round_trips(small_bundle):
    report = assess(_sampled(_fresh("farfield", 43, 600)), small_bundle.profile)
    back = ShiftReport.from_dict(json.loads(json.dumps(report.to_dict())))
    assert back.score == pytest.approx(report.score, abs=1e-4)
    assert (
        back.features.get_column("name").to_list() == report.features.get_column("name").to_list()
    )


# ---- commands ----------------------------------------------------------------------------


def test_shift_command_writes_the_json_contract(small_dump, small_model_dir, tmp_path):
    out = tmp_path / "shift.json"
    result = runner.invoke(
        app, ["shift", str(small_dump), "--model", str(small_model_dir), "--json", str(out)]
    )
    assert result.exit_code == 0, result.output
    assert "fits" in result.output and "PSI" in result.output
    document = json.loads(out.read_text())
    assert {"score", "shifted", "threshold", "features"} <= set(document)
    assert document["shifted"] is False and document["threshold"] == SHIFT_THRESHOLD
    first = document["features"][0]
    assert set(first) == {"name", "stage", "shift", "missing_rate_train", "missing_rate_dump"}
    shifts = [f["shift"] for f in document["features"]]
    assert shifts == sorted(shifts, reverse=True)
    confidence = document["confidence"]
    assert sum(confidence["dump"]["counts"]) == document["turns"]
    assert 0.0 <= confidence["dump"]["share_at_least_0.99"] <= 1.0 and confidence["psi"] >= 0
    assert "model confidence >= 0.99" in result.output


def test_shift_command_against_other_dumps(tmp_path):
    from fpi.io import write_traces

    this = write_traces(_fresh("base", 44, 800), tmp_path / "this.parquet")
    other = write_traces(_fresh("farfield", 45, 800), tmp_path / "other.parquet")
    out = tmp_path / "against.json"
    result = runner.invoke(app, ["shift", str(this), "--against", str(other), "--json", str(out)])
    assert result.exit_code == 0, result.output
    document = json.loads(out.read_text())
    assert document["reference"] == "other dumps" and document["shifted"] is True
    assert "warning" in result.output


def test_shift_command_says_unknown_for_an_old_bundle(small_dump, small_model_dir, tmp_path):
    old = shutil.copytree(small_model_dir, tmp_path / "old")
    (old / PROFILE_FILE).unlink()
    out = tmp_path / "shift.json"
    result = runner.invoke(app, ["shift", str(small_dump), "--model", str(old), "--json", str(out)])
    assert result.exit_code == 0, result.output
    assert "unknown" in result.output
    assert json.loads(out.read_text())["score"] is None


def test_triage_records_the_shift_in_the_parquet_metadata(small_model_dir, tmp_path):
    import pyarrow.parquet as pq

    from fpi.io import write_traces

    dump = write_traces(_fresh("farfield", 46, 1200), tmp_path / "far.parquet")
    out = tmp_path / "triage.parquet"
    result = runner.invoke(
        app, ["triage", str(dump), "--model", str(small_model_dir), "--out", str(out)]
    )
    assert result.exit_code == 0, result.output
    assert "warning" in result.output and "fpi adapt" in result.output
    keys = pq.read_metadata(out).metadata
    assert b"fpi.shift" in keys and b"fpi.profile" in keys and b"fpi.input_sample" in keys
    recorded = read_recorded_input(out)
    assert recorded.shift.shifted and recorded.shift.score >= SHIFT_THRESHOLD
    assert recorded.weeks and sum(len(s) for s in recorded.weeks.values()) >= 1000
    assert pl.read_parquet(out).height == 1200  # the rows are untouched


def test_evaluate_reports_the_shift(small_dump, small_model_dir, tmp_path):
    out = tmp_path / "eval.json"
    result = runner.invoke(
        app, ["evaluate", str(small_dump), "--model", str(small_model_dir), "--json", str(out)]
    )
    assert result.exit_code == 0, result.output
    assert "input shift" in result.output
    assert json.loads(out.read_text())["shift"]["shifted"] is False


# ---- the report --------------------------------------------------------------------------


def test_report_input_drift_section(small_model_dir, tmp_path):
    from fpi.io import write_traces

    weeks = pl.concat(
        [
            _fresh("base", 47, 1500).filter(pl.col("timestamp").dt.week() == 45),
            _fresh("farfield", 48, 1500).filter(pl.col("timestamp").dt.week() == 46),
        ]
    )
    dump = write_traces(weeks, tmp_path / "weeks.parquet")
    out = tmp_path / "triage.parquet"
    result = runner.invoke(
        app, ["triage", str(dump), "--model", str(small_model_dir), "--out", str(out)]
    )
    assert result.exit_code == 0, result.output
    result = runner.invoke(
        app,
        [
            "report",
            str(out),
            "--week",
            "2026-W46",
            "--weeks-back",
            "2",
            "--out",
            str(tmp_path / "r"),
        ],
    )
    assert result.exit_code == 0, result.output
    assert "warning: This week's traffic does not look like" in " ".join(result.output.split())
    report = json.loads((tmp_path / "r" / "report.json").read_text())
    assert report["shift"]["shifted"] is True and "does not look like" in report["summary"]
    assert report["drift"]["score"] > report["drift"]["threshold"]
    drift = pl.DataFrame(report["tables"]["input_drift"])
    assert drift.height == 8 and drift.get_column("psi").is_sorted(descending=True)
    html = (tmp_path / "r" / "report.html").read_text()
    markdown = (tmp_path / "r" / "report.md").read_text()
    assert 'id="input-drift"' in html and "## Input drift" in markdown
    assert drift.row(0, named=True)["feature"] in html


def test_report_input_drift_notes_are_escaped(tmp_path):
    from fixtures.report.synthetic import synthetic_triage

    from fpi.report import build_report, write_report
    from fpi.report.drift import InputRecord

    nasty = "<script>alert(1)</script>.parquet: records no input profile"
    report = build_report(
        synthetic_triage(), week="2026-W47", weeks_back=4, inputs=InputRecord(notes=[nasty])
    )
    assert report.shift["verdict"] == "unknown"
    write_report(report, tmp_path)
    html = (tmp_path / "report.html").read_text()
    assert "<script>alert" not in html and "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    assert "Input drift against last week unknown" in html


def test_report_samples_trace_dumps_and_notes_what_records_nothing(small_dump, tmp_path):
    from fpi.io import TriageWriter, read_traces
    from fpi.model import load_bundle
    from fpi.report.drift import input_record
    from fpi.triage import triage_traces

    jsonl = tmp_path / "triage.jsonl"
    with TriageWriter(jsonl) as writer:
        writer.write(triage_traces(read_traces([small_dump]).head(50), load_bundle()))
    record = input_record([small_dump, jsonl])
    assert record.profile.fingerprint == load_bundle().profile.fingerprint
    weeks = read_traces([small_dump]).get_column("timestamp").dt.strftime("%G-W%V")
    assert set(record.weeks) == set(weeks.unique())
    assert sum(len(s) for s in record.weeks.values()) == 4000
    assert any("only Parquet triage output" in note for note in record.notes)
