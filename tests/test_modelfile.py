"""`fpi.modelfile`: LightGBM's text format read by our own code, and every kind of damage
refused with a `ModelError` before LightGBM or a compiled kernel could misread it."""

from __future__ import annotations

import re

import lightgbm as lgb
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from fpi.errors import ModelError
from fpi.fastpredict import FastPredictor
from fpi.fastshap import FastExplainer
from fpi.modelfile import parse_model_text, read_model_file


def _booster() -> lgb.Booster:
    rng = np.random.default_rng(0)
    X = rng.normal(size=(600, 4))
    X[:, 3] = rng.integers(0, 40, 600)
    X[rng.random(X.shape) < 0.1] = np.nan
    y = ((np.nan_to_num(X[:, 0]) > 0) + (X[:, 3] % 3 == 0) + rng.integers(0, 2, 600)) % 3
    params = {"objective": "multiclass", "num_class": 3, "num_leaves": 6, "min_data_in_leaf": 5,
              "max_cat_to_onehot": 2, "cat_smooth": 1.0, "verbosity": -1}  # fmt: skip
    return lgb.train(params, lgb.Dataset(X, y, categorical_feature=[3]), 3)


BOOSTER = _booster()
TEXT = BOOSTER.model_to_string()
ROWS = np.random.default_rng(1).normal(size=(50, 4))
ROWS[:, 3] = np.arange(50) % 45


def test_a_lightgbm_model_parses_to_its_own_trees():
    model = parse_model_text(TEXT, "m")
    dumped = BOOSTER.dump_model()["tree_info"]
    assert len(model.trees) == len(dumped) == 9
    assert model.num_tree_per_iteration == model.num_class == 3
    assert model.num_features == 4 and model.objective == "multiclass"
    assert [t.num_leaves for t in model.trees] == [t["num_leaves"] for t in dumped]
    assert any(len(t.cat_boundaries) for t in model.trees)
    raw = FastPredictor(FastExplainer(model)).raw_scores(ROWS)
    assert np.array_equal(raw, BOOSTER.predict(ROWS, raw_score=True))


def resized(text: str) -> str:
    """`text` with tree_sizes made to match its trees again (as a careful tamperer would)."""
    start, end = text.find("\nTree=") + 1, text.find("end of trees")
    if start <= 0 or end < 0:
        return text
    blocks = re.split(r"(?=^Tree=)", text[start:end], flags=re.M)
    sizes = " ".join(str(len(b)) for b in blocks if b)
    return re.sub(r"^tree_sizes=.*$", f"tree_sizes={sizes}", text, count=1, flags=re.M)


def _first(key: str) -> tuple[int, int]:
    """The span of the value of the first `key=` line."""
    match = re.search(rf"^{key}=(.*)$", TEXT, flags=re.M)
    assert match, key
    return match.span(1)


def _replace(key: str, value: str) -> str:
    start, end = _first(key)
    return TEXT[:start] + value + TEXT[end:]


def _tree_value(key: str) -> list[str]:
    start, end = _first(key)
    return TEXT[start:end].split()


def _with_tokens(key: str, change) -> str:
    tokens = _tree_value(key)
    change(tokens)
    return resized(_replace(key, " ".join(tokens)))


def _set(index: int, value: str):
    def change(tokens: list[str]) -> None:
        tokens[index] = value

    return change


