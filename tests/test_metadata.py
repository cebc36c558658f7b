"""Bundles that cannot hurt: every tampered bundle is a `ModelError` naming the file and the
fault, and LightGBM's loader is never handed a bundle that fails the checks."""

from __future__ import annotations

import json
import pickle
import re
import shutil
from pathlib import Path

import lightgbm
import numpy as np
import pytest
from typer.testing import CliRunner

from fpi.cli import app
from fpi.errors import ModelError
from fpi.metadata import METADATA_SCHEMA, check_metadata, model_sha256
from fpi.model import load_bundle


def _tree_sizes(text: str) -> str:
    start, end = text.find("\nTree=") + 1, text.find("end of trees")
    blocks = re.split(r"(?=^Tree=)", text[start:end], flags=re.M)
    sizes = " ".join(str(len(b)) for b in blocks if b)
    return re.sub(r"^tree_sizes=.*$", f"tree_sizes={sizes}", text, count=1, flags=re.M)


def _split_feature(value: str):
    """model.txt with the first tree's first split on feature `value`, tree_sizes and the
    recorded SHA-256 updated to match (so the deeper checks are what refuses it)."""

    def change(text: str) -> str:
        return _tree_sizes(
            re.sub(r"^split_feature=\d+", f"split_feature={value}", text, count=1, flags=re.M)
        )

    return change


def _mismatched_tree_sizes(text: str) -> str:
    return re.sub(
        r"^tree_sizes=(\d+)", lambda m: f"tree_sizes={int(m[1]) + 7}", text, count=1, flags=re.M
    )


def _shortened(metadata: dict) -> dict:
    entry = next(f for f in metadata["features"] if f["name"] == "nlu__domain")
    entry["categories"] = entry["categories"][:-1]
    return metadata


def _without_categorical(metadata: dict) -> dict:
    del metadata["features"][0]["categorical"]
    return metadata


