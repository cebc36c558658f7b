"""The trace simulator: shape, determinism, realism of the class mix and of the evidence."""

from __future__ import annotations

import os
import subprocess
import sys
from datetime import UTC, date, datetime, timedelta

import numpy as np
import polars as pl
import pytest

from fpi.schema import FAILURE_POINTS, TRACE_SCHEMA
from fpi.simulate import SCENARIOS, simulate, simulate_to_file, summarize

BASE_TURNS = 20_000
SCENARIO_TURNS = 8_000


@pytest.fixture(scope="module")
def base() -> pl.DataFrame:
    return simulate(BASE_TURNS, seed=11)


@pytest.fixture(scope="module")
def by_scenario() -> dict[str, pl.DataFrame]:
    return {s: simulate(SCENARIO_TURNS, seed=5, scenario=s) for s in SCENARIOS}


def gold(df: pl.DataFrame) -> pl.Series:
    return df["label"].struct.field("failure_point")


def share(df: pl.DataFrame, label: str) -> float:
    return float((gold(df) == label).mean())


# ---- shape and determinism ------------------------------------------------------------------


@pytest.mark.parametrize("turns", [0, 1, 7, 1_234])
def test_exact_row_count_and_schema(turns):
    df = simulate(turns, seed=2)
    assert df.height == turns
    assert df.schema == TRACE_SCHEMA
    assert df["source_file"].unique().to_list() in ([], ["simulated"])
    assert df["source_line"].to_list() == list(range(1, turns + 1))


def test_same_seed_same_traces_other_seed_other_traces():
    a = simulate(1_500, seed=4)
    assert a.equals(simulate(1_500, seed=4))
    b = simulate(1_500, seed=5)
    assert not a.drop("dialogue_id", "turn_id").equals(b.drop("dialogue_id", "turn_id"))


def test_same_seed_same_traces_in_another_process():
    """Nothing may depend on string hashing, which differs between processes."""
    code = (
        "from fpi.simulate import simulate; "
        "print(simulate(1_500, seed=4, scenario='newdomain').hash_rows().sum())"
    )
    sums = {
        subprocess.run(
            [sys.executable, "-c", code],
            env={**os.environ, "PYTHONHASHSEED": str(h)},
            capture_output=True,
            text=True,
            check=True,
        ).stdout
        for h in (1, 2)
    }
    assert len(sums) == 1


def test_ids_are_unique_across_seeds_and_scenarios(by_scenario):
    frames = [*by_scenario.values(), simulate(2_000, seed=6)]
    turns = pl.concat(frames)
    assert turns["turn_id"].n_unique() == turns.height
    dialogue_sets = [set(f["dialogue_id"].unique()) for f in frames]
    assert sum(len(s) for s in dialogue_sets) == len(set().union(*dialogue_sets))
    assert (turns["turn_id"] == turns["dialogue_id"] + "/" + turns["turn_index"].cast(str)).all()


def test_dialogues_are_ordered_short_and_chained_by_follow_ups(base):
    per_dialogue = base.group_by("dialogue_id").agg(
        pl.col("turn_index").sort().alias("indexes"),
        pl.col("timestamp").sort_by("turn_index").diff().drop_nulls().min().alias("min_step"),
    )
    assert per_dialogue["indexes"].list.len().max() <= 6
    assert (per_dialogue["indexes"].list.get(0) == 0).all()
    assert (per_dialogue["indexes"].list.last() == per_dialogue["indexes"].list.len() - 1).all()
    assert per_dialogue["min_step"].drop_nulls().min() > timedelta(0)
    modes = base.select("turn_index", pl.col("wake").struct.field("mode"))
    assert modes.filter(pl.col("turn_index") == 0)["mode"].is_in(["wake_word", "button"]).all()
    assert (modes.filter(pl.col("turn_index") > 0)["mode"] == "follow_up").mean() > 0.3
    sizes = per_dialogue["indexes"].list.len()
    assert (sizes == 1).mean() > 0.3 and (sizes >= 3).sum() > 100


def test_timestamps_stay_in_the_requested_weeks_with_a_daily_rhythm():
    start = date(2026, 1, 5)
    df = simulate(6_000, seed=8, start=start, weeks=2)
    begin = datetime(2026, 1, 5, tzinfo=UTC)
    assert df["timestamp"].min() >= begin
    assert df["timestamp"].max() < begin + timedelta(weeks=2)
    assert df["timestamp"].dt.date().n_unique() == 14
    by_hour = df.filter(pl.col("locale") == "en-US")["timestamp"].dt.hour().value_counts()
    counts = dict(by_hour.iter_rows())
    # New York evening (UTC 23-01) is busier than the middle of its night (UTC 08-09).
    assert counts.get(0, 0) > 2 * counts.get(8, 0)


