"""Domain-randomised pipelines: the scenarios stay as they were, and drawn pipelines differ."""

from __future__ import annotations

import numpy as np
import polars as pl
import pytest

from fpi.io import read_traces, write_traces
from fpi.simulate import (
    SCENARIOS,
    PipelineConfig,
    randomized_pipelines,
    simulate,
    simulate_pipeline,
    simulate_randomized,
)
from fpi.simulate.randomize import STATUS_DIALECTS, Calibration, draw_pipeline

#: What `simulate(1500, seed=9, scenario=...)` produced before pipelines were randomisable:
#: dialogues, summed ASR confidence and result latency, and the gold class mix.
SCENARIO_FINGERPRINTS = {
    "base": (843, 1282.6785, 1099441.0, {"correct": 1001, "asr": 129, "er": 98, "nlu": 94}),
    "farfield": (812, 1112.656, 1022828.0, {"correct": 807, "asr": 409, "er": 70, "nlu": 58}),
    "newdomain": (821, 1267.1581, 1104391.0, {"correct": 992, "asr": 150, "er": 67, "nlu": 126}),
    "drift": (791, 1278.1396, 1119437.0, {"correct": 1008, "asr": 145, "er": 90, "nlu": 89}),
}


@pytest.mark.parametrize("scenario", SCENARIOS)
def test_scenarios_are_unchanged(scenario):
    frame = simulate(1_500, seed=9, scenario=scenario)
    dialogues, asr_sum, latency_sum, mix = SCENARIO_FINGERPRINTS[scenario]
    assert frame["dialogue_id"].n_unique() == dialogues
    assert frame["asr"].struct.field("confidence").sum() == pytest.approx(asr_sum, abs=1e-6)
    assert frame["result"].struct.field("latency_ms").sum() == latency_sum
    counts = dict(frame["label"].struct.field("failure_point").value_counts().iter_rows())
    assert {c: counts[c] for c in mix} == mix


def test_a_default_pipeline_logs_every_field_as_the_world_made_it():
    from fpi.simulate.draws import Draws
    from fpi.simulate.pipeline import SCENARIO_SETTINGS, DialogueSimulator
    from fpi.simulate.users import make_users

    draws = Draws(np.random.default_rng(5))
    users = make_users(20, ("Music",), (1.0,), draws, "t")
    turns = DialogueSimulator(SCENARIO_SETTINGS["base"], draws, ("Music",)).dialogue(users[0], 0)
    for turn in turns:
        assert PipelineConfig("plain").observe(turn.record, 1.7) == turn.record


def test_randomized_traffic_is_deterministic_valid_and_exact(tmp_path):
    a = simulate_randomized(3_000, seed=4, block_turns=1_000)
    assert a.height == 3_000
    assert a.equals(simulate_randomized(3_000, seed=4, block_turns=1_000))
    assert a["turn_id"].n_unique() == a.height
    assert a["source_line"].to_list() == list(range(1, 3_001))
    rejects: list = []
    read_traces([write_traces(a, tmp_path / "rand.jsonl")], rejects=rejects)
    assert rejects == []
    pipelines = a["dialogue_id"].str.extract(r"^sim-(rand4p\d+)-").unique()
    assert pipelines.len() == 3


def test_drawn_pipelines_differ_in_what_they_log_and_how():
    drawn = randomized_pipelines(0, 40)
    assert len({p.name for p in drawn}) == 40
    for knob in ("log_wake_scores", "log_asr_confidence", "log_asr_nbest", "log_names"):
        assert {getattr(p, knob) for p in drawn} == {True, False}
    assert {p.status_dialect for p in drawn} == set(STATUS_DIALECTS)
    assert len({p.asr.shift for p in drawn}) > 30
    assert len({p.world.nlu_error_scale for p in drawn}) > 30
    assert drawn == randomized_pipelines(0, 40)