#: name -> (change to model.txt text, change to metadata, what the message must say)
TAMPERED = {
    "truncated model.txt": (lambda t: t[: len(t) // 3], None, "truncated"),
    "split_feature=900000000": (_split_feature("900000000"), None, "split_feature 900000000"),
    "split_feature=99 (past the last feature)": (
        _split_feature("99"),
        None,
        "split_feature 99 is outside",
    ),
    "mismatched tree sizes": (_mismatched_tree_sizes, None, "tree_sizes"),
    "metadata as a list": (None, lambda m: [m], "must be a JSON object, not a list"),
    "no params": (None, lambda m: {k: v for k, v in m.items() if k != "params"}, "'params'"),
    "feature without categorical": (None, _without_categorical, "lacks 'categorical'"),
    "num_threads as a string": (
        None,
        lambda m: {**m, "params": {**m["params"], "num_threads": "2"}},
        "'num_threads' must be an integer, not a string",
    ),
    "seven classes": (None, lambda m: {**m, "classes": [*m["classes"], "tts"]}, "classes"),
    "shortened category list": (None, _shortened, "category code .* of nlu__domain"),
    "other objective": (
        None,
        lambda m: {**m, "params": {**m["params"], "objective": "multiclassova"}},
        "multiclassova",
    ),
    "multiclassova model": (
        lambda t: t.replace("objective=multiclass ", "objective=multiclassova ", 1),
        None,
        "multiclassova",
    ),
}


@pytest.fixture
def booster_calls(monkeypatch) -> list:
    """Every construction of a LightGBM Booster, recorded (and passed on)."""
    calls: list = []
    real = lightgbm.Booster

    def recording(*args, **kwargs):
        calls.append(kwargs)
        return real(*args, **kwargs)

    monkeypatch.setattr(lightgbm, "Booster", recording)
    return calls


def tampered_copy(source: Path, target: Path, model_change=None, metadata_change=None) -> Path:
    """A copy of the bundle with model.txt and/or metadata.json changed; the recorded SHA-256
    follows a model change (a careful tamperer), unless the metadata is itself replaced."""
    shutil.copytree(source, target)
    text = (source / "model.txt").read_text()
    metadata = json.loads((source / "metadata.json").read_text())
    if model_change is not None:
        text = model_change(text)
        (target / "model.txt").write_text(text)
        metadata["model_sha256"] = model_sha256(text) if text.isascii() else "0" * 64
    if metadata_change is not None:
        metadata = metadata_change(metadata)
    (target / "metadata.json").write_text(json.dumps(metadata))
    return target


def test_the_good_bundle_loads_through_lightgbm_once(small_model_dir, booster_calls):
    bundle = load_bundle(small_model_dir)
    assert len(booster_calls) == 1
    assert re.fullmatch(r"[0-9a-f]{64}", bundle.metadata["model_sha256"])


@pytest.mark.parametrize("case", list(TAMPERED))
def test_tampered_bundles_are_refused_before_lightgbm_sees_them(
    case, small_model_dir, tmp_path, booster_calls
):
    model_change, metadata_change, message = TAMPERED[case]
    bundle = tampered_copy(small_model_dir, tmp_path / "b", model_change, metadata_change)
    with pytest.raises(ModelError, match=message) as error:
        load_bundle(bundle)
    assert str(bundle) in str(error.value)
    assert booster_calls == []


def test_a_changed_model_fails_its_hash(small_model_dir, tmp_path, booster_calls):
    bundle = tmp_path / "b"
    shutil.copytree(small_model_dir, bundle)
    text = (bundle / "model.txt").read_text()
    (bundle / "model.txt").write_text(text.replace("shrinkage=1\n", "shrinkage=2\n", 1))
    with pytest.raises(ModelError, match=r"model\.txt: SHA-256 .* the file was changed"):
        load_bundle(bundle)
    assert booster_calls == []


def test_a_pickle_named_model_txt_never_runs(small_model_dir, tmp_path, booster_calls):
    bundle = tmp_path / "b"
    shutil.copytree(small_model_dir, bundle)
    (bundle / "model.txt").write_bytes(pickle.dumps(_Explosive()))
    with pytest.raises(ModelError, match=r"model\.txt: not a LightGBM text model"):
        load_bundle(bundle)
    assert booster_calls == []


class _Explosive:
    def __reduce__(self):
        return (pytest.fail, ("the pickle ran",))


def test_old_bundles_without_hash_or_calibration_still_load(small_model_dir, tmp_path):
    bundle = tampered_copy(
        small_model_dir,
        tmp_path / "old",
        metadata_change=lambda m: {
            k: v for k, v in m.items() if k not in ("model_sha256", "calibration")
        },
    )
    old = load_bundle(bundle)
    assert old.calibration.method == "none"
    rows = np.zeros((3, len(old.feature_names)))
    np.testing.assert_allclose(old.predict_proba(rows), old.booster.predict(rows), atol=1e-12)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda m: {**m, "bundle_format": "fpi-model/9"}, "not an fpi-model/1"),
        (lambda m: {**m, "model_sha256": "abc"}, "64 lowercase hex"),
        (lambda m: {**m, "params": {**m["params"], "num_threads": True}}, "integer, not true"),
        (lambda m: {**m, "params": {**m["params"], "num_threads": -1}}, ">= 0"),
        (lambda m: {**m, "features": m["features"][:-1]}, "missing from the model"),
        (lambda m: {**m, "calibration": {"method": "magic"}}, "calibration"),
        (lambda m: {**m, "training": None}, "'training' must be an object, not null"),
        (lambda m: _set_feature(m, "dtype", "int8"), "dtype"),
        (lambda m: _set_feature(m, "categories", ["b", "a", "c"]), "sorted"),
        (lambda m: _set_feature(m, "categories", ["a", 1]), "strings"),
        (lambda m: _set_feature(m, "used", "yes"), "'used' must be true or false"),
    ],
)
def test_metadata_that_breaks_the_schema_is_refused(small_model_dir, change, message):
    metadata = json.loads((small_model_dir / "metadata.json").read_text())
    with pytest.raises(ModelError, match=message):
        check_metadata(change(metadata), "metadata.json")


def _set_feature(metadata: dict, key: str, value) -> dict:
    metadata["features"][0][key] = value
    return metadata


def test_unreadable_metadata_is_named(small_model_dir, tmp_path, booster_calls):
    for name, content in [
        ("duplicate", '{"classes": [], "classes": []}'),
        ("binary", b"\xff\xfe{}"),
        ("nested", "[" * 100_000 + "]" * 100_000),
        ("truncated", '{"bundle_format": '),
    ]:
        bundle = tmp_path / name
        shutil.copytree(small_model_dir, bundle)
        path = bundle / "metadata.json"
        path.write_bytes(content if isinstance(content, bytes) else content.encode())
        with pytest.raises(ModelError, match=re.escape(str(path))):
            load_bundle(bundle)
    assert booster_calls == []


def test_the_schema_declares_every_top_level_key_written(small_model_dir):
    written = set(json.loads((small_model_dir / "metadata.json").read_text()))
    assert written <= {key.name for key in METADATA_SCHEMA}


def test_the_cli_says_what_is_wrong_and_exits_2(small_model_dir, small_dump, tmp_path):
    bundle = tampered_copy(small_model_dir, tmp_path / "b", _split_feature("99"))
    for command in ("triage", "evaluate"):
        result = CliRunner().invoke(app, [command, str(small_dump), "--model", str(bundle)])
        assert result.exit_code == 2, result.output
        assert "split_feature 99 is outside the model's" in result.output
        assert "Traceback" not in result.output