# ---- the pipeline's structure ---------------------------------------------------------------


def test_stages_that_did_not_run_have_no_block(base):
    no_nlu = base.filter(pl.col("nlu").is_null())
    assert no_nlu.height > 0
    assert no_nlu["er"].is_null().all()
    assert set(gold(no_nlu).unique()) == {"false_wake", "asr"}
    no_result = base.filter(pl.col("result").is_null())
    assert no_result["tts"].is_null().all() and no_result["signals"].is_null().all()
    assert (gold(no_result) == "false_wake").all()
    slotless = base.filter(pl.col("nlu").struct.field("intent").is_in(["TimeIntent", "NextIntent"]))
    assert slotless.height > 0 and slotless["er"].is_null().all()
    no_wake_word = base.filter(pl.col("wake").struct.field("mode") != "wake_word")
    assert no_wake_word["wake"].struct.field("confidence").is_null().all()


def test_every_defect_kind_the_brief_names_occurs(base):
    status = base["result"].struct.field("status")
    label = gold(base)
    # Requests the assistant cannot do, declined properly, are correct.
    assert ((status == "unsupported") & (label == "correct")).sum() > 50
    # Silent wrong results: the handler says success, the user got the wrong thing.
    assert ((status == "success") & (label == "result")).sum() > 100
    # Benign ASR slips: the top hypothesis differs from what a repeat says, yet the turn is fine.
    asr_conf = base["asr"].struct.field("confidence")
    assert asr_conf.filter(label == "correct").min() < 0.3
    # ER errors of each kind: a wrong entity resolved, and nothing found.
    er = base.filter(label == "er").select(
        pl.col("er").struct.field("entities").list.eval(pl.element().struct.field("status"))
    )
    statuses = er.explode("entities")["entities"].value_counts()
    assert {"resolved", "no_match"} <= set(statuses["entities"])
    # A book, a film and an audiobook of one title; two towns of one name.
    values = base["er"].struct.field("entities").explode().struct.field("resolved_value")
    ids = base["er"].struct.field("entities").explode().struct.field("resolved_id")
    dune = ids.filter(values == "Dune").unique()
    assert {i.split("-")[0] for i in dune} >= {"film", "audiobook"}
    assert ids.filter(values == "Springfield").n_unique() >= 2


def test_class_mix_of_base_is_as_specified(base):
    target = {"correct": 0.70, "false_wake": 0.05, "asr": 0.09, "nlu": 0.06, "er": 0.05,
              "result": 0.05}  # fmt: skip
    for label, expected in target.items():
        assert share(base, label) == pytest.approx(
            expected, abs=0.02 if label != "correct" else 0.035
        )


def test_confidences_correlate_with_correctness_without_deciding_it(base):
    asr_conf = base["asr"].struct.field("confidence")
    label = gold(base)
    right, wrong = asr_conf.filter(label == "correct"), asr_conf.filter(label == "asr")
    assert right.mean() > wrong.mean() + 0.15
    # ...but they overlap: plenty of misrecognitions look confident and vice versa.
    assert (wrong > right.quantile(0.2)).mean() > 0.2
    assert (right < wrong.quantile(0.8)).mean() > 0.1
    nlu_conf = base["nlu"].struct.field("confidence")
    assert nlu_conf.filter(label == "correct").mean() > nlu_conf.filter(label == "nlu").mean()


def test_users_react_to_failures_in_the_next_turn(base):
    ordered = base.sort("dialogue_id", "turn_index").with_columns(
        (pl.col("timestamp").shift(-1).over("dialogue_id") - pl.col("timestamp"))
        .dt.total_milliseconds()
        .alias("gap"),
        pl.col("signals").struct.field("barge_in").alias("barge"),
        pl.col("signals").struct.field("explicit_feedback").alias("feedback"),
        pl.col("label").struct.field("failure_point").alias("gold"),
    )
    fine = ordered.filter(pl.col("gold") == "correct")
    broken = ordered.filter(pl.col("gold").is_in(["asr", "nlu", "er", "result"]))
    assert broken["gap"].is_not_null().mean() > fine["gap"].is_not_null().mean()
    assert broken["gap"].median() < fine["gap"].median()
    assert broken["barge"].mean() > 3 * fine["barge"].mean()
    negative = [(f["feedback"] == "negative").fill_null(False).mean() for f in (broken, fine)]
    assert negative[0] > 5 * negative[1]
    # ...and not deterministically: many failures are followed by nothing at all.
    assert broken["gap"].is_null().mean() > 0.15


