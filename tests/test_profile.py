"""The training profile: bins and codes, the stored sample, JSON round trip, bundles."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import polars as pl
import pytest

from fpi.errors import ModelError
from fpi.profile import (
    MISSING_CODE,
    OUTSIDE_CODE,
    PROFILE_FILE,
    BinnedSample,
    Profile,
    build_profile,
    load_profile,
)


def _frame(n: int = 400, seed: int = 0) -> pl.DataFrame:
    rng = np.random.default_rng(seed)
    confidence = rng.uniform(0.2, 0.9, n)
    confidence[::10] = np.nan
    return pl.DataFrame(
        {
            "turn_id": [f"t{i}" for i in range(n)],
            "asr__confidence": confidence,
            "asr__empty_text": rng.integers(0, 2, n).astype(float),
            "nlu__domain": rng.choice(["music", "weather", "timer"], n).tolist(),
        }
    ).with_columns(pl.col("asr__confidence").fill_nan(None))


def test_codes_separate_missing_outside_and_bins():
    profile = build_profile(_frame())
    confidence, flag, domain = profile.features
    assert (confidence.name, confidence.stage, confidence.categorical) == (
        "asr__confidence",
        "asr",
        False,
    )
    assert confidence.missing_rate == pytest.approx(0.1)
    codes = confidence.codes(pl.Series([None, 0.0, 0.2, 0.55, 0.9, 2.0], dtype=pl.Float64))
    assert codes[0] == MISSING_CODE
    assert codes[1] == OUTSIDE_CODE  # below the training minimum
    assert codes[-1] == confidence.n_codes - 1  # above the maximum
    assert 2 <= codes[3] < confidence.n_codes - 1
    assert flag.edges == (0.0, 1.0)  # a 0/1 flag: two bins
    assert flag.codes(pl.Series([0.0, 1.0])).tolist() == [2, 3]
    assert set(domain.categories) == {"music", "weather", "timer"}
    assert domain.codes(pl.Series(["music", "news", None])).tolist()[1:] == [
        OUTSIDE_CODE,
        MISSING_CODE,
    ]
    for feature in profile.features:  # training counts cover every turn, on every code
        assert feature.counts.sum() == 400 and len(feature.counts) == feature.n_codes
        assert feature.counts[MISSING_CODE] == round(feature.missing_rate * 400)


def test_profile_round_trips_through_json(tmp_path):
    frame = _frame()
    profile = build_profile(
        frame,
        labels=["correct"] * 300 + ["asr"] * 100,
        confidence=np.linspace(0.3, 1.0, 50),
        dialogue_ids=[f"d{i // 3}" for i in range(400)],
        sample_turns=120,
    )
    assert profile.class_mix == {"asr": 100, "correct": 300}
    assert profile.confidence["turns"] == 50 and sum(profile.confidence["counts"]) == 50
    assert len(profile.sample) == 120 and profile.sample.codes.shape == (120, 3)
    profile.save(tmp_path)
    loaded = load_profile(tmp_path)
    assert loaded.fingerprint == profile.fingerprint
    assert np.array_equal(loaded.sample.codes, profile.sample.codes)
    assert np.array_equal(loaded.sample.groups, profile.sample.groups)
    for a, b in zip(loaded.features, profile.features, strict=True):
        assert np.array_equal(a.counts, b.counts) and a.edges == b.edges
    assert loaded.bin(frame).codes.tolist() == profile.bin(frame).codes.tolist()
    document = json.loads((tmp_path / PROFILE_FILE).read_text())
    assert document["profile_format"] == "fpi-profile/1"


def test_missing_and_broken_profiles(tmp_path):
    assert load_profile(tmp_path) is None
    (tmp_path / PROFILE_FILE).write_text('{"profile_format": "fpi-profile/1"}')
    with pytest.raises(ModelError, match="unreadable training profile"):
        load_profile(tmp_path)


def test_binning_a_frame_without_a_profiled_feature_fails_clearly():
    profile = build_profile(_frame())
    with pytest.raises(ModelError, match="nlu__domain"):
        profile.bin(_frame().drop("nlu__domain"))


def test_sample_packing_is_exact():
    rng = np.random.default_rng(1)
    sample = BinnedSample(rng.integers(0, 30, (57, 5)).astype(np.uint8), np.arange(57) % 9)
    back = BinnedSample.from_dict(json.loads(json.dumps(sample.to_dict())))
    assert np.array_equal(back.codes, sample.codes) and np.array_equal(back.groups, sample.groups)


def test_trained_bundles_carry_a_compact_profile(small_bundle, small_model_dir, small_traces):
    from fpi.model import load_bundle

    profile = small_bundle.profile
    assert isinstance(profile, Profile)
    assert profile.names == [f["name"] for f in small_bundle.metadata["features"]]
    assert profile.turns == small_bundle.metadata["training"]["split_turns"]["train"]
    assert sum(profile.class_mix.values()) == profile.turns
    assert profile.confidence["turns"] == small_bundle.metadata["training"]["split_turns"]["valid"]
    assert (small_model_dir / PROFILE_FILE).stat().st_size < 400_000
    assert load_bundle(small_model_dir).profile.fingerprint == profile.fingerprint


def test_old_bundles_without_a_profile_still_load(small_model_dir, tmp_path):
    from fpi.model import load_bundle

    old = shutil.copytree(small_model_dir, tmp_path / "old")
    (old / PROFILE_FILE).unlink()
    assert load_bundle(old).profile is None


def test_the_bundled_model_carries_a_profile():
    from fpi.model import default_model_dir, load_bundle

    assert load_bundle().profile is not None
    # it grows with the recipe's pipelines: at least COMPONENT_SAMPLE_TURNS stored turns each
    # (145 components: about 1.0 MB)
    assert (default_model_dir() / PROFILE_FILE).stat().st_size < 1_500_000


def _two_pipelines(n: int = 600) -> tuple[pl.DataFrame, list[str]]:
    a, b = _frame(n, seed=3), _frame(n, seed=4).with_columns(pl.col("asr__confidence") + 0.5)
    return pl.concat([a, b]), ["pipe-a"] * n + ["pipe-b"] * n


def test_components_round_trip_through_save_and_load(tmp_path):
    frame, components = _two_pipelines()
    profile = build_profile(frame, components=components, sample_turns=300)
    assert [c.name for c in profile.components] == ["pipe-a", "pipe-b"] and profile.is_mixture
    for component in profile.components:  # each component's counts, on the profile's bins
        assert component.turns == 600
        assert [len(c) for c in component.counts] == [f.n_codes for f in profile.features]
        assert all(c.sum() == 600 for c in component.counts)
    for j, feature in enumerate(profile.features):
        assert np.array_equal(sum(c.counts[j] for c in profile.components), feature.counts)
    sampled = np.bincount(profile.sample.components)
    assert sampled.tolist() == [150, 150]  # stratified, at least COMPONENT_SAMPLE_TURNS each
    profile.save(tmp_path)
    document = json.loads((tmp_path / PROFILE_FILE).read_text())
    assert document["profile_format"] == "fpi-profile/2"
    loaded = load_profile(tmp_path)
    assert np.array_equal(loaded.sample.components, profile.sample.components)
    assert np.array_equal(loaded.sample.codes, profile.sample.codes)
    for a, b in zip(loaded.components, profile.components, strict=True):
        assert (a.name, a.turns) == (b.name, b.turns)
        assert all(np.array_equal(x, y) for x, y in zip(a.counts, b.counts, strict=True))


def test_a_one_component_profile_is_written_as_before(tmp_path):
    frame = _frame()
    plain = build_profile(frame)
    named = build_profile(frame, components=["only"] * len(frame))
    assert not named.components and not named.is_mixture
    assert named.document == plain.document
    assert len(plain.sample) == 400  # all of them: fewer than SAMPLE_TURNS
    document = json.loads(plain.document)
    assert document["profile_format"] == "fpi-profile/1"
    assert set(document) == {
        "profile_format", "fingerprint", "turns", "class_mix", "confidence", "features", "sample"
    }  # fmt: skip
    assert set(document["sample"]) == {"turns", "features", "codes", "groups"}


def test_old_profile_files_still_load(tmp_path):
    # written by the fpi-profile/1 code before components existed (60 turns, 3 features)
    shutil.copy(Path(__file__).parent / "fixtures" / "profile-v1.json", tmp_path / PROFILE_FILE)
    loaded = load_profile(tmp_path)
    assert loaded.components == () and loaded.sample.components is None and not loaded.is_mixture
    assert loaded.fingerprint == "afd16831b3d81b50" and loaded.turns == 60
    assert loaded.names == ["asr__confidence", "asr__empty_text", "nlu__domain"]
    assert len(loaded.sample) == 60 and loaded.class_mix == {"asr": 20, "correct": 40}


def test_mixture_documents_are_checked(tmp_path):
    frame, components = _two_pipelines(300)
    document = build_profile(frame, components=components).to_dict()
    broken = {**document, "components": {**document["components"], "names": ["pipe-a"]}}
    (tmp_path / PROFILE_FILE).write_text(json.dumps(broken))
    with pytest.raises(ModelError, match="unreadable training profile"):
        load_profile(tmp_path)
    # an fpi-profile/1 reader refuses an fpi-profile/2 document instead of misreading it
    assert document["profile_format"] != "fpi-profile/1"
    with pytest.raises(ValueError, match="component names for"):
        build_profile(frame, components=components[:-1])
