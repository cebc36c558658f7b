"""`fpi.explain.shap_explanation`: fpi's exact values in shap's own object and plots."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt
import numpy as np
import polars as pl
import shap

from fpi.explain import shap_explanation
from fpi.featurize import extract_features


def test_values_are_the_predicted_class_block_of_pred_contrib(small_traces, small_bundle):
    dialogues = small_traces.get_column("dialogue_id").unique(maintain_order=True).head(40)
    traces = small_traces.filter(pl.col("dialogue_id").is_in(dialogues.to_list()))
    explanation = shap_explanation(traces, small_bundle)
    matrix = small_bundle.matrix(extract_features(traces))
    n, width = matrix.shape
    contrib = small_bundle.booster.predict(matrix, pred_contrib=True).reshape(n, -1, width + 1)
    predicted = np.argmax(small_bundle.predict_proba(matrix), axis=1)
    expected = contrib[np.arange(n), predicted]
    assert explanation.values.shape == (n, width)
    np.testing.assert_allclose(explanation.values, expected[:, :-1], atol=1e-9)
    np.testing.assert_allclose(explanation.base_values, expected[:, -1], atol=1e-9)
    assert list(explanation.feature_names) == small_bundle.feature_names
    assert list(explanation.instance_names) == traces["turn_id"].to_list()
    categorical = [f["name"] for f in small_bundle.metadata["features"] if f["categorical"]]
    j = small_bundle.feature_names.index(categorical[0])
    values = {v for v in explanation.data[:, j] if v is not None}
    assert values and all(isinstance(v, str) for v in values)  # names, not codes


def test_shap_plots_draw_it(small_traces, small_bundle):
    explanation = shap_explanation(small_traces.head(50), small_bundle)
    for draw in (
        lambda: shap.plots.waterfall(explanation[0], show=False),
        lambda: shap.plots.beeswarm(explanation, show=False),
        lambda: shap.plots.bar(explanation, show=False),
    ):
        draw()
        assert plt.gcf().axes
        plt.close("all")


def test_no_turns_gives_an_empty_explanation(small_traces, small_bundle):
    assert shap_explanation(small_traces.head(0), small_bundle).values.shape[0] == 0
