"""The Home page's two demo builds (AppTest, real job records): the first launch's digits
runs and, beside them, the paper's setting (100 classes), built only when its button is
pressed."""

from __future__ import annotations

import os
import signal

from helpers import open_page, rerun

from fcfd_viz.experiments.demo import DIGITS, PAIRS
from fcfd_viz.jobs import demo_build
from fcfd_viz.jobs.records import job_record


def test_home_offers_both_demos_and_the_first_launch_starts_neither(tmp_path, monkeypatch):
    root = tmp_path / "empty"
    monkeypatch.setenv("FCFD_RUNS_DIR", str(root))
    at = open_page()
    digits, pairs = at.button(key="build_digits"), at.button(key="build_pairs")
    assert [b.key for b in at.button][:2] == ["build_digits", "build_pairs"]
    # the button texts are the library's, the measured time stated (or said to be missing)
    assert digits.label == DIGITS.build_label and DIGITS.measured_build in digits.label
    assert pairs.label == PAIRS.build_label
    assert pairs.label == "Build the paper's setting (100 classes) (build time not yet measured)"
    assert any("Second demo: the paper's setting" in m.value for m in at.markdown)
    assert job_record(root, PAIRS.folder) is None and job_record(root, DIGITS.folder) is None
    assert not (root / PAIRS.folder).exists()


def test_home_with_the_digits_runs_offers_pairs_without_starting_it(app_env):
    at = open_page()
    assert len(at.metric) == 4  # the digits runs are there
    assert at.button(key="build_pairs").label == PAIRS.build_label
    assert not demo_build.building(app_env, PAIRS) and job_record(app_env, PAIRS.folder) is None


def test_the_pairs_button_starts_the_pairs_build_and_watches_it(runs_copy, monkeypatch):
    monkeypatch.setenv("FCFD_RUNS_DIR", str(runs_copy))
    at = open_page()
    at.button(key="build_pairs").click()
    rec = None
    try:
        rerun(at)
        rec = job_record(runs_copy, PAIRS.folder)
        assert rec is not None, [e.value for e in at.error]
        cmd = rec["cmd"]
        assert cmd[cmd.index("--demo") + 1] == "pairs" and "defaults" in cmd
        assert job_record(runs_copy, DIGITS.folder) is None  # only the demo asked for
        assert demo_build.building(runs_copy, PAIRS)
        # the page watches it: a progress bar instead of the button, a second click impossible
        assert len(at.get("progress")) == 1
        assert not [b for b in at.button if b.key == "build_pairs"]
        assert not demo_build.start_defaults(runs_copy, PAIRS)  # already building
    finally:
        if rec is not None:  # the build takes tens of minutes: stop the process it started
            os.killpg(rec["pid"], signal.SIGTERM)
            os.waitpid(rec["pid"], 0)
