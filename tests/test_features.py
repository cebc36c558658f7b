"""The feature extractor: catalogue rules, values on hand-made dialogues, properties, CLI."""

from __future__ import annotations

import importlib
import json
import math
from datetime import UTC, datetime, timedelta
from pathlib import Path

import polars as pl
import pytest
from fpi.features import CATALOG, Feature
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from polars.testing import assert_frame_equal
from typer.testing import CliRunner

from fpi.cli import app
from fpi.errors import InputError
from fpi.featurize import (
    catalogue_frame,
    extract_features,
    feature_schema,
    render_reason,
    write_features,
)
from fpi.io import from_trace_records, read_traces
from fpi.schema import TRACE_SCHEMA
from tests.strategies import trace_frames

FIXTURES = Path(__file__).parent / "fixtures" / "features"
DIALOGUES = FIXTURES / "dialogues.jsonl"
STAGES = ("wake", "asr", "nlu", "er", "result", "context")
BY_NAME = {f.name: f for f in CATALOG}


@pytest.fixture(scope="module")
def traces() -> pl.DataFrame:
    return read_traces([DIALOGUES])


@pytest.fixture(scope="module")
def features(traces: pl.DataFrame) -> pl.DataFrame:
    return extract_features(traces)


def as_traces(records: pl.DataFrame) -> pl.DataFrame:
    """A `TRACE_JSON_SCHEMA` frame as `TRACE_SCHEMA` (timestamps parsed, ids and sources added),
    without validation: the strategies only draw valid records."""
    timestamps = pl.col("timestamp").str.replace("Z$", "+00:00")
    return records.with_columns(
        timestamps.str.to_datetime("%Y-%m-%dT%H:%M:%S%.f%:z", time_unit="us", time_zone="UTC"),
        pl.coalesce("turn_id", pl.format("{}/{}", "dialogue_id", "turn_index")).alias("turn_id"),
        pl.lit("<hypothesis>").alias("source_file"),
        pl.int_range(pl.len(), dtype=pl.Int64).alias("source_line"),
    ).select(TRACE_SCHEMA.names())


def row(features: pl.DataFrame, turn_id: str) -> dict:
    (found,) = features.filter(pl.col("turn_id") == turn_id).to_dicts()
    return found


# ---- the catalogue -------------------------------------------------------------------------


def test_catalogue_is_in_stage_order_with_unique_prefixed_names():
    names = [f.name for f in CATALOG]
    assert len(names) == len(set(names))
    stages = [f.stage for f in CATALOG]
    assert stages == sorted(stages, key=STAGES.index)
    assert set(stages) == set(STAGES)
    for feature in CATALOG:
        assert feature.name.startswith(f"{feature.stage}__"), feature.name
        assert feature.description.strip(), feature.name
        assert "{value" in feature.reason, feature.name


@pytest.mark.parametrize("stage", STAGES)
def test_every_feature_lives_in_the_file_of_its_stage(stage: str):
    module = importlib.import_module(f"fpi.features.{stage}")
    assert module.FEATURES
    assert all(f.stage == stage for f in module.FEATURES)
    assert [f for f in CATALOG if f.stage == stage] == list(module.FEATURES)


@pytest.mark.parametrize("feature", CATALOG, ids=lambda f: f.name)
def test_every_reason_renders_a_typical_value_and_a_null(feature: Feature):
    typical = "success" if feature.categorical else 0.42
    text = render_reason(feature, typical)
    assert text and "{" not in text and text != f"{feature.description}: {typical}"
    null_text = feature.missing or f"{feature.description}: missing"
    assert "{" not in null_text
    assert render_reason(feature, None) == render_reason(feature, float("nan")) == null_text


def test_a_null_reads_as_what_its_absence_says():
    assert render_reason(BY_NAME["nlu__min_slot_confidence"], None) == (
        "no filled slot had a confidence"
    )
    assert render_reason(BY_NAME["er__resolved_count"], None) == "entity resolution did not run"
    plain = BY_NAME["wake__detector_score"]
    assert not plain.missing
    assert render_reason(plain, None) == f"{plain.description}: missing"


