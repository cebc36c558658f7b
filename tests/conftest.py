"""Shared fixtures: a small simulated dump and a small model trained on it (built once)."""

from __future__ import annotations

import pytest

SMALL_TURNS = 4_000


@pytest.fixture(scope="session")
def small_traces():
    from fpi.simulate import simulate

    return simulate(SMALL_TURNS, seed=3, weeks=2)


@pytest.fixture(scope="session")
def small_bundle(small_traces):
    from fpi.model import train

    return train(small_traces, rounds=25, seed=0)


@pytest.fixture(scope="session")
def small_dump(small_traces, tmp_path_factory):
    from fpi.io import write_traces

    return write_traces(small_traces, tmp_path_factory.mktemp("dump") / "small.jsonl.gz")


@pytest.fixture(scope="session")
def small_model_dir(small_bundle, tmp_path_factory):
    return small_bundle.save(tmp_path_factory.mktemp("model") / "bundle")
