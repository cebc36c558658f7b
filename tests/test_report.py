from __future__ import annotations

import json
from datetime import UTC, datetime

import numpy as np
import polars as pl
import pytest
from fixtures.report.synthetic import synthetic_triage
from typer.testing import CliRunner

from fpi.cli import app
from fpi.errors import FpiError, InputError
from fpi.owners import parse_owners
from fpi.report import build_report, write_report
from fpi.report.inputs import read_report_input
from fpi.report.markdown import escape_markdown
from fpi.report.stats import bootstrap_ratio, week_over_week, week_window, weekly_rates

WEEK = "2026-W47"
OWNERS = """\
[teams.asr-car]
contact = "asr-car@example.com"
[teams.asr-core]
contact = "asr@example.com"
[teams."<b>nlu</b>"]
contact = "nlu@example.com"

[[rules]]
failure_point = "asr"
device_type = "car"
team = "asr-car"

[[rules]]
failure_point = ["asr", "false_wake"]
team = "asr-core"

[[rules]]
failure_point = "nlu"
team = "<b>nlu</b>"
"""
NASTY = "<script>alert('x')</script> | *bold* _under_ [link](http://x) `code`"


@pytest.fixture(scope="module")
def triaged() -> pl.DataFrame:
    return synthetic_triage()


@pytest.fixture(scope="module")
def owners():
    return parse_owners(OWNERS)


@pytest.fixture(scope="module")
def report(triaged, owners):
    return build_report(triaged, week=WEEK, weeks_back=4, owners=owners)


# ---- statistics ------------------------------------------------------------------------


def _dialogues(rng, n: int, p: float, turns: int, week: str, correlated: bool) -> pl.DataFrame:
    """`n` dialogues of `turns` turns; with `correlated` a whole dialogue fails or not."""
    if correlated:
        fails = np.repeat(rng.uniform(size=n) < p, turns)
    else:
        fails = rng.uniform(size=n * turns) < p
    return pl.DataFrame(
        {
            "week": week,
            "dialogue_id": np.repeat([f"{week}-{i}" for i in range(n)], turns),
            "classified": True,
            "defect": fails,
        }
    )


def _compare(last_p: float, this_p: float, seed: int, *, correlated: bool = True) -> dict:
    rng = np.random.default_rng(seed)
    turns = pl.concat(
        [
            _dialogues(rng, 2000, last_p, 4, "2026-W46", correlated),
            _dialogues(rng, 2000, this_p, 4, "2026-W47", correlated),
        ]
    )
    rates = weekly_rates(turns, ["defect"], replicates=1000)
    return week_over_week(rates, "2026-W47", "2026-W46").row(0, named=True)


def test_change_interval_contains_the_true_difference():
    change = _compare(0.10, 0.14, seed=1)
    assert change["change_low"] < 0.04 < change["change_high"]
    assert change["significant"]


def test_change_interval_covers_the_truth_about_95_percent_of_the_time():
    covered = [
        (c := _compare(0.10, 0.13, seed))["change_low"] < 0.03 < c["change_high"]
        for seed in range(60)
    ]
    assert np.mean(covered) >= 0.85


def test_no_change_is_not_significant():
    change = _compare(0.10, 0.10, seed=3)
    assert change["change_low"] < 0 < change["change_high"]
    assert not change["significant"]


def test_bootstrap_resamples_dialogues_not_turns():
    """Whole-dialogue failures make the interval about sqrt(4) times wider than turn-level."""
    rng = np.random.default_rng(0)
    turns = _dialogues(rng, 2000, 0.1, 4, WEEK, correlated=True)
    rate = weekly_rates(turns, ["defect"]).row(0, named=True)
    p, n = rate["rate"], rate["classified"]
    binomial_width = 2 * 1.96 * np.sqrt(p * (1 - p) / n)
    assert (rate["high"] - rate["low"]) > 1.6 * binomial_width