def test_render_reason_fills_templates_and_never_raises():
    assert render_reason(BY_NAME["asr__confidence"], 0.314) == "ASR confidence was 0.31"
    assert render_reason(BY_NAME["context__next_gap_s"], 2.04) == "the next turn came 2.0 s later"
    assert render_reason(BY_NAME["result__status"], "error") == "the result status was error"
    # a text where a number is expected falls back to "<description>: <value>"
    wrong = render_reason(BY_NAME["asr__confidence"], "high")
    assert wrong == "ASR confidence of the top hypothesis: high"


def test_flag_reasons_read_right_both_ways():
    flag = BY_NAME["nlu__screen_intent_without_screen"]
    assert render_reason(flag, 1.0) == "NLU routed to a screen-only intent on a screenless device"
    assert render_reason(flag, 0.0) == "the intent suited the device"
    assert render_reason(BY_NAME["context__abandoned"], 1.0) == "the user gave up after this turn"


def test_catalogue_frame_and_schema_follow_the_catalogue():
    frame = catalogue_frame()
    assert frame.columns == ["name", "stage", "description", "categorical"]
    assert frame["name"].to_list() == [f.name for f in CATALOG]
    schema = feature_schema()
    assert schema.names() == ["turn_id", *(f.name for f in CATALOG)]
    for feature in CATALOG:
        assert schema[feature.name] == (pl.String if feature.categorical else pl.Float64)


# ---- values on hand-made dialogues -------------------------------------------------------


def test_matrix_has_the_schema_and_the_input_order(traces, features):
    assert features.schema == feature_schema()
    assert features["turn_id"].to_list() == traces["turn_id"].to_list()


def test_wake_values(features):
    first = row(features, "d-rephrase/0")
    assert first["wake__mode"] == "wake_word"
    assert first["wake__device_type"] == "speaker"
    assert first["wake__detector_minus_verifier"] == pytest.approx(0.3)
    dstc2 = row(features, "voip-00d76b791d-20130327_010416/0")
    assert dstc2["wake__mode"] == "follow_up"
    assert dstc2["wake__detector_score"] is None


def test_asr_values(features):
    first = row(features, "d-rephrase/0")
    assert first["asr__nbest_size"] == 3
    assert first["asr__top_margin"] == pytest.approx(0.3)
    entropy = -(0.6 * math.log(0.6) + 0.3 * math.log(0.3) + 0.1 * math.log(0.1))
    assert first["asr__nbest_entropy"] == pytest.approx(entropy)
    assert first["asr__alt_distance"] == pytest.approx(0.5)  # {play harry potter} / {.. hairy ..}
    assert first["asr__nbest_novel_words"] == 2  # "hairy", "pay"
    assert (first["asr__words"], first["asr__chars"]) == (3, 17)
    assert first["asr__words_per_second"] == pytest.approx(1.5)
    assert first["asr__empty_text"] == 0.0
    lone = row(features, "d-rephrase/1")  # one hypothesis: the margin is its confidence
    assert lone["asr__top_margin"] == pytest.approx(0.9)
    assert lone["asr__alt_distance"] is None


def test_nlu_values(features):
    video = row(features, "d-rephrase/0")
    assert (video["nlu__domain"], video["nlu__intent"]) == ("Video", "PlayVideoIntent")
    assert video["nlu__screen_intent_without_screen"] == 1.0
    assert video["nlu__top2_domains_differ"] == 1.0
    assert video["nlu__top_margin"] == pytest.approx(0.5)
    assert video["nlu__slot_count"] == 1
    assert video["nlu__min_slot_confidence"] == pytest.approx(0.8)
    assert video["nlu__slot_words_not_heard"] == 0
    audiobook = row(features, "d-rephrase/1")
    assert audiobook["nlu__screen_intent_without_screen"] == 0.0
    assert audiobook["nlu__top2_domains_differ"] is None
    dstc2 = row(features, "voip-00d76b791d-20130327_010416/0")
    assert dstc2["nlu__top2_domains_differ"] == 0.0
    assert dstc2["nlu__min_slot_confidence"] is None


