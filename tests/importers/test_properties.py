"""Property tests: importers never crash on mutated real inputs, and their counts add up.

Each example takes a real-file fixture, changes values anywhere in it (any JSON value, NaN and
huge numbers included), deletes keys and wraps values in lists, writes it, imports it and
checks that read == imported + skipped, that the turns written are exactly the turns counted,
and that every written record passes the project's reader and validator.
"""

from __future__ import annotations

import json
import tempfile
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from fpi.importers.homeassistant import import_homeassistant
from fpi.importers.lex import import_lex
from fpi.importers.rasa import import_rasa
from fpi.io import read_traces
from tests.importers.helpers import FIXTURES

_LEAF = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(2**70), 2**70),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=12),
    st.sampled_from(["", "2024-01-01T00:00:00Z", "2024-01-01", "user", "error", "Speech"]),
)
_JSON = st.recursive(
    _LEAF,
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=6), inner, max_size=3)
    ),
    max_leaves=6,
)


def _paths(value, prefix=()):
    yield prefix
    if isinstance(value, dict):
        for key, item in value.items():
            yield from _paths(item, (*prefix, key))
    elif isinstance(value, list):
        for i, item in enumerate(value):
            yield from _paths(item, (*prefix, i))


def _mutate(document, data) -> object:
    for _ in range(data.draw(st.integers(1, 4))):
        paths = [p for p in _paths(document) if p]
        if not paths:
            break
        path = data.draw(st.sampled_from(paths))
        parent = document
        for key in path[:-1]:
            parent = parent[key]
        action = data.draw(st.sampled_from(["replace", "delete", "wrap"]))
        if action == "delete" and isinstance(parent, dict):
            del parent[path[-1]]
        elif action == "wrap":
            parent[path[-1]] = [parent[path[-1]]]
        else:
            parent[path[-1]] = data.draw(_JSON)
    return document


def _check(importer, write, data) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        source = write(Path(tmp), data)
        out = Path(tmp) / "out.jsonl"
        summary = importer([source], out)
        assert summary.read == summary.imported + summary.skipped
        assert summary.read >= 1
        assert read_traces(out).height == summary.turns  # raises on any invalid record


def _jsonl(name: str, fixture: Path):
    lines = [json.loads(line) for line in fixture.read_text().splitlines()]

    def write(tmp: Path, data) -> Path:
        mutated = [_mutate(line, data) for line in lines]
        path = tmp / name
        path.write_text("\n".join(json.dumps(v) for v in mutated) + "\n")
        return path

    return write


def _json(name: str, fixture: Path):
    document = json.loads(fixture.read_text())

    def write(tmp: Path, data) -> Path:
        path = tmp / name
        path.write_text(json.dumps(_mutate(json.loads(json.dumps(document)), data)))
        return path

    return write


SETTINGS = settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@SETTINGS
@given(st.data())
def test_homeassistant_never_crashes(data):
    _check(
        import_homeassistant, _jsonl("runs.jsonl", FIXTURES / "homeassistant" / "runs.jsonl"), data
    )


@SETTINGS
@given(st.data())
def test_homeassistant_debug_file_never_crashes(data):
    fixture = FIXTURES / "homeassistant" / "01HX0WAKEWORDNOMATCH.json"
    _check(import_homeassistant, _json("run.json", fixture), data)


@SETTINGS
@given(st.data())
def test_rasa_tracker_never_crashes(data):
    _check(import_rasa, _json("t.json", FIXTURES / "rasa" / "fallbacks.json"), data)


@SETTINGS
@given(st.data())
def test_rasa_event_log_never_crashes(data):
    _check(import_rasa, _jsonl("rasa_event.log", FIXTURES / "rasa" / "rasa_event.log"), data)


@SETTINGS
@given(st.data())
def test_lex_never_crashes(data):
    _check(import_lex, _jsonl("log.jsonl", FIXTURES / "lex" / "speech_session.jsonl"), data)


def test_deep_nesting_and_binary_files_are_skipped_units(tmp_path):
    deep = "[" * 100_000 + "]" * 100_000
    (tmp_path / "deep.json").write_text(deep)
    (tmp_path / "deep.jsonl").write_text(deep + "\n")
    (tmp_path / "binary.json").write_bytes(b"\xff\xfe\x00garbage")
    for importer in (import_homeassistant, import_rasa, import_lex):
        summary = importer([tmp_path], tmp_path / "out.jsonl.gz")
        assert (summary.read, summary.imported, summary.skipped) == (3, 0, 3)
        reasons = sorted(r for _, r in summary.reasons)
        assert reasons.count("JSON nested too deeply") == 2
        (tmp_path / "out.jsonl.gz").unlink()