def test_multinomial_bootstrap_matches_naive_dialogue_resampling():
    rng = np.random.default_rng(5)
    defects = rng.integers(0, 3, size=500)
    totals = defects + rng.integers(0, 4, size=500)
    fast = bootstrap_ratio(
        defects, totals, np.ones(500, dtype=np.int64), rng=np.random.default_rng(1)
    )
    picks = np.random.default_rng(2).integers(0, 500, size=(2000, 500))
    naive = defects[picks].sum(axis=1) / totals[picks].sum(axis=1)
    assert abs(fast.mean() - naive.mean()) < 0.003
    assert abs(fast.std() - naive.std()) / naive.std() < 0.1


def test_bootstrap_is_deterministic(triaged):
    first = build_report(triaged, week=WEEK, weeks_back=4)
    second = build_report(triaged, week=WEEK, weeks_back=4)
    assert first.headline == second.headline
    assert first.tables["trend"].equals(second.tables["trend"])


def test_week_window_and_bad_weeks():
    weeks, since, until = week_window("2026-W01", 3)
    assert weeks == ["2025-W51", "2025-W52", "2026-W01"]
    assert since == datetime(2025, 12, 15, tzinfo=UTC)
    assert until == datetime(2026, 1, 5, tzinfo=UTC)
    assert week_window("2026-W53", 2)[0] == ["2026-W52", "2026-W53"]
    for bad in ("2025-W53", "2026-47", "2026-W4", "W47"):
        with pytest.raises(FpiError, match="ISO week"):
            week_window(bad, 2)
    with pytest.raises(FpiError, match="at least 2"):
        week_window(WEEK, 1)


# ---- report content --------------------------------------------------------------------


def test_headline_finds_the_asr_jump(report):
    head = report.headline
    assert head["week"] == WEEK and head["previous_week"] == "2026-W46"
    assert head["turns"] == head["classified"] + head["uncertain"]
    assert head["defect_rate"] == pytest.approx(head["defects"] / head["classified"])
    assert head["defect_rate_low"] < head["defect_rate"] < head["defect_rate_high"]
    assert head["change"] > 0 and head["significant"]
    mix = {r["failure_point"]: r for r in report.tables["mix"].iter_rows(named=True)}
    assert mix["asr"]["significant"] and mix["asr"]["change"] > 0.04
    assert not mix["nlu"]["significant"]
    assert sum(r["turns"] for r in mix.values()) == head["defects"]
    assert "ASR carries most defects" in report.summary
    assert "significant change" in report.summary


def test_trend_covers_every_week_and_failure_point(report):
    trend = report.tables["trend"]
    assert trend.height == 4 * 6
    asr = trend.filter(pl.col("failure_point") == "asr").sort("week")
    assert asr.get_column("rate").to_list()[-1] > 2 * asr.get_column("rate").to_list()[0]


def test_where_shows_car_as_the_asr_mover(report):
    movers = report.tables["movers"].filter(pl.col("failure_point") == "asr")
    top = movers.row(0, named=True)
    assert (top["dimension"], top["value"]) == ("device_type", "car")
    assert top["change_turns"] == top["turns"] - top["last_turns"] > 0
    carriers = report.tables["carriers"].filter(
        (pl.col("failure_point") == "asr") & (pl.col("dimension") == "device_type")
    )
    assert carriers.get_column("value").first() == "car"


def test_why_ranks_features_and_utterances(report):
    drivers = report.tables["drivers"].filter(pl.col("failure_point") == "asr")
    assert drivers.get_column("feature").first() == "asr__confidence"
    assert drivers.get_column("description").first() is not None
    utterances = report.tables["utterances"].filter(pl.col("failure_point") == "asr")
    assert set(utterances.get_column("utterance")) <= {
        "play some chess",
        "turn on the flights",
        "what's the feather",
    }
    assert utterances.get_column("turns").is_sorted(descending=True)
    assert utterances.get_column("reasons").str.contains(r"\(\+\d").all()


def test_uncertain_queue_names_the_competing_classes(report):
    assert report.uncertain["turns"] == report.headline["uncertain"] > 0
    pairs = report.tables["uncertain_pairs"]
    assert pairs.get_column("turns").sum() <= report.uncertain["turns"]
    assert (pairs.get_column("predicted") != pairs.get_column("runner_up")).all()
    top = pairs.row(0, named=True)
    assert (top["predicted"], top["runner_up"]) == ("correct", "asr")
    assert top["median_margin"] > 0