def test_observe_drops_unlogged_fields_and_keeps_nbest_order():
    pipeline = PipelineConfig(
        "quiet",
        asr=Calibration(scale=0.5, shift=1.0, noise=0.3),
        log_wake_scores=False,
        log_nlu_confidence=False,
        log_names=False,
        status_dialect="absent",
    )
    frame = simulate_pipeline(1_500, pipeline, seed=2)
    wake, nlu, result = (frame[c].struct for c in ("wake", "nlu", "result"))
    assert wake.field("confidence").is_null().all()
    assert nlu.field("confidence").is_null().all()
    assert nlu.field("intent").is_null().all()
    assert result.field("status").is_null().all()
    assert result.field("handler").is_null().all()
    confidences = (
        frame["asr"].struct.field("nbest").list.eval(pl.element().struct.field("confidence"))
    )
    ordered = confidences.list.eval(pl.element().diff().drop_nulls() <= 0).list.all()
    assert ordered.all()
    # the world is the same: the gold labels do not depend on how the pipeline logs
    plain = simulate_pipeline(1_500, PipelineConfig("quiet"), seed=2)
    assert plain["label"].equals(frame["label"])


def test_observe_leaves_the_record_alone():
    record = {
        "wake": {"mode": "wake_word", "confidence": 0.9, "verifier_confidence": 0.8},
        "asr": {
            "text": "hi",
            "confidence": 0.7,
            "nbest": [{"text": "hi", "confidence": 0.7}],
            "audio_ms": 500.0,
            "snr_db": 12.0,
        },
        "nlu": None,
        "er": None,
        "result": None,
        "tts": None,
        "signals": None,
    }
    pipeline = draw_pipeline(np.random.default_rng(1), "x")
    observed = pipeline.observe(record, 0.5)
    assert record["asr"]["confidence"] == 0.7
    assert observed is not record


def test_calibration_is_monotone_and_stays_a_probability():
    calibration = Calibration(scale=1.7, shift=-1.2, noise=0.0)
    values = [calibration.apply(p, 0.0) for p in (0.0, 0.1, 0.5, 0.9, 1.0)]
    assert values == sorted(values)
    assert all(0.0 <= v <= 1.0 for v in values)
    assert calibration.apply(None, 0.0) is None


def test_cli_simulates_randomised_pipelines(tmp_path):
    from typer.testing import CliRunner

    from fpi.cli import app

    out = tmp_path / "rand.jsonl"
    args = ["simulate", "--out", str(out), "--turns", "900", "--seed", "3"]
    result = CliRunner().invoke(app, [*args, "--randomize", "--block-turns", "300"])
    assert result.exit_code == 0, result.output
    traces = read_traces([out])
    assert traces.height == 900
    assert traces["dialogue_id"].str.extract(r"^sim-(rand3p\d+)-").n_unique() == 3
    expected = simulate_randomized(900, seed=3, block_turns=300)
    assert traces["turn_id"].to_list() == expected["turn_id"].to_list()
    assert traces["label"].equals(expected["label"])


def test_an_open_line_with_terse_responses():
    from fpi.simulate.randomize import TERSE_RESPONSE

    frame = simulate_pipeline(
        600, PipelineConfig("line", open_line=True, terse_responses=True), seed=1
    )
    wake, result = frame["wake"].struct, frame["result"].struct
    assert (wake.field("mode") == "follow_up").all()
    assert wake.field("confidence").is_null().all()
    success = result.field("status") == "success"
    assert (result.field("response_text").filter(success) == TERSE_RESPONSE).all()
    assert (result.field("response_text").filter(~success) != TERSE_RESPONSE).all()


def test_typed_requests_have_no_wake_asr_or_tts_and_never_fail_there():
    frame = simulate_pipeline(2000, PipelineConfig("chat", typed_share=0.6), seed=2)
    typed = frame["asr"].is_null()
    assert 0.4 < typed.mean() < 0.65
    assert frame.filter(typed)["wake"].is_null().all()
    assert frame.filter(typed)["tts"].is_null().all()
    labels = frame["label"].struct.field("failure_point")
    assert not labels.filter(typed).is_in(["asr", "false_wake"]).any()
    assert labels.filter(~typed).is_in(["asr"]).any()
    voice = simulate_pipeline(2000, PipelineConfig("chat"), seed=2)
    assert voice["asr"].is_not_null().all()
    assert voice["label"].equals(frame["label"])  # typing changes the logs, not the world


