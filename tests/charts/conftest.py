from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

from fpi.owners import parse_owners
from fpi.report import Report, build_report

SYNTHETIC = Path(__file__).parents[1] / "fixtures" / "report" / "synthetic.py"
OWNERS = """\
[teams.asr]
contact = "asr@example.com"
[teams."cost $5 team"]
contact = "c@example.com"
[[rules]]
failure_point = "asr"
team = "asr"
[[rules]]
failure_point = "nlu"
team = "cost $5 team"
"""


@pytest.fixture(scope="session")
def report() -> Report:
    """A report over the synthetic triage frame (loaded by path: tests/ has no package)."""
    spec = importlib.util.spec_from_file_location("report_synthetic", SYNTHETIC)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return build_report(
        module.synthetic_triage(dialogues_per_week=150),
        week="2026-W47",
        weeks_back=4,
        owners=parse_owners(OWNERS),
    )
