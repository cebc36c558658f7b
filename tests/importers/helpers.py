"""Shared helpers for the importer tests."""

from __future__ import annotations

import json
from pathlib import Path

import polars as pl
from typer.testing import CliRunner

from fpi.cli import app

FIXTURES = Path(__file__).parent.parent / "fixtures" / "importers"
runner = CliRunner()


def invoke(*args: str) -> tuple[int, str]:
    """Exit code and output with rich's line wrapping undone."""
    result = runner.invoke(app, list(args))
    return result.exit_code, " ".join(result.output.split())


def read_records(path: Path) -> list[dict]:
    """The records of an imported dump, as dicts (Parquet JSON columns decoded)."""
    if path.suffix == ".parquet":
        rows = pl.read_parquet(path).to_dicts()
        for row in rows:
            for name in ("reference_labels", "passthrough"):
                if row.get(name) is not None:
                    row[name] = json.loads(row[name])
        return rows
    return [json.loads(line) for line in path.read_text().splitlines()]
