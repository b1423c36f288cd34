"""The app tests' views of the tiny runs folder (``runs_root``, tests/conftest.py): a private
copy a test may change, and the environment pointing the app at it."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import torch

APP = Path(__file__).resolve().parents[2] / "app"


def copy_runs(src: Path, dst: Path) -> Path:
    """Copy the runs folder ``src`` to ``dst``; its students record the copy's teacher."""
    shutil.copytree(src, dst, ignore=shutil.ignore_patterns(".jobs", ".lock"))
    for config in dst.glob("defaults/*/config.json"):
        d = json.loads(config.read_text())
        if d.get("teacher"):
            d["teacher"] = d["teacher"].replace(str(src), str(dst))
            config.write_text(json.dumps(d, indent=2, sort_keys=True))
    return dst


@pytest.fixture
def runs_copy(runs_root, tmp_path) -> Path:
    """A private copy of the tiny runs folder a test may change."""
    return copy_runs(runs_root, tmp_path / "runs")


GAP_FIT_EPOCHS = 10  # what the tests' app sessions get as $FCFD_GAP_FIT_EPOCHS


@pytest.fixture(scope="session")
def gap_runs(runs_root, tmp_path_factory) -> Path:
    """A copy of the tiny runs folder as ``fcfd defaults`` leaves it: with the Functional gap
    page's default results (every default student, both BN regimes, 10-epoch fits) in
    ``.cache``. Read-only: the kept results are keyed by the checkpoints' absolute paths, so a
    copy of this folder would not find them."""
    from fcfd_viz.experiments.demo_gap import ensure_default_gap

    dst = copy_runs(runs_root, tmp_path_factory.mktemp("gap-runs") / "runs")
    before = torch.get_num_threads()
    torch.set_num_threads(1)  # tiny nets: a second thread only waits on a busy machine
    try:
        ensure_default_gap(dst, epochs=GAP_FIT_EPOCHS)
    finally:
        torch.set_num_threads(before)
    return dst


@pytest.fixture
def app_env(monkeypatch, runs_root) -> Path:
    """Point the app at the shared runs folder."""
    monkeypatch.setenv("FCFD_RUNS_DIR", str(runs_root))
    return runs_root
