"""Packaging facts users rely on: install metadata, environment.yml, import seams."""

from __future__ import annotations

import importlib
import re
import subprocess
import sys
from pathlib import Path

import pytest
import tomllib
import yaml

ROOT = Path(__file__).resolve().parents[1]
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())


def test_environment_yml_installs_this_project_with_a_supported_python():
    env = yaml.safe_load((ROOT / "environment.yml").read_text())
    deps = env["dependencies"]
    python = next(d for d in deps if isinstance(d, str) and d.startswith("python="))
    major, minor = map(int, python.split("=")[1].split(".")[:2])
    required = re.match(r">=(\d+)\.(\d+)", PYPROJECT["project"]["requires-python"]).groups()
    assert (major, minor) >= tuple(map(int, required))
    pip = next(d["pip"] for d in deps if isinstance(d, dict) and "pip" in d)
    # the conda env installs the project itself, so its dependencies can never drift from pyproject's
    assert any(re.fullmatch(r'-e\s+"?\.\[dev\]"?', p) for p in pip), pip
    assert "pip" in deps


def test_runtime_dependencies_are_ranges_not_pins():
    deps = PYPROJECT["project"]["dependencies"]
    names = {re.split(r"[<>=!~ \[]", d, maxsplit=1)[0].lower() for d in deps}
    needed = {
        "torch",
        "torchvision",
        "numpy",
        "scikit-learn",
        "scipy",
        "plotly",
        "streamlit",
        "captum",
        "ipywidgets",
        "jupyterlab",
        "tqdm",
        "pyyaml",
        "psutil",
        "filelock",
        "tensorboard",
    }
    assert needed <= names, needed - names
    assert not [d for d in deps if "==" in d], "no exact pins in runtime dependencies"


def test_console_script_and_module_entry_point():
    assert PYPROJECT["project"]["scripts"]["fcfd"] == "fcfd_viz.cli:main"
    out = subprocess.run(
        [sys.executable, "-m", "fcfd_viz", "--version"], capture_output=True, text=True, check=True
    )
    assert out.stdout.startswith("fcfd-viz ")


def test_library_never_imports_streamlit_or_ipywidgets():
    offenders = [
        str(p.relative_to(ROOT))
        for p in (ROOT / "fcfd_viz").rglob("*.py")
        if re.search(r"^\s*(import|from)\s+(streamlit|ipywidgets)\b", p.read_text(), flags=re.M)
    ]
    assert offenders == []


def test_presets_ship_as_package_data():
    data = PYPROJECT["tool"]["setuptools"]["package-data"]
    assert "presets/*.yaml" in data["fcfd_viz.experiments"]
    assert "presets/detection/*.yaml" in data["fcfd_viz.experiments"]
    assert list((ROOT / "fcfd_viz" / "experiments" / "presets").glob("*.yaml"))


# The public imports that predate the layout by layer (#28): README, docs/library.md and
# notebooks use these names, so the move into subpackages must not have changed them
PUBLIC = {
    "fcfd_viz.models": ["StagedNet", "create", "names", "register", "stage"],
    "fcfd_viz.distill": ["Distiller", "FCFD", "KD", "DKD", "FitNet", "CE", "create", "register"],
    "fcfd_viz.analysis": ["Anisotropy", "FunctionalGap", "FitConfig", "Attribution", "gap_report"],
}


@pytest.mark.parametrize("module", sorted(PUBLIC))
def test_public_imports_of_before_the_layout_still_work(module):
    mod = importlib.import_module(module)
    missing = [n for n in PUBLIC[module] if not hasattr(mod, n)]
    assert not missing, f"{module} lost {missing}"
    assert set(PUBLIC[module]) <= set(mod.__all__)  # exported, not only reachable
