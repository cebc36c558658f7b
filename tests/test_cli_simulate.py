"""`fpi simulate`: writes a dump in the format its suffix names and summarises it."""

from __future__ import annotations

from typer.testing import CliRunner

from fpi.cli import ScenarioChoice, app
from fpi.io import read_traces
from fpi.simulate import SCENARIOS

runner = CliRunner()


def test_simulate_writes_the_dump_and_prints_a_summary(tmp_path):
    out = tmp_path / "sim.jsonl.gz"
    result = runner.invoke(
        app, ["simulate", "--turns", "400", "--seed", "3", "--weeks", "1", "--out", str(out)]
    )
    assert result.exit_code == 0, result.output
    assert "400 turns" in result.output
    assert "class mix" in result.output and "false_wake" in result.output
    traces = read_traces(out)
    assert traces.height == 400
    assert traces["dialogue_id"].str.starts_with("sim-base-3-").all()


def test_simulate_scenario_start_and_parquet(tmp_path):
    out = tmp_path / "drift.parquet"
    args = ["simulate", "--turns", "200", "--scenario", "drift", "--start", "2027-03-01"]
    result = runner.invoke(app, [*args, "--out", str(out)])
    assert result.exit_code == 0, result.output
    traces = read_traces(out)
    assert traces["dialogue_id"].str.starts_with("sim-drift-0-").all()
    assert str(traces["timestamp"].min().date()) >= "2027-03-01"
    assert "2027-03" in result.output


def test_simulate_refuses_bad_options(tmp_path):
    bad_scenario = runner.invoke(
        app, ["simulate", "--scenario", "moon", "--out", str(tmp_path / "x.jsonl")]
    )
    assert bad_scenario.exit_code == 2
    bad_suffix = runner.invoke(app, ["simulate", "--turns", "5", "--out", str(tmp_path / "x.csv")])
    assert bad_suffix.exit_code == 2
    assert "unknown dump format" in bad_suffix.output
    assert not (tmp_path / "x.csv").exists()
    no_out = runner.invoke(app, ["simulate", "--turns", "5"])
    assert no_out.exit_code == 2


def test_cli_scenarios_match_the_library():
    assert tuple(s.value for s in ScenarioChoice) == SCENARIOS