def test_single_annotator_agrees_85_to_90_percent_confusing_neighbours(base):
    annotator = base["reference_labels"].str.json_path_match("$.single_annotator")
    label = gold(base)
    assert 0.85 <= (annotator == label).mean() <= 0.90
    confusions = pl.DataFrame({"gold": label, "annotator": annotator}).filter(
        pl.col("gold") != pl.col("annotator")
    )
    order = {name: i for i, name in enumerate(FAILURE_POINTS)}
    distance = [abs(order[g] - order[a]) for g, a in confusions.iter_rows()]
    near = [
        d <= 1 or {g, a} == {"correct", "result"}
        for d, (g, a) in zip(distance, confusions.iter_rows(), strict=True)
    ]
    assert np.mean(near) > 0.6


# ---- scenarios ------------------------------------------------------------------------------


def test_farfield_is_noisier_with_more_asr_errors(by_scenario):
    base, far = by_scenario["base"], by_scenario["farfield"]
    snr = [f["asr"].struct.field("snr_db").mean() for f in (base, far)]
    assert snr[1] < snr[0] - 5
    assert share(far, "asr") > 1.3 * share(base, "asr")


def test_newdomain_adds_domains_never_seen_in_base(by_scenario, base):
    seen = set(base["nlu"].struct.field("domain").drop_nulls())
    new = by_scenario["newdomain"].filter(~pl.col("nlu").struct.field("domain").is_in(list(seen)))
    assert set(new["nlu"].struct.field("domain").drop_nulls()) >= {"Cooking", "Sports", "Podcasts"}
    assert new.height > 0.1 * SCENARIO_TURNS


def test_drift_shifts_the_defect_mix_in_the_migrated_domains(by_scenario):
    def music_video_defects(df: pl.DataFrame) -> float:
        media = df.filter(pl.col("nlu").struct.field("domain").is_in(["Music", "Video"]))
        return float(gold(media).is_in(["er", "result"]).mean())

    assert music_video_defects(by_scenario["drift"]) > 1.8 * music_video_defects(
        by_scenario["base"]
    )


def test_invalid_arguments_are_refused():
    with pytest.raises(ValueError, match="scenario"):
        simulate(10, scenario="moon")
    with pytest.raises(ValueError):
        simulate(-1)


# ---- written dumps --------------------------------------------------------------------------


@pytest.mark.parametrize("suffix", [".jsonl.gz", ".parquet"])
def test_written_dumps_pass_validation_and_read_back(tmp_path, suffix):
    from fpi.io import read_traces

    summary = simulate_to_file(tmp_path / f"sim{suffix}", 1_000, seed=9, weeks=1)
    rejects: list = []
    back = read_traces(summary.path, rejects=rejects)
    assert rejects == []
    assert back.height == summary.turns == 1_000
    original = simulate(1_000, seed=9, weeks=1)
    columns = [c for c in TRACE_SCHEMA.names() if c not in ("source_file", "source_line")]
    assert back.select(columns).equals(original.select(columns))


def test_summary_counts_turns_dialogues_and_classes(base):
    summary = summarize(base)
    assert summary.turns == BASE_TURNS
    assert summary.dialogues == base["dialogue_id"].n_unique()
    assert sum(summary.class_mix.values()) == BASE_TURNS
    assert summary.first <= summary.last


def test_checked_in_example_is_the_documented_simulation():
    from pathlib import Path

    from fpi.io import read_traces

    path = Path(__file__).parents[1] / "examples" / "week.jsonl.gz"
    example = read_traces(path)
    assert example.height == 3_000
    columns = [c for c in TRACE_SCHEMA.names() if c not in ("source_file", "source_line")]
    expected = simulate(3_000, seed=7, weeks=1)
    assert example.select(columns).equals(expected.select(columns))


# ---- the evidence is spread over fields -----------------------------------------------------