def test_per_turn_draws_are_independent_of_each_other():
    # a salted CRC-32 locked the draws together: no typed turn was ever asked what next
    from fpi.simulate.randomize import NEXT_QUESTIONS

    config = PipelineConfig("chat", typed_share=0.5, asks_next_share=0.5)
    frame = simulate_pipeline(3000, config, seed=2)
    success = frame["result"].struct.field("status") == "success"
    asks = (
        frame["result"]
        .struct.field("response_text")
        .map_elements(lambda text: text.endswith(NEXT_QUESTIONS), return_dtype=pl.Boolean)
    )
    typed = frame["asr"].is_null()
    for kind in (typed, ~typed):
        share = asks.filter(success & kind).mean()
        assert 0.4 < share < 0.6, share


def test_a_quarter_of_drawn_pipelines_take_typed_requests():
    shares = [p.typed_share for p in randomized_pipelines(5, 200)]
    typing = [s for s in shares if s > 0]
    assert 0.15 < len(typing) / len(shares) < 0.35
    assert all(0.2 <= s <= 1.0 for s in typing)


def test_a_form_filling_pipeline_asks_what_is_next_after_its_answers():
    from fpi.simulate.randomize import NEXT_QUESTIONS

    plain = simulate_pipeline(800, PipelineConfig("form"), seed=4)
    form = simulate_pipeline(800, PipelineConfig("form", asks_next_share=1.0), seed=4)
    success = plain["result"].struct.field("status") == "success"
    asked = form["result"].struct.field("response_text").filter(success)
    before = plain["result"].struct.field("response_text").filter(success)
    assert all(
        a.startswith(b) and a.removeprefix(b).strip() in NEXT_QUESTIONS
        for a, b in zip(asked, before, strict=True)
    )
    others = form["result"].struct.field("response_text").filter(~success & success.is_not_null())
    assert others.equals(
        plain["result"].struct.field("response_text").filter(~success & success.is_not_null())
    )
    assert form["label"].equals(plain["label"])


def test_canonical_slots_log_catalogue_ids_instead_of_the_words_said():
    frame = simulate_pipeline(600, PipelineConfig("ids", canonical_slots=True), seed=4)
    for nlu, er in zip(frame["nlu"].to_list(), frame["er"].to_list(), strict=True):
        ids = {e["slot"]: e["resolved_id"] for e in (er or {}).get("entities") or ()}
        for slot in (nlu or {}).get("slots") or ():
            if ids.get(slot["name"]):
                assert slot["value"] == ids[slot["name"]]


def test_users_asking_for_what_the_service_does_not_have_get_a_correct_not_found():
    from fpi.simulate.pipeline import Scenario

    def correct_not_found(share: float) -> int:
        world = Scenario("shop", unavailable_share=share)
        frame = simulate_pipeline(3000, PipelineConfig("shop", world=world), seed=4)
        status = frame["result"].struct.field("status")
        label = frame["label"].struct.field("failure_point")
        return int(((status == "no_content") & (label == "correct")).sum())

    assert correct_not_found(0.5) > 2 * max(correct_not_found(0.0), 1)


def _world(name: str, **knobs) -> pl.DataFrame:
    from fpi.simulate.pipeline import Scenario

    return simulate_pipeline(3000, PipelineConfig(name, world=Scenario(name, **knobs)), seed=4)


def _labels(frame: pl.DataFrame) -> pl.Series:
    return frame["label"].struct.field("failure_point")


def test_valid_searches_that_find_nothing_are_answered_not_found_correctly():
    def resolved_yet_not_found(frame: pl.DataFrame) -> int:
        """Correct turns answered "not found" although every entity resolved."""
        status = frame["result"].struct.field("status")
        found = frame.filter((status == "no_content") & (_labels(frame) == "correct"))
        return sum(
            all(e["status"] == "resolved" for e in (er or {}).get("entities") or ())
            for er in found["er"].to_list()
        )

    assert resolved_yet_not_found(_world("search")) == 0
    assert resolved_yet_not_found(_world("search", empty_result_share=0.3)) > 100