def test_owner_section_and_filter(triaged, owners, report):
    table = report.tables["owners"]
    assert set(table.get_column("owner")) == {"asr-car", "asr-core", "<b>nlu</b>", "unowned"}
    only = build_report(triaged, week=WEEK, weeks_back=4, owners=owners, owner="asr-car")
    this_week = triaged.filter(
        pl.col("timestamp").dt.strftime("%G-W%V") == WEEK,
        pl.col("failure_point") == "asr",
        pl.col("device_type") == "car",
    )
    assert only.headline["defects"] == this_week.height
    assert only.headline["classified"] == report.headline["classified"]
    assert only.tables["owners"].get_column("owner").to_list() == ["asr-car"]
    mix = only.tables["mix"].filter(pl.col("turns") > 0)
    assert mix.get_column("failure_point").to_list() == ["asr"]
    assert set(only.tables["carriers"].get_column("failure_point")) == {"asr"}
    assert only.uncertain["turns"] == 0
    assert only.summary.count("Team asr-car owns") == 1


def test_owner_column_from_triage_output_is_used(triaged, owners):
    from fpi.owners import assign_owners

    embedded = assign_owners(triaged, owners)
    report = build_report(embedded, week=WEEK, weeks_back=4, owner="asr-core")
    assert report.tables["owners"].get_column("owner").to_list() == ["asr-core"]


def test_owner_mistakes(triaged, owners):
    with pytest.raises(FpiError, match="--owners"):
        build_report(triaged, week=WEEK, owner="asr-car")
    with pytest.raises(FpiError, match="no such team"):
        build_report(triaged, week=WEEK, owners=owners, owner="asr-bus")


def test_week_without_turns_says_what_the_input_covers(triaged):
    with pytest.raises(FpiError, match="2026-W44 to 2026-W47"):
        build_report(triaged, week="2026-W50")


def test_report_as_data_is_json_ready(report):
    data = json.loads(json.dumps(report.to_dict(), default=str))
    assert data["headline"]["defects"] == report.headline["defects"]
    assert len(data["tables"]["mix"]) == 5


# ---- escaping and redaction ------------------------------------------------------------


def _with_utterance(triaged: pl.DataFrame, text: str, copies: int = 60) -> pl.DataFrame:
    template = triaged.filter(
        (pl.col("failure_point") == "asr") & (pl.col("timestamp").dt.strftime("%G-W%V") == WEEK)
    ).head(copies)
    return pl.concat([triaged, template.with_columns(pl.lit(text).alias("asr_text"))])


def test_user_text_is_escaped_in_html_and_markdown(triaged, owners, tmp_path):
    report = build_report(_with_utterance(triaged, NASTY), week=WEEK, weeks_back=4, owners=owners)
    assert NASTY.lower() in report.tables["utterances"].get_column("utterance").to_list()
    written = write_report(report, tmp_path)
    html = (tmp_path / "report.html").read_text()
    assert "<script" not in html.lower()
    assert "&lt;script&gt;alert(&#x27;x&#x27;)&lt;/script&gt;" in html
    assert "<b>nlu</b>" not in html and "&lt;b&gt;nlu&lt;/b&gt;" in html
    markdown = (tmp_path / "report.md").read_text()
    assert "<script" not in markdown and "<b>" not in markdown
    assert escape_markdown(NASTY.lower()) in markdown
    assert r"\| \*bold\* \_under\_ \[link\](http://x) \`code\`" in markdown
    assert {p.name for p in written} >= {"report.html", "report.md", "trend.png", "mix.png"}
    for chart in [p for p in written if p.suffix == ".png"]:
        assert f"]({chart.name})" in markdown


def test_escape_markdown_keeps_text_literal():
    assert escape_markdown("a|b") == r"a\|b"
    assert escape_markdown("<i>&") == "&lt;i&gt;&amp;"
    assert escape_markdown("line\nbreak  # not a heading") == r"line break \# not a heading"