DAMAGE = [
    (TEXT[: len(TEXT) // 2], "truncated"),
    (TEXT[: TEXT.index("end of trees")], "truncated"),
    ("", "truncated"),
    (TEXT.replace("tree\n", "forest\n", 1), "truncated"),
    (_with_tokens("split_feature", _set(0, "900000000")), "split_feature 900000000"),
    (_with_tokens("split_feature", _set(0, "-1")), "split_feature -1"),
    (_with_tokens("split_feature", _set(0, "1e1")), "not a list of integers"),
    (_with_tokens("split_feature", lambda t: t.pop()), "split_feature has"),
    (_with_tokens("leaf_value", _set(0, "nan")), "leaf value"),
    (_with_tokens("leaf_value", _set(0, "0x10")), "not a list of numbers"),
    (_with_tokens("threshold", _set(0, "nan")), "threshold is NaN"),
    (_with_tokens("decision_type", _set(0, "16")), "decision_type"),
    (_with_tokens("decision_type", _set(0, "12")), "decision_type"),
    (_with_tokens("left_child", _set(0, "-99")), "left_child -99"),
    (_with_tokens("left_child", _set(0, "0")), "left_child 0"),
    (_with_tokens("right_child", _set(0, "4")), "child of two splits"),
    (_with_tokens("right_child", _set(1, "1")), "right_child 1"),
    (_with_tokens("internal_count", _set(0, "1")), "internal_count"),
    (_with_tokens("leaf_count", _set(0, "-5")), "count"),
    (_replace("tree_sizes", " ".join(_tree_value("tree_sizes")[::-1])), "tree_sizes|start"),
    (TEXT.replace("split_feature=", "split_feature=1", 1), "tree_sizes add up"),
    (_replace("max_feature_idx", "9"), "feature_names has 4 entries for 10"),
    (_replace("num_tree_per_iteration", "2"), "differs from num_class=3"),
    (resized(TEXT[: TEXT.index("Tree=8")] + "end of trees\n"), "whole number of iterations"),
    (_replace("num_class", "x"), "integer"),
    (_replace("version", "v9"), "version"),
    (TEXT.replace("objective=", "objective_x=", 1), "unknown header key"),
    (resized(TEXT.replace("num_leaves=", "num_leaves=6\nnum_leaves=", 1)), "given twice"),
    (resized(TEXT.replace("is_linear=0", "is_linear=1", 1)), "linear"),
    (resized(TEXT.replace("shrinkage=", "shrink=", 1)), "unknown key"),
    (TEXT.replace("pandas_categorical:null", "pandas_categorical:[{"), "JSON"),
    (TEXT + "surprise\n", "after the trees"),
    ("tree\n\u00e9\n", "non-ASCII"),
]


@pytest.mark.parametrize(("text", "message"), DAMAGE, ids=[m for _, m in DAMAGE])
def test_damage_is_refused_with_what_is_wrong(text, message):
    with pytest.raises(ModelError, match=message):
        parse_model_text(text, "m")


def test_category_bitsets_are_checked():
    tree = next(
        block for block in TEXT.split("\nTree=")[1:] if "num_cat=0" not in block
    )  # a tree with a categorical split
    head = TEXT[: TEXT.index("\nTree=") + 1]
    for old, new, message in [
        ("cat_boundaries=0 ", "cat_boundaries=1 ", "cat_boundaries"),
        ("cat_threshold=", "cat_threshold=4294967296 ", "32-bit"),
        ("num_cat=1", "num_cat=2", "num_cat"),
    ]:
        assert old in tree, old
        damaged = resized(TEXT.replace("Tree=" + tree, "Tree=" + tree.replace(old, new, 1), 1))
        with pytest.raises(ModelError, match=message):
            parse_model_text(damaged, "m")
    assert head.startswith("tree\n")


def test_binary_files_are_refused_by_name(tmp_path):
    import pickle

    path = tmp_path / "model.txt"
    path.write_bytes(pickle.dumps({"not": "a model"}))
    with pytest.raises(ModelError, match=rf"{re.escape(str(path))}: not a LightGBM text model"):
        read_model_file(path)


#: Tokens that break LightGBM's loader when it trusts them: out-of-range indices, wrong
#: signs, huge or odd numbers.
NASTY = ["0", "1", "-1", "2", "-2", "3", "7", "-7", "64", "900000000", "-900000000",
         "2147483648", "nan", "inf", "-inf", "1e308", "0.5", "", "x", "1 2"]  # fmt: skip
LINES = TEXT.splitlines(keepends=True)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    st.lists(
        st.tuples(st.integers(0, len(LINES) - 1), st.integers(0, 40), st.sampled_from(NASTY)),
        min_size=1,
        max_size=3,
    ),
    st.booleans(),
    st.booleans(),
)
def test_any_damage_is_refused_or_harmless_to_lightgbm(edits, drop_a_line, resize):
    """Change tokens (or drop a line, and maybe fix tree_sizes after): the text is refused
    with a ModelError, or it is a forest on which LightGBM's loader and predictions agree
    with our own reading of it."""
    lines = list(LINES)
    for line, token, value in edits:
        key, sep, rest = lines[line].partition("=")
        tokens = rest.split()
        if sep and tokens:
            tokens[token % len(tokens)] = value
            lines[line] = f"{key}={' '.join(tokens)}\n"
    if drop_a_line:
        del lines[edits[0][0]]
    text = resized("".join(lines)) if resize else "".join(lines)
    try:
        model = parse_model_text(text, "m")
    except ModelError:
        return
    booster = lgb.Booster(model_str=text)
    raw = FastPredictor(FastExplainer(model)).raw_scores(ROWS)
    np.testing.assert_array_equal(raw, booster.predict(ROWS, raw_score=True))
