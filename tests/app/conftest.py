"""A tiny runs folder for the app tests: a 2-epoch digits teacher and 1-epoch ce/kd/fcfd
students, laid out like the real defaults (``RUNS/defaults/{teacher,ce,kd,fcfd}``)."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

APP = Path(__file__).resolve().parents[2] / "app"


def build_runs(root: Path) -> Path:
    """Train the tiny runs into ``root`` (a resnet8 teacher on 10% of digits, 1 epoch each)."""
    from fcfd_viz.defaults import default_configs, default_paths
    from fcfd_viz.pipeline import replace, run_experiment

    paths = default_paths(root)
    cfgs = default_configs(root, epochs=1)
    cfgs["teacher"] = replace(cfgs["teacher"], student="resnet8", data={"subset": 0.1})
    for key, cfg in cfgs.items():
        cfg = replace(cfg, train={"device": "cpu"})
        run_experiment(cfg, paths[key], progress=False)
    return root


@pytest.fixture(scope="session")
def runs_root(tmp_path_factory) -> Path:
    """The shared tiny runs folder (read-only for tests: copy it before changing it)."""
    return build_runs(tmp_path_factory.mktemp("app-runs"))


@pytest.fixture
def runs_copy(runs_root, tmp_path) -> Path:
    """A private copy of the tiny runs folder a test may change."""
    dst = tmp_path / "runs"
    shutil.copytree(runs_root, dst, ignore=shutil.ignore_patterns(".jobs", ".lock"))
    return dst


@pytest.fixture
def app_env(monkeypatch, runs_root) -> Path:
    """Point the app at the shared runs folder."""
    monkeypatch.setenv("FCFD_RUNS_DIR", str(runs_root))
    return runs_root
