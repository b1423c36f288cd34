"""The app tests' views of the tiny runs folder (``runs_root``, tests/conftest.py): a private
copy a test may change, and the environment pointing the app at it."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

APP = Path(__file__).resolve().parents[2] / "app"


@pytest.fixture
def runs_copy(runs_root, tmp_path) -> Path:
    """A private copy of the tiny runs folder a test may change; its students record the
    copy's teacher."""
    dst = tmp_path / "runs"
    shutil.copytree(runs_root, dst, ignore=shutil.ignore_patterns(".jobs", ".lock"))
    for config in dst.glob("defaults/*/config.json"):
        d = json.loads(config.read_text())
        if d.get("teacher"):
            d["teacher"] = d["teacher"].replace(str(runs_root), str(dst))
            config.write_text(json.dumps(d, indent=2, sort_keys=True))
    return dst


@pytest.fixture
def app_env(monkeypatch, runs_root) -> Path:
    """Point the app at the shared runs folder."""
    monkeypatch.setenv("FCFD_RUNS_DIR", str(runs_root))
    return runs_root
