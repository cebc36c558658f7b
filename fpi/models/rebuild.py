"""Rebuild the bundled default model: `python -m fpi.models.rebuild` (the whole recipe).

Trains on 100k domain-randomised simulated turns (`fpi.simulate.simulate_randomized`, seed
1: a freshly drawn pipeline every 2,000 turns, with its own failure rates, confidence
calibrations, logged fields, status meanings and user habits) with the default parameters;
the softmax is calibrated on the validation split, and the decision offsets are chosen there
on the calibrated probabilities. Writes the bundle (model.txt; metadata.json with the
calibration, the decision rule and the model's SHA-256; profile.json) into the package,
replacing the old one. Run it whenever the feature catalogue changes (a test fails until you
do).
"""

from __future__ import annotations

import os

# OpenMP threads that spin while waiting make LightGBM many times slower on a shared, loaded
# machine (measured: 5x); must be set before LightGBM loads.
os.environ.setdefault("OMP_WAIT_POLICY", "passive")

import time
from pathlib import Path

from fpi.model import ModelBundle, default_model_dir, train
from fpi.simulate import BLOCK_TURNS, simulate_randomized

BUNDLED_TURNS = 100_000
BUNDLED_SEED = 1


def train_bundled(turns: int = BUNDLED_TURNS, *, seed: int = BUNDLED_SEED) -> ModelBundle:
    """The bundled model's recipe on `turns` randomised turns (not saved)."""
    traces = simulate_randomized(turns, seed=seed, block_turns=BLOCK_TURNS)
    bundle = train(traces, seed=0)
    bundle.metadata["training"]["recipe"] = (
        f"fpi.simulate.simulate_randomized({turns}, seed={seed}, block_turns={BLOCK_TURNS})"
    )
    return bundle


def rebuild(out_dir: Path | None = None) -> ModelBundle:
    bundle = train_bundled()
    bundle.save(out_dir if out_dir is not None else default_model_dir())
    return bundle


if __name__ == "__main__":
    started = time.perf_counter()
    model = rebuild()
    print(f"calibration: {model.calibration.method} (chosen on valid)")
    for split, metrics in model.metadata["metrics"].items():
        print(
            f"{split}: accuracy {metrics['accuracy']:.4f}, macro-F1 {metrics['macro_f1']:.4f}, "
            f"ECE {metrics['ece_uncalibrated']:.4f} uncalibrated -> {metrics['ece']:.4f}"
        )
    print(f"rebuilt in {time.perf_counter() - started:.0f} s")
