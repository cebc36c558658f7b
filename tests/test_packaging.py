"""The package ships everything a plain `pip install .` needs, and the code stays ruff clean."""

import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def _declared_packages() -> dict[str, Path]:
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]
    mapping = config["package-dir"]
    return {name: ROOT / mapping.get(name, name.replace(".", "/")) for name in config["packages"]}


def test_every_python_package_is_declared():
    declared = {path.resolve() for path in _declared_packages().values()}
    on_disk = {p.parent.resolve() for p in (ROOT / "fpi").rglob("__init__.py")}
    on_disk |= {(ROOT / "features").resolve()}
    assert on_disk == declared


def test_features_install_as_fpi_features_not_a_top_level_package():
    packages = _declared_packages()
    assert packages["fpi.features"] == ROOT / "features"
    assert "features" not in packages


def test_bundled_model_is_package_data():
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]
    patterns = config["package-data"]["fpi.models"]
    default = ROOT / "fpi" / "models" / "default"
    shipped = {p.name for pattern in patterns for p in default.parent.glob(pattern)}
    assert shipped == {"model.txt", "metadata.json", "profile.json"}


def test_no_pickle_anywhere():
    offenders = [
        p
        for p in [*ROOT.joinpath("fpi").rglob("*.py"), *ROOT.joinpath("features").rglob("*.py")]
        if "import pickle" in p.read_text() or "joblib" in p.read_text()
    ]
    assert offenders == []


@pytest.mark.skipif(shutil.which("ruff") is None, reason="ruff is a test extra")
def test_ruff_is_clean():
    result = subprocess.run(
        [sys.executable, "-m", "ruff", "check", "fpi", "features", "tests", "benchmarks"],
        cwd=ROOT,
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_help_does_not_import_heavy_libraries():
    code = (
        "import sys, fpi.cli; "
        "heavy = [m for m in ('polars', 'lightgbm', 'shap', 'matplotlib', 'numba') "
        "if m in sys.modules]; print(heavy)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
