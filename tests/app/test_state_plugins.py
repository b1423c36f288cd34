"""The app loads the user's model modules at start-up as the CLI does (``FCFD_IMPORT``, which
``fcfd --import M app`` sets); one that fails is a one-line error on the Home page."""

from __future__ import annotations

from helpers import APP_DIR, fresh_state
from streamlit.testing.v1 import AppTest

from fcfd_viz import models


def test_the_app_registers_the_modules_fcfd_import_names(model_module, monkeypatch):
    model_module("user_app_nets", "user_app_tiny")
    monkeypatch.setenv("FCFD_IMPORT", "user_app_nets")
    state = fresh_state(monkeypatch)
    assert state.PLUGIN_ERROR is None
    assert "user_app_tiny" in models.names()


def test_home_shows_a_module_that_fails(model_module, monkeypatch, tmp_path):
    model_module("user_app_bad", source="raise RuntimeError('broken on purpose')\n")
    monkeypatch.setenv("FCFD_IMPORT", "user_app_bad")
    monkeypatch.setenv("FCFD_RUNS_DIR", str(tmp_path / "runs"))
    fresh_state(monkeypatch)
    at = AppTest.from_file(str(APP_DIR / "main.py"), default_timeout=120)
    at.run()
    assert not at.exception
    errors = [e.value for e in at.error]
    assert errors == ["cannot import model module 'user_app_bad': RuntimeError: broken on purpose"]
