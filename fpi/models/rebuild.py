"""Rebuild the bundled default model: `python -m fpi.models.rebuild`.

Trains on 100k simulated `base` turns (seed 1) with the default parameters, calibrates on the
validation split and writes the bundle (model.txt, metadata.json with the calibration and the
model's SHA-256) into the package, replacing the old one. Run it whenever the feature
catalogue changes (a test fails until you do).
"""

from __future__ import annotations

from pathlib import Path

from fpi.model import ModelBundle, default_model_dir, train
from fpi.simulate import simulate

BUNDLED_TURNS = 100_000
BUNDLED_SEED = 1


def rebuild(out_dir: Path | None = None) -> ModelBundle:
    traces = simulate(BUNDLED_TURNS, seed=BUNDLED_SEED, scenario="base")
    bundle = train(traces, seed=0)
    bundle.save(out_dir if out_dir is not None else default_model_dir())
    return bundle


if __name__ == "__main__":
    model = rebuild()
    print(f"calibration: {model.calibration.method} (chosen on valid)")
    for split, metrics in model.metadata["metrics"].items():
        print(
            f"{split}: accuracy {metrics['accuracy']:.4f}, macro-F1 {metrics['macro_f1']:.4f}, "
            f"ECE {metrics['ece_uncalibrated']:.4f} uncalibrated -> {metrics['ece']:.4f}"
        )