def test_an_nlu_sure_of_misheard_text_and_a_recogniser_whose_confidence_drops_on_errors():
    def median_confidence(frame: pl.DataFrame, stage: str, label: str) -> float:
        return frame[stage].struct.field("confidence").filter(_labels(frame) == label).median()

    unsure, sure = _world("nlu"), _world("nlu", nlu_sure_of_misheard=1.0)
    assert median_confidence(unsure, "nlu", "asr") < 0.6 < median_confidence(sure, "nlu", "asr")
    assert median_confidence(sure, "nlu", "correct") == pytest.approx(
        median_confidence(unsure, "nlu", "correct"), abs=0.05
    )
    mild, steep = _world("asr"), _world("asr", asr_error_confidence_drop=3.0)
    assert median_confidence(steep, "asr", "asr") < median_confidence(mild, "asr", "asr") - 0.2
    assert median_confidence(steep, "asr", "correct") == pytest.approx(
        median_confidence(mild, "asr", "correct"), abs=0.02
    )


def test_pace_contrast_makes_the_pause_before_a_retry_like_any_other():
    from fpi.featurize import extract_features

    def pause_ratio(frame: pl.DataFrame) -> float:
        gap = extract_features(frame)["context__next_gap_s"]
        labels = _labels(frame)
        return gap.filter(labels == "correct").median() / gap.filter(labels == "asr").median()

    assert pause_ratio(_world("pace")) > 2.0
    assert pause_ratio(_world("pace", pace_contrast=0.0)) < 1.5


def test_noise_burst_false_wakes_are_heard_as_a_word_or_two():
    from fpi.simulate.catalog import NOISE_HEARD_AS

    def false_wake_texts(frame: pl.DataFrame) -> list[str]:
        return frame["asr"].struct.field("text").filter(_labels(frame) == "false_wake").to_list()

    noise = false_wake_texts(_world("line", noise_false_wake_share=1.0))
    assert noise and all(text in NOISE_HEARD_AS for text in noise)
    assert not set(false_wake_texts(_world("line"))) <= set(NOISE_HEARD_AS)


def test_drawn_worlds_vary_the_new_knobs():
    worlds = [p.world for p in randomized_pipelines(5, 200)]
    empty = [w.empty_result_share for w in worlds]
    assert 0.6 < sum(e > 0 for e in empty) / len(empty) < 0.8
    assert all(0.0 <= w.nlu_sure_of_misheard <= 1.0 for w in worlds)
    assert all(0.0 <= w.pace_contrast <= 1.0 and 0.5 <= w.pace_scale <= 2.0 for w in worlds)
    assert all(0.5 <= w.asr_error_confidence_drop <= 3.0 for w in worlds)
    assert 0.35 < sum(w.noise_false_wake_share > 0 for w in worlds) / len(worlds) < 0.65
    assert 0.35 < sum(w.thanks_share > 0 for w in worlds) / len(worlds) < 0.65
    assert 0.35 < sum(w.hesitation_share > 0 for w in worlds) / len(worlds) < 0.65
    assert all(w.thanks_share <= 0.6 and w.hesitation_share <= 0.3 for w in worlds)


def _intents(frame: pl.DataFrame) -> pl.Series:
    return frame["nlu"].struct.field("intent")