def _flat(df: pl.DataFrame) -> tuple[pl.DataFrame, list[str]]:
    """Scalar fields and a few next-turn context columns, categoricals as category codes."""
    nxt = "dialogue_id"
    frame = df.sort("dialogue_id", "turn_index").select(
        pl.col("label").struct.field("failure_point").alias("y"),
        pl.col("device").struct.field("type").alias("device"),
        pl.col("wake").struct.field("mode").alias("mode"),
        pl.col("wake").struct.field("confidence").alias("wake_conf"),
        pl.col("wake").struct.field("verifier_confidence").alias("verifier_conf"),
        pl.col("asr").struct.field("confidence").alias("asr_conf"),
        pl.col("asr").struct.field("snr_db").alias("snr"),
        pl.col("asr").struct.field("audio_ms").alias("audio_ms"),
        pl.col("asr").struct.field("nbest").list.len().alias("asr_nbest"),
        pl.col("nlu").struct.field("intent").alias("intent"),
        pl.col("nlu").struct.field("confidence").alias("nlu_conf"),
        pl.col("nlu").struct.field("slots").list.len().alias("slots"),
        pl.col("er").struct.field("entities").list.eval(pl.element().struct.field("score"))
        .list.min().alias("er_score"),
        pl.col("er").struct.field("entities").list.eval(pl.element().struct.field("status"))
        .list.first().alias("er_status"),
        pl.col("result").struct.field("status").alias("status"),
        pl.col("result").struct.field("latency_ms").alias("latency"),
        pl.col("signals").struct.field("barge_in").cast(pl.Float64).alias("barge_in"),
        pl.col("signals").struct.field("explicit_feedback").alias("feedback"),
        (pl.col("timestamp").shift(-1).over(nxt) - pl.col("timestamp"))
        .dt.total_milliseconds().cast(pl.Float64).alias("next_gap"),
        (pl.col("nlu").struct.field("intent").shift(-1).over(nxt)
         == pl.col("nlu").struct.field("intent")).cast(pl.Float64).alias("next_same_intent"),
        (pl.col("asr").struct.field("text").shift(-1).over(nxt)
         == pl.col("asr").struct.field("text")).cast(pl.Float64).alias("next_same_text"),
    )  # fmt: skip
    categorical = [c for c, t in frame.schema.items() if t == pl.String and c != "y"]
    return frame, categorical


def _matrix(frame: pl.DataFrame, categorical: list[str], codes: dict) -> np.ndarray:
    cols = []
    for name in frame.columns[1:]:
        if name in categorical:
            mapping = codes.setdefault(name, {v: i for i, v in enumerate(frame[name].unique())})
            cols.append(frame[name].replace_strict(mapping, default=None, return_dtype=pl.Float64))
        else:
            cols.append(frame[name].cast(pl.Float64))
    return np.column_stack([c.fill_null(np.nan).to_numpy() for c in cols])


def _macro_f1(truth: np.ndarray, predicted: np.ndarray) -> float:
    scores = []
    for k in range(len(FAILURE_POINTS)):
        tp = np.sum((predicted == k) & (truth == k))
        denominator = np.sum(predicted == k) + np.sum(truth == k)
        scores.append(2 * tp / denominator if denominator else 0.0)
    return float(np.mean(scores))


def _best_single_field_macro_f1(xa, ya, xb, yb) -> float:
    """Majority class per value bin (32 quantile bins or the category), best field."""
    best = 0.0
    for j in range(xa.shape[1]):
        finite = xa[:, j][np.isfinite(xa[:, j])]
        edges = np.unique(np.quantile(finite, np.linspace(0, 1, 33)[1:-1])) if finite.size else []
        ka = np.where(np.isnan(xa[:, j]), -1, np.searchsorted(edges, xa[:, j]))
        kb = np.where(np.isnan(xb[:, j]), -1, np.searchsorted(edges, xb[:, j]))
        table = {k: np.bincount(ya[ka == k], minlength=6).argmax() for k in np.unique(ka)}
        predicted = np.array([table.get(k, 0) for k in kb])
        best = max(best, _macro_f1(yb, predicted))
    return best


def test_no_single_field_gives_the_label_away():
    import lightgbm as lgb

    train, categorical = _flat(simulate(10_000, seed=21))
    test, _ = _flat(simulate(10_000, seed=22))
    codes: dict = {}
    xa, xb = _matrix(train, categorical, codes), _matrix(test, categorical, codes)
    index = {c: i for i, c in enumerate(FAILURE_POINTS)}
    ya = train["y"].replace_strict(index).to_numpy()
    yb = test["y"].replace_strict(index).to_numpy()
    params = {
        "objective": "multiclass",
        "num_class": 6,
        "num_leaves": 15,
        "learning_rate": 0.1,
        "min_data_in_leaf": 20,
        "verbosity": -1,
        "num_threads": 2,
        "deterministic": True,
    }
    features = train.columns[1:]
    model = lgb.train(
        params,
        lgb.Dataset(xa, ya, feature_name=features, categorical_feature=categorical),
        num_boost_round=50,
    )
    all_fields = _macro_f1(yb, model.predict(xb).argmax(axis=1))
    single = _best_single_field_macro_f1(xa, ya, xb, yb)
    assert all_fields > 0.7
    assert single < all_fields - 0.25