def test_redaction_masks_utterances_everywhere(triaged, owners, tmp_path):
    report = build_report(triaged, week=WEEK, weeks_back=4, owners=owners, redact=True)
    shown = pl.concat(
        [
            report.tables["utterances"].get_column("utterance"),
            report.tables["uncertain_pairs"].get_column("utterance"),
            report.tables["owner_examples"].get_column("utterance"),
        ]
    )
    assert shown.str.contains(r"^(\S+ \*\*\*|\S+|\(.*\))$").all()
    assert "play ***" in shown.to_list()
    write_report(report, tmp_path)
    for name in ("report.html", "report.md", "report.json"):
        text = (tmp_path / name).read_text()
        for secret in ("chess", "flights", "feather", "harry potter", "kitchen lights"):
            assert secret not in text, (name, secret)
    assert "redacted" in (tmp_path / "report.md").read_text()


# ---- inputs and CLI --------------------------------------------------------------------


def test_reads_parquet_and_jsonl_within_the_window(triaged, tmp_path):
    triaged.filter(pl.col("dialogue_id").str.contains("W4[45]")).write_parquet(
        tmp_path / "a.parquet"
    )
    triaged.filter(pl.col("dialogue_id").str.contains("W4[67]")).write_ndjson(tmp_path / "b.jsonl")
    _, since, until = week_window(WEEK, 2)
    read = read_report_input([tmp_path], since=since, until=until).collect()
    assert (
        read.height == triaged.filter(pl.col("timestamp").is_between(since, until, "left")).height
    )
    assert read.schema == triaged.schema


def test_trace_dumps_are_triaged_first(triaged, tmp_path, monkeypatch):
    import fpi.triage

    dump = tmp_path / "traces.jsonl"
    dump.write_text('{"dialogue_id": "d", "turn_index": 0, "timestamp": "2026-11-17T08:00:00Z"}\n')
    seen = []

    def fake_triage_paths(paths, *, model_dir=None, rejects=None):
        seen.append(list(paths))
        return triaged

    monkeypatch.setattr(fpi.triage, "triage_paths", fake_triage_paths)
    read = read_report_input([dump]).collect()
    assert seen == [[dump]]
    assert read.height == triaged.height


def test_csv_triage_output_is_refused_for_reports(triaged, tmp_path):
    path = tmp_path / "t.csv"
    path.write_text("turn_id,failure_point,p_correct\nd/0,asr,0.1\n")
    with pytest.raises(InputError, match="CSV"):
        read_report_input([path])


def test_report_cli(triaged, tmp_path):
    source = tmp_path / "triage.parquet"
    triaged.write_parquet(source)
    owners = tmp_path / "owners.toml"
    owners.write_text(OWNERS)
    out = tmp_path / "out"
    result = CliRunner().invoke(
        app,
        [
            "report",
            str(source),
            "--week",
            WEEK,
            "--weeks-back",
            "4",
            "--owners",
            str(owners),
            "--owner",
            "asr-car",
            "--redact",
            "--out",
            str(out),
        ],
    )
    assert result.exit_code == 0, result.output
    assert "Team asr-car owns" in " ".join(result.output.split())
    html = (out / "report.html").read_text()
    assert "Defect review 2026-W47 — asr-car" in html
    assert (out / "report.md").is_file() and (out / "trend.png").is_file()


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        (["--week", "2026-47"], "ISO week"),
        (["--week", "2030-W01"], "no turns in 2030-W01"),
        (["--week", WEEK, "--owner", "nobody"], "--owners"),
    ],
)
def test_report_cli_errors_exit_2(triaged, tmp_path, arguments, message):
    source = tmp_path / "triage.parquet"
    triaged.write_parquet(source)
    result = CliRunner().invoke(app, ["report", str(source), *arguments, "--out", str(tmp_path)])
    assert result.exit_code == 2
    output = " ".join(result.output.split())
    assert message in output and "Traceback" not in output


def test_report_cli_missing_input(tmp_path):
    result = CliRunner().invoke(app, ["report", str(tmp_path / "nope.parquet"), "--week", WEEK])
    assert result.exit_code == 2
    assert "no such file" in " ".join(result.output.split())