def test_users_close_dialogues_that_went_well_with_a_thank_you():
    from fpi.simulate.catalog import THANKS_INTENT

    assert (_intents(_world("polite")) == THANKS_INTENT.name).sum() == 0
    frame = _world("polite", thanks_share=0.6)
    ordered = frame.sort("dialogue_id", "turn_index")
    last = ordered.group_by("dialogue_id", maintain_order=True).agg(
        pl.col("nlu").last().struct.field("intent").alias("intent"), pl.len().alias("turns")
    )
    thanked = last.filter(pl.col("intent") == THANKS_INTENT.name)
    assert thanked.height > 100
    assert (thanked["turns"] > 1).all()  # after a request, and it closes the dialogue
    said = frame.filter(_intents(frame) == THANKS_INTENT.name)
    assert (said["wake"].struct.field("mode") == "follow_up").all()
    assert (_labels(said) == "correct").mean() > 0.8
    from fpi.featurize import extract_features

    pauses = extract_features(ordered).filter(_intents(ordered) == THANKS_INTENT.name)
    pauses = pauses["context__prev_gap_s"]
    assert (pauses > 0.1).all()  # said after the answer ended, not over it
    assert pauses.std() > 0.3


def test_a_hesitation_before_a_request_is_answered_by_a_reprompt_and_is_correct():
    from fpi.simulate.catalog import HESITATION_INTENT

    assert (_intents(_world("hesitant")) == HESITATION_INTENT.name).sum() == 0
    frame = _world("hesitant", hesitation_share=0.3).sort("dialogue_id", "turn_index")
    hesitations = frame.filter(_intents(frame) == HESITATION_INTENT.name)
    assert hesitations.height > 50
    assert (hesitations["result"].struct.field("status") == "clarification").all()
    assert (_labels(hesitations) == "correct").all()
    heard = hesitations["asr"].struct.field("text")
    assert heard.is_in(HESITATION_INTENT.templates).mean() > 0.8
    following = frame.with_columns(
        pl.col("nlu").struct.field("intent").shift(-1).over("dialogue_id").alias("next")
    ).filter(_intents(frame) == HESITATION_INTENT.name)
    assert following["next"].is_not_null().all()  # the request itself comes next
    assert (following["next"] != HESITATION_INTENT.name).all()


def test_a_false_wake_parser_tags_slot_values_among_the_words_it_heard():
    def slots_heard(frame: pl.DataFrame) -> list[bool]:
        woke = frame.filter(_labels(frame) == "false_wake")
        heard = woke["asr"].struct.field("text").to_list()
        return [
            all(set(s["value"].split()) <= set(text.split()) for s in nlu["slots"])
            for text, nlu in zip(heard, woke["nlu"].to_list(), strict=True)
            if nlu is not None and nlu["slots"]
        ]

    guessed = slots_heard(_world("parser"))
    tagged = slots_heard(_world("parser", false_wake_heard_slots=1.0))
    assert len(tagged) > 20 and all(tagged)
    assert sum(guessed) / len(guessed) < 0.3


def test_a_chatty_pipeline_wraps_every_response_in_pleasantries():
    from fpi.simulate.pipeline import Scenario
    from fpi.simulate.randomize import CHATTY_CLOSERS, CHATTY_OPENERS, CHATTY_OTHER_OPENERS

    def pipeline(**logs) -> pl.DataFrame:
        config = PipelineConfig("chat", world=Scenario("chat"), **logs)
        return simulate_pipeline(1500, config, seed=4)

    plain, chatty = pipeline(), pipeline(chatty_share=1.0)
    said = chatty["result"].struct.field("response_text").drop_nulls()
    said = said.filter(said != "")
    assert said.len() > 1000
    assert said.str.ends_with(CHATTY_CLOSERS[0]).any()
    openers = (*CHATTY_OPENERS, *CHATTY_OTHER_OPENERS)
    assert all(text.startswith(openers) and text.endswith(CHATTY_CLOSERS) for text in said)
    spoken = chatty["tts"].struct.field("text")
    assert (spoken == chatty["result"].struct.field("response_text")).all()
    answers = plain["result"].struct.field("response_text").drop_nulls()
    assert not any(text.endswith(CHATTY_CLOSERS) for text in answers)
    assert _labels(chatty).equals(_labels(plain))  # wording changes no outcome


