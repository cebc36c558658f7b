import gzip
import json

import numpy as np
import polars as pl
import pytest

from fpi.errors import InvalidRecordsError
from fpi.featurize import extract_features
from fpi.io.triagefile import flatten_reasons
from fpi.schema import FAILURE_POINTS, PROBABILITY_COLUMNS, TRIAGE_SCHEMA, UNCERTAIN
from fpi.triage import TriageFilter, run_triage, triage_paths, triage_traces


@pytest.fixture(scope="module")
def triaged(small_traces, small_bundle):
    return triage_traces(small_traces, small_bundle)


def test_one_row_per_turn_with_the_declared_schema(triaged, small_traces, small_bundle):
    from fpi.decision import decide, offsets_from_metadata

    assert triaged.schema == TRIAGE_SCHEMA
    assert triaged.get_column("turn_id").to_list() == small_traces.get_column("turn_id").to_list()
    probabilities = triaged.select(PROBABILITY_COLUMNS).to_numpy()
    np.testing.assert_allclose(probabilities.sum(axis=1), 1.0, atol=1e-9)
    # the bundle's decision rule picks the class; the confidence is that class's probability
    chosen = decide(probabilities, offsets_from_metadata(small_bundle.metadata))
    rows = np.arange(len(chosen))
    assert (probabilities[rows, chosen] == triaged.get_column("confidence").to_numpy()).all()
    best = np.asarray(FAILURE_POINTS)[chosen]
    assert (best == triaged.get_column("failure_point").to_numpy()).all()


def test_reasons_are_the_largest_positive_shap_values(triaged, small_traces, small_bundle):
    rows = np.arange(0, len(small_traces), 97)
    matrix = small_bundle.matrix(extract_features(small_traces))[rows]
    classes = np.array([FAILURE_POINTS.index(c) for c in triaged["predicted"].to_numpy()[rows]])
    exact = small_bundle.booster.predict(matrix, pred_contrib=True).reshape(
        len(rows), len(FAILURE_POINTS), -1
    )[np.arange(len(rows)), classes]
    names = small_bundle.feature_names
    for row, reasons, truth in zip(rows, triaged["reasons"].to_list()[::97], exact, strict=False):
        assert 1 <= len(reasons) <= 5, row
        expected = sorted(
            ((c, names[i]) for i, c in enumerate(truth[:-1]) if c > 0), key=lambda t: -t[0]
        )[: len(reasons)]
        assert [r["feature"] for r in reasons] == [n for _, n in expected]
        np.testing.assert_allclose([r["contribution"] for r in reasons], [c for c, _ in expected])
        assert all(r["text"] for r in reasons)


def test_abstention_marks_low_confidence_turns(small_traces, small_bundle, triaged):
    threshold = float(np.quantile(triaged["confidence"].to_numpy(), 0.2))
    abstained = triage_traces(small_traces, small_bundle, abstain_below=threshold)
    low = abstained["confidence"] < threshold
    assert (abstained.filter(low)["failure_point"] == UNCERTAIN).all()
    kept = abstained.filter(~low)
    assert (kept["failure_point"] == kept["predicted"]).all()
    assert 0 < low.sum() < len(abstained)


def test_filters(triaged):
    asr = TriageFilter(components=("asr",)).apply(triaged)
    assert len(asr) == (triaged["failure_point"] == "asr").sum() > 0
    confident = TriageFilter(min_confidence=0.9).apply(triaged)
    assert (confident["confidence"] >= 0.9).all()
    speakers = TriageFilter(device_types=("speaker",), domains=("Music",)).apply(triaged)
    assert set(speakers["device_type"]) == {"speaker"} and set(speakers["domain"]) == {"Music"}
    middle = triaged["timestamp"].sort()[len(triaged) // 2]
    since = TriageFilter(since=middle.replace(tzinfo=None)).apply(triaged)
    until = TriageFilter(until=middle).apply(triaged)
    assert len(since) + len(until) == len(triaged)
    assert (since["timestamp"] >= middle).all()
    assert TriageFilter().apply(triaged).equals(triaged)


def test_streaming_output_is_deterministic_and_complete(small_dump, small_model_dir, tmp_path):
    from fpi.model import load_bundle

    bundle = load_bundle(small_model_dir)
    outputs = []
    for run_index in range(2):
        out = tmp_path / f"run{run_index}.parquet"
        run = run_triage([small_dump], bundle, out=out, batch_turns=700)
        outputs.append(out.read_bytes())
        assert run.read == run.triaged == run.kept
    assert outputs[0] == outputs[1]
    whole = triage_paths([small_dump], model_dir=small_model_dir)
    streamed = pl.read_parquet(tmp_path / "run0.parquet")
    assert sorted(streamed["turn_id"]) == sorted(whole["turn_id"])
    joined = whole.join(streamed, on="turn_id", suffix="_s")
    np.testing.assert_allclose(joined["p_asr"], joined["p_asr_s"], atol=1e-12)


def test_nothing_is_lost_with_rejects(small_traces, small_model_dir, tmp_path):
    from fpi.io import write_traces
    from fpi.model import load_bundle

    dump = write_traces(small_traces.head(300), tmp_path / "ok.jsonl")
    lines = dump.read_text().splitlines()
    lines[5] = "{broken json"
    lines[9] = lines[9].replace('"turn_index":', '"turn_index":"x","was":')
    broken = tmp_path / "broken.jsonl.gz"
    with gzip.open(broken, "wt") as fh:
        fh.write("\n".join(lines) + "\n")
    bundle = load_bundle(small_model_dir)
    with pytest.raises(InvalidRecordsError):
        run_triage([broken], bundle)
    rejects = []
    run = run_triage([broken], bundle, rejects=rejects, out=tmp_path / "t.jsonl")
    assert run.read == 300
    assert run.rejected == len(rejects) == 2
    assert run.triaged + run.rejected == run.read
    written = [json.loads(line) for line in (tmp_path / "t.jsonl").read_text().splitlines()]
    assert len(written) == run.triaged


def test_csv_flattens_reasons(triaged, tmp_path):
    flat = flatten_reasons(triaged.head(3))
    assert flat.schema["reasons"] == pl.String
    first = triaged["reasons"][0][0]
    assert flat["reasons"][0].startswith(first["text"])


def test_run_keeps_the_most_confident_defects_of_each_stage(small_dump, small_model_dir):
    from fpi.model import load_bundle

    run = run_triage([small_dump], load_bundle(small_model_dir), batch_turns=700)
    whole = triage_paths([small_dump], model_dir=small_model_dir)
    defects = whole.filter(pl.col("failure_point") != "correct")
    shown = run.top_defects
    assert shown["failure_point"].to_list() == sorted(
        shown["failure_point"], key=FAILURE_POINTS.index
    )
    for stage, group in defects.group_by("failure_point"):
        expected = group.sort("confidence", "turn_id", descending=[True, False]).head(4)
        kept = shown.filter(pl.col("failure_point") == stage[0])
        assert kept["turn_id"].to_list() == expected["turn_id"].to_list()


def test_phase_times_frame_shares_add_up():
    from fpi.triage import PhaseTimes

    times = PhaseTimes()
    for name in ("read", "explain", "read"):
        with times.phase(name):
            sum(range(20_000))
    frame = times.frame()
    assert frame["phase"].to_list() == ["read", "explain"]
    assert frame["share"].sum() == pytest.approx(1.0)
    assert (frame["wall_s"] > 0).all() and (frame["cpu_s"] >= 0).all()