def test_er_values(features):
    film = row(features, "d-rephrase/0")
    assert (film["er__entity_count"], film["er__resolved_count"]) == (1, 1)
    assert film["er__max_candidates"] == 8
    # "harry potter" vs "harry potter and the philosopher's stone": 2 of 6 words shared
    assert film["er__max_mention_distance"] == pytest.approx(4 / 6)
    assert film["er__exact_match_share"] == 0.0
    mixed = row(features, "d-rephrase/1")
    assert (mixed["er__ambiguous_count"], mixed["er__no_match_count"]) == (1, 1)
    assert (mixed["er__min_score"], mixed["er__mean_score"]) == pytest.approx((0.2, 0.5))
    assert mixed["er__exact_match_share"] == 1.0  # the unresolved entity does not count
    assert row(features, "d-rephrase/2")["er__entity_count"] is None  # no ER block


def test_result_values(features):
    film = row(features, "d-rephrase/0")
    assert (film["result__status"], film["result__action"]) == ("success", "PlayVideo")
    assert film["result__response_words"] == 7
    assert film["result__entity_words_not_said"] == 0
    assert film["result__tts_s"] == pytest.approx(3.0)
    question = row(features, "voip-00d76b791d-20130327_010416/0")
    assert question["result__asks_question"] == 1.0
    assert question["result__entity_words_not_said"] == 1  # "cheap" is not in the prompt
    assert row(features, "d-rephrase/3")["result__latency_ms"] == 2500


def test_context_rephrase_gap_and_barge_in(features):
    first = row(features, "d-rephrase/0")
    # ends at 0 + 2.0 s speech + 0.5 s latency + 1.2 s played before the barge-in
    assert first["context__next_gap_s"] == pytest.approx(2.0)
    assert first["context__next_text_similarity"] == pytest.approx(3 / 5)
    assert first["context__barge_in"] == 1.0
    assert first["context__barge_in_fraction"] == pytest.approx(0.4)
    assert first["context__next_same_intent"] == 0.0
    second = row(features, "d-rephrase/1")
    assert second["context__prev_text_similarity"] == pytest.approx(3 / 5)
    assert second["context__prev_gap_s"] == pytest.approx(2.0)
    assert second["context__next_gap_s"] == pytest.approx(10.0)  # 5.7 + 2.5 + 0.4 + 2.0 s


def test_context_slot_change_feedback_and_abandonment(features):
    timer = row(features, "d-rephrase/2")
    assert timer["context__next_same_intent"] == 1.0
    assert timer["context__next_changed_slot_value"] == 1.0  # ten minutes -> five minutes
    assert timer["context__explicit_feedback"] == "positive"
    assert timer["context__abandoned"] == 0.0
    last = row(features, "d-rephrase/3")
    assert last["context__abandoned"] == 1.0
    assert last["context__next_gap_s"] is None
    assert last["context__prev_result_status"] == "success"
    assert (last["context__position"], last["context__dialogue_turns"]) == (3, 4)
    film = row(features, "d-rephrase/0")
    assert film["context__next_changed_slot_value"] == 0.0  # the intent changed
    assert film["context__prev_result_status"] is None


def test_context_previous_system_response_on_dstc2(features):
    answer = row(features, "voip-00d76b791d-20130327_010416/1")
    assert answer["context__prev_action"] == "request"
    assert answer["context__prev_asked_question"] == 1.0
    assert answer["context__prev_result_status"] == "clarification"
    assert answer["context__position"] == 1
    assert answer["context__abandoned"] == 1.0  # the last row of the whole frame, too


def test_a_turn_with_only_its_ids_gives_nulls_but_context(features):
    bare = row(features, "d-bare/0")
    context_values = {
        "context__abandoned": 1.0,
        "context__position": 0.0,
        "context__dialogue_turns": 1.0,
    }
    for name, value in bare.items():
        if name == "turn_id":
            continue
        assert value == context_values.get(name), name


def test_absent_optional_columns_count_as_null(traces):
    absent = ("er", "signals", "tts", "label", "reference_labels", "source_file")
    nulled = traces.with_columns(pl.lit(None, TRACE_SCHEMA[c]).alias(c) for c in absent)
    assert extract_features(traces.drop(absent)).equals(extract_features(nulled))
    assert extract_features(nulled)["er__entity_count"].null_count() == traces.height
    with pytest.raises(InputError, match="dialogue_id"):
        extract_features(traces.drop("dialogue_id"))