def test_a_confirming_system_asks_before_acting_and_the_user_answers_yes_or_no():
    from fpi.simulate.catalog import AFFIRM_INTENT, NEGATE_INTENT

    assert (_intents(_world("confirm")) == AFFIRM_INTENT.name).sum() == 0
    frame = _world("confirm", confirm_share=0.5).sort("dialogue_id", "turn_index")
    frame = frame.with_columns(
        pl.col("result").struct.field("action").alias("action"),
        pl.col("result").struct.field("action").shift(-1).over("dialogue_id").alias("next_action"),
        pl.col("nlu").struct.field("intent").shift(-1).over("dialogue_id").alias("answer"),
        pl.col("label")
        .struct.field("failure_point")
        .shift(-1)
        .over("dialogue_id")
        .alias("answer_label"),
    )
    asked = frame.filter(
        (pl.col("action") == "Confirm") & (pl.col("result").struct.field("handler") == "Dialog")
    )
    assert asked.height > 100
    assert (asked["result"].struct.field("response_text").str.starts_with("Did ")).all()
    understood = asked.filter(_labels(asked) == "correct")
    misheard = asked.filter(_labels(asked).is_in(["asr", "nlu", "er"]))
    assert understood.height > 50 and misheard.height > 10
    assert (understood["answer"] == AFFIRM_INTENT.name).mean() > 0.9
    assert (misheard["answer"] == NEGATE_INTENT.name).mean() > 0.75  # a "no" can be misheard
    # "yes" carries the request's own outcome; "no" makes the system ask again
    yes = understood.filter(pl.col("answer_label") == "correct")
    assert (yes["next_action"] != "Confirm").all() and yes["next_action"].is_not_null().all()
    assert (yes["next_action"] != AFFIRM_INTENT.action).mean() > 0.9
    assert (misheard["next_action"] == NEGATE_INTENT.action).mean() > 0.75
    said = frame.filter(_intents(frame).is_in([AFFIRM_INTENT.name, NEGATE_INTENT.name]))
    assert said["asr"].struct.field("text").is_in(["yes", "no", "yeah", "right"]).mean() > 0.3


def test_wordy_users_wrap_their_requests_in_a_sentence():
    from fpi.simulate.catalog import CARRIER_OPENERS

    def said(frame: pl.DataFrame) -> pl.Series:
        requests = frame.filter(pl.col("nlu").struct.field("domain") != "Global")
        return requests["asr"].struct.field("text").drop_nulls()

    terse, wordy = said(_world("wordy")), said(_world("wordy", carrier_share=1.0))
    openers = tuple(f"{opener} " for opener in CARRIER_OPENERS)
    assert wordy.map_elements(lambda t: t.startswith(openers), pl.Boolean).mean() > 0.6
    assert terse.map_elements(lambda t: t.startswith(openers), pl.Boolean).mean() < 0.05
    assert wordy.str.split(" ").list.len().mean() > terse.str.split(" ").list.len().mean() + 2


def test_users_ask_for_a_detail_of_what_was_found_and_a_bug_gives_another():
    from fpi.simulate.catalog import DETAIL_INTENT

    assert (_intents(_world("details")) == DETAIL_INTENT.name).sum() == 0
    frame = _world("details", detail_share=0.6)
    asked = frame.filter(_intents(frame) == DETAIL_INTENT.name)
    assert asked.height > 100
    answers = asked["result"].struct.field("response_text")
    details = asked["nlu"].struct.field("slots").list.first().struct.field("value")
    named = [d is not None and d in a for a, d in zip(answers, details, strict=True)]
    labels = _labels(asked)
    assert all(n for n, label in zip(named, labels, strict=True) if label == "correct")
    bugs = [not n for n, label in zip(named, labels, strict=True) if label == "result"]
    assert len(bugs) > 5 and all(bugs)
    assert (asked["result"].struct.field("status").filter(labels == "result") == "success").all()
    ordered = frame.sort("dialogue_id", "turn_index")
    repeated = ordered.filter(
        (_intents(ordered) == DETAIL_INTENT.name)
        & (_labels(ordered) == "result")
        & (
            pl.col("result").struct.field("response_text")
            == pl.col("result").struct.field("response_text").shift(1).over("dialogue_id")
        )
    )
    assert repeated.height > 3  # a stuck dialogue says its last answer again