def test_empty_and_lazy_frames():
    empty = pl.DataFrame(schema=TRACE_SCHEMA)
    assert extract_features(empty).schema == feature_schema()
    assert extract_features(empty).height == 0
    lazy = extract_features(read_traces([DIALOGUES]).lazy())
    assert isinstance(lazy, pl.LazyFrame)
    # the streaming engine may sum floats in another order: equal up to rounding
    assert_frame_equal(
        lazy.collect(), extract_features(read_traces([DIALOGUES])), check_exact=False
    )


def test_ties_in_turn_index_are_broken_by_timestamp():
    records = pl.DataFrame(
        [
            {"dialogue_id": "d", "turn_index": 0, "timestamp": "2026-01-01T00:00:09Z"},
            {"dialogue_id": "d", "turn_index": 0, "timestamp": "2026-01-01T00:00:01Z"},
        ]
    )
    out = extract_features(from_trace_records(records))
    assert out["context__position"].to_list() == [1.0, 0.0]
    assert out["context__prev_gap_s"].to_list() == [8.0, None]


# ---- properties over any valid trace -----------------------------------------------------


def _no_nan(features: pl.DataFrame) -> bool:
    floats = features.select(pl.col(pl.Float64).is_nan().any())
    return not any(floats.row(0)) if floats.width else True


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(frame=trace_frames(), data=st.data())
def test_any_valid_trace_gives_one_row_per_turn_independent_of_row_order(frame, data):
    traces = as_traces(frame)
    assert traces.schema == TRACE_SCHEMA
    features = extract_features(traces)
    assert features.schema == feature_schema()
    assert features["turn_id"].to_list() == traces["turn_id"].to_list()
    assert _no_nan(features)
    order = data.draw(st.permutations(range(traces.height)))
    shuffled = extract_features(traces[list(order)])
    assert shuffled.equals(features[list(order)])


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(frame=trace_frames(), data=st.data())
def test_labels_never_reach_a_feature(frame, data):
    traces = as_traces(frame)
    labels = st.none() | st.fixed_dictionaries(
        {"failure_point": st.sampled_from(["asr", "nlu", "correct"]), "source": st.text()}
    )
    scrambled = traces.with_columns(
        pl.Series(
            "label",
            data.draw(st.lists(labels, min_size=traces.height, max_size=traces.height)),
            dtype=TRACE_SCHEMA["label"],
        ),
        pl.Series("reference_labels", [json.dumps({"x": "er"})] * traces.height),
    )
    assert extract_features(scrambled).equals(extract_features(traces))


def test_fixture_labels_never_reach_a_feature(traces, features):
    scrambled = traces.with_columns(
        pl.col("label").reverse(), pl.lit('{"other": "result"}').alias("reference_labels")
    )
    assert extract_features(scrambled).equals(features)
    assert extract_features(traces.drop("label", "reference_labels")).equals(features)


# ---- the command line --------------------------------------------------------------------


def test_cli_lists_the_catalogue():
    result = CliRunner().invoke(app, ["features", "--list"])
    assert result.exit_code == 0, result.output
    assert "asr__confidence" in result.output
    assert f"{len(CATALOG)} features" in result.output


def test_cli_writes_the_matrix(tmp_path: Path, features):
    out = tmp_path / "matrix.parquet"
    result = CliRunner().invoke(app, ["features", str(DIALOGUES), "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert pl.read_parquet(out).equals(features)
    assert f"7 turns x {len(CATALOG)} features" in result.output


def test_cli_keeps_going_past_invalid_records_with_rejects(tmp_path: Path):
    dump = tmp_path / "mixed.jsonl"
    dump.write_text(DIALOGUES.read_text() + '{"dialogue_id": "x", "turn_index": -1}\n')
    out, rejects = tmp_path / "m.parquet", tmp_path / "rejects.jsonl"
    runner = CliRunner()
    failed = runner.invoke(app, ["features", str(dump), "--out", str(out)])
    assert failed.exit_code == 1
    result = runner.invoke(
        app, ["features", str(dump), "--out", str(out), "--rejects", str(rejects)]
    )
    assert result.exit_code == 0, result.output
    assert pl.read_parquet(out).height == 7
    assert len(rejects.read_text().splitlines()) == 1


def test_cli_needs_dumps_and_a_parquet_out(tmp_path: Path):
    runner = CliRunner()
    assert runner.invoke(app, ["features", "--out", str(tmp_path / "m.parquet")]).exit_code == 2
    csv = runner.invoke(app, ["features", str(DIALOGUES), "--out", str(tmp_path / "m.csv")])
    assert csv.exit_code == 2


def test_write_features_returns_what_it_wrote(tmp_path: Path):
    out = tmp_path / "deep" / "m.parquet"
    matrix = write_features([DIALOGUES], out)
    assert pl.read_parquet(out).equals(matrix)


def test_a_turn_s_features_depend_only_on_its_own_dialogue(small_traces):
    """Dialogue-relative measures (ranks, distances from the dialogue's best) and context:
    features of dialogues taken apart equal those of the whole frame."""
    sample = small_traces.head(1_500)
    whole = extract_features(sample)
    ids = sample["dialogue_id"].unique().sort()
    halves = [
        sample.filter(pl.col("dialogue_id").is_in(part.to_list())) for part in (ids[::2], ids[1::2])
    ]
    apart = pl.concat([extract_features(h) for h in halves]).sort("turn_id")
    assert_frame_equal(apart, whole.sort("turn_id"))


def test_dialogue_relative_and_agreement_features():
    records = [
        {"dialogue_id": "d", "turn_index": i, "timestamp": f"2026-11-02T10:00:0{i}Z",
         "asr": {"text": text, "confidence": conf,
                 "nbest": [{"text": text, "confidence": conf}, {"text": alt, "confidence": 0.1}]},
         "nlu": {"intent": intent, "confidence": 0.9,
                 "slots": [{"name": "city", "value": value}]},
         "result": {"status": "success", "response_text": response}}
        for i, (text, alt, conf, intent, value, response) in enumerate(
            [
                ("weather in paris", "weather in parish", 0.4, "Weather", "paris",
                 "Sorry, I couldn't find paris."),
                ("no weather in paris", "weather in paris", 0.9, "deny", "paris",
                 "Did you mean paris?"),
                ("weather in rome", "weather in roam", 0.7, "Weather", "roma", "It is sunny."),
            ]
        )
    ]  # fmt: skip
    traces = as_traces(pl.DataFrame(records, schema=pl.Schema(_json_schema())))
    got = extract_features(traces).to_dicts()
    assert [r["asr__confidence_rank_in_dialogue"] for r in got] == [0.0, 1.0, 0.5]
    assert [r["asr__confidence_below_dialogue_best"] for r in got] == pytest.approx([0.5, 0, 0.2])
    assert [r["result__apologises"] for r in got] == [1.0, 0.0, 0.0]
    assert [r["result__confirms_slot_value"] for r in got] == [0.0, 1.0, 0.0]
    assert [r["result__slot_words_not_said_share"] for r in got] == [0.0, 0.0, 1.0]
    assert [r["nlu__slot_words_in_no_hypothesis"] for r in got] == [0.0, 0.0, 1.0]
    assert [r["context__next_negates"] for r in got] == [1.0, 0.0, None]
    assert got[2]["context__prev_apologised"] == 0.0 and got[1]["context__prev_apologised"] == 1.0


def _json_schema():
    from fpi.schema import TRACE_JSON_SCHEMA

    return TRACE_JSON_SCHEMA


def _turns(*turns: dict) -> pl.DataFrame:
    """A one-dialogue trace frame from partial records (index and dialogue id filled in)."""
    records = [{"dialogue_id": "d", "turn_index": i, **turn} for i, turn in enumerate(turns)]
    return as_traces(pl.DataFrame(records, schema=pl.Schema(_json_schema())))


def _asr(*hypotheses: tuple[str, float]) -> dict:
    text, confidence = hypotheses[0]
    nbest = [{"text": t, "confidence": c} for t, c in hypotheses]
    return {"text": text, "confidence": confidence, "nbest": nbest, "audio_ms": 1000.0}


def test_nbest_agreement_and_what_was_said():
    got = extract_features(
        _turns(
            {
                "timestamp": "2026-11-02T10:00:00Z",
                "asr": _asr(("the north please", 0.6), ("north south", 0.3), ("south", 0.1)),
                "nlu": {
                    "intent": "inform",
                    "nbest": [
                        {"intent": "inform", "confidence": 0.7},
                        {"intent": "inform", "confidence": 0.2},
                        {"intent": None, "confidence": 0.1},
                    ],
                    "slots": [{"name": "area", "value": "north"}],
                },
                "result": {"response_text": "North it is.", "latency_ms": 500.0},
            },
            {
                "timestamp": "2026-11-02T10:00:05Z",
                "asr": _asr(("north please", 0.5), ("a", 0.5)),
                "nlu": {"intent": "inform", "slots": [{"name": "food", "value": "thai"}]},
                "result": {"response_text": "Sorry, what food?"},
            },
            {"timestamp": "2026-11-02T10:00:09Z", "asr": _asr(("uh the", 0.5), ("a", 0.5))},
        )
    ).to_dicts()
    north, thai, noise = got
    assert [r["asr__content_words"] for r in got] == [1, 1, 0]
    # "north" (0.6) is the top's content; "north south" (0.3) and "south" (0.1) are not
    assert north["asr__nbest_same_content_share"] == pytest.approx(0.6)
    assert noise["asr__nbest_same_content_share"] == 1.0  # "uh the" and "a": no content
    assert north["nlu__top_intent_share"] == pytest.approx(0.9)
    assert north["nlu__no_intent_share"] == pytest.approx(0.1)
    assert north["result__heard_words_not_said_share"] == 0.0  # the response says "north"
    # the user said "north", the response asks about food: the heard word is left out, and
    # the reason says so
    assert thai["result__heard_words_not_said_share"] == 1.0
    reason = render_reason(BY_NAME["result__heard_words_not_said_share"], 1.0)
    assert reason == "the response left out 100% of the recognised content words"
    assert north["context__next_repeats_content"] == 1.0  # "north" again
    assert thai["context__next_repeats_content"] == 0.0
    assert noise["context__next_repeats_content"] is None  # the last turn


def test_no_nlu_nbest_or_slots_gives_nulls_not_zeros():
    (got,) = extract_features(
        _turns({"timestamp": "2026-11-02T10:00:00Z", "asr": _asr(("north", 0.9)),
                "nlu": {"intent": "inform", "slots": []}})
    ).to_dicts()  # fmt: skip
    for name in (
        "nlu__top_intent_share",
        "nlu__no_intent_share",
        "asr__nbest_same_content_share",
        "result__heard_words_not_said_share",
    ):
        assert got[name] is None, name


def test_yes_no_words_against_the_intent():
    got = extract_features(
        _turns(*({"timestamp": f"2026-11-02T10:00:0{i}Z", "asr": _asr((text, 0.9)),
                  "nlu": {"intent": intent}}
                 for i, (text, intent) in enumerate(
                     [("no not that", "negate"), ("yes please", "affirm"), ("yes", "negate"),
                      ("the north", "affirm"), ("the north", "inform")])))
    ).to_dicts()  # fmt: skip
    assert [r["nlu__polarity_disagrees"] for r in got] == [0.0, 0.0, 1.0, 1.0, 0.0]


@settings(max_examples=25, deadline=None)
@given(
    words_per_second=st.floats(0.5, 5.0),
    response_words=st.integers(1, 30),
    wait_per_word=st.floats(0.0, 2.0),
)
def test_turn_start_per_word_of_the_previous_response(
    words_per_second: float, response_words: int, wait_per_word: float
):
    """The next turn begins `wait_per_word` s per response word after the response started
    (after the speech and the latency), whatever the speech and latency."""
    audio_s, latency_s = 2.0 / words_per_second, 0.4
    start = audio_s + latency_s + wait_per_word * response_words
    first = {"timestamp": "2026-11-02T10:00:00Z", "asr": {**_asr(("a b", 0.9)),
             "audio_ms": audio_s * 1000},
             "result": {"response_text": " ".join(["word"] * response_words),
                        "latency_ms": latency_s * 1000}}  # fmt: skip
    moment = datetime(2026, 11, 2, 10, tzinfo=UTC) + timedelta(seconds=start)
    second = {"timestamp": moment.isoformat(timespec="microseconds").replace("+00:00", "Z")}
    got = extract_features(_turns(first, second))["context__prev_response_s_per_word"]
    assert got[0] is None
    assert got[1] == pytest.approx(wait_per_word, abs=1e-5)


def test_what_nlu_left_unread_and_its_runner_up():
    got = extract_features(
        _turns(
            *(
                {"timestamp": f"2026-11-02T10:00:0{i}Z", "asr": _asr((text, 0.9)), "nlu": nlu}
                for i, (text, nlu) in enumerate(
                    [
                        ("the north please", {"intent": "inform",
                                              "slots": [{"name": "area", "value": "north"}],
                                              "nbest": [{"intent": "inform", "confidence": 0.6},
                                                        {"intent": "inform", "confidence": 0.3},
                                                        {"intent": None, "confidence": 0.1}]}),
                        ("how about thai food", {"intent": "reqalts", "slots": []}),
                        ("get the weather", {"intent": "GetWeather", "slots": []}),
                        ("", {"intent": None}),
                    ]
                )
            )
        )
    ).to_dicts()  # fmt: skip
    assert [r["nlu__heard_words_not_understood"] for r in got] == [0, 4, 0, 0]
    assert [r["nlu__heard_words_not_understood_share"] for r in got] == [0.0, 1.0, 0.0, None]
    # the second "inform" (0.3 of 1.0) reads the same intent another way; the null does not
    assert got[0]["nlu__same_intent_runner_up_share"] == pytest.approx(0.3)
    assert got[1]["nlu__same_intent_runner_up_share"] is None  # no scored n-best
    reason = render_reason(BY_NAME["nlu__heard_words_not_understood"], 4.0)
    assert reason == "NLU's reading left 4 of the recognised content words unaccounted for"


def test_word_support_in_the_asr_nbest():
    got = extract_features(
        _turns(
            {"timestamp": "2026-11-02T10:00:00Z",
             "asr": _asr(("north food", 0.6), ("south food", 0.3), ("north", 0.1))},
            {"timestamp": "2026-11-02T10:00:05Z", "asr": _asr(("uh the", 0.5), ("a", 0.5))},
        )
    ).to_dicts()  # fmt: skip
    # "north" is in hypotheses of 0.6 + 0.1, "food" in 0.6 + 0.3: the weakest is "north"
    assert got[0]["asr__weakest_word_support"] == pytest.approx(0.7)
    assert got[1]["asr__weakest_word_support"] is None  # no content word to support


def test_what_the_next_turn_says_about_this_one():
    got = extract_features(
        _turns(
            {"timestamp": "2026-11-02T10:00:00Z",
             "asr": _asr(("cantonese food", 0.8), ("vietnamese food", 0.2)),
             "nlu": {"intent": "inform", "slots": [{"name": "food", "value": "cantonese"}]},
             "signals": {"barge_in": True}},
            {"timestamp": "2026-11-02T10:00:05Z", "asr": _asr(("vietnamese food", 0.9)),
             "nlu": {"intent": "reqalts", "slots": [{"name": "food", "value": "vietnamese"}]},
             "signals": {"barge_in": False}},
            {"timestamp": "2026-11-02T10:00:09Z", "asr": _asr(("vietnamese please", 0.9)),
             "nlu": {"intent": "inform", "slots": [{"name": "food", "value": "vietnamese"}]}},
        )
    ).to_dicts()  # fmt: skip
    # the user said again "vietnamese", which ASR had only as its second hypothesis
    assert [r["context__next_says_asr_alternative"] for r in got] == [1, 0, None]
    # and NLU did not fill it although this turn's n-best held it
    assert [r["context__next_slot_words_heard_here"] for r in got] == [1, 0, None]
    # another value for the food slot, though under another intent
    assert [r["context__next_gives_slot_other_value"] for r in got] == [1.0, 0.0, None]
    assert [r["context__spoke_over_previous_response"] for r in got] == [None, 1.0, 0.0]
