"""The default runs every app page shows (fcfd_viz.experiments.demo) and ``fcfd defaults``."""

from __future__ import annotations

import subprocess
import sys
import threading
import time

from fcfd_viz.experiments import demo as defaults
from fcfd_viz.io.locks import file_lock
from fcfd_viz.jobs import demo_build
from fcfd_viz.runs.layout import Run

_default_configs = defaults.default_configs


def tiny_configs(runs_dir, epochs=None, demo=defaults.DIGITS):
    from fcfd_viz.experiments.experiment import replace

    cfgs = _default_configs(runs_dir, epochs=1, demo=demo)
    cfgs["teacher"] = replace(cfgs["teacher"], student="resnet8", data={"subset": 0.1})
    return {k: replace(c, train={"device": "cpu"}) for k, c in cfgs.items()}


def test_ensure_defaults_reports_progress_and_is_instant_later(tmp_path, monkeypatch):
    monkeypatch.setattr(defaults, "default_configs", tiny_configs)
    seen = []
    paths = defaults.ensure_defaults(tmp_path, progress=lambda f, m: seen.append((f, m)))
    fractions = [f for f, _ in seen]
    assert fractions == sorted(fractions) and fractions[-1] == 1.0
    assert any(m.startswith("fcfd: epoch 1/1") for _, m in seen)
    students = {f"{m}{s}" for m in ("ce", "kd", "fcfd") for s in ("", "-s1", "-s2")}
    assert defaults.defaults_ready(tmp_path) and set(paths) == {"teacher", *students}
    assert Run(paths["kd"]).config()["teacher"] == str(paths["teacher"].resolve())
    # seeds 0, 1, 2 of each method: paired (same seed, same subset), built seed by seed
    assert [Run(paths[f"kd{s}"]).config()["train"]["seed"] for s in ("", "-s1", "-s2")] == [0, 1, 2]
    assert list(paths)[:4] == ["teacher", "ce", "kd", "fcfd"]
    groups = defaults.default_groups(tmp_path)
    assert list(groups) == ["teacher", "ce", "kd", "fcfd"] and len(groups["fcfd"]) == 3
    assert defaults.defaults_progress(tmp_path)["fraction"] == 1.0
    t0 = time.perf_counter()
    seen.clear()
    defaults.ensure_defaults(tmp_path, progress=lambda f, m: seen.append((f, m)))
    assert time.perf_counter() - t0 < 1.0 and len(seen) == 1
    # a phase that follows (fcfd defaults' gap): the runs report into [0, share], not done
    seen.clear()
    defaults.ensure_defaults(tmp_path, progress=lambda f, m: seen.append((f, m)), share=0.4)
    assert [f for f, _ in seen] == [0.4] and defaults.defaults_progress(tmp_path)["fraction"] == 0.4
    assert not demo_build.start_defaults(tmp_path)  # ready: nothing to start
    out = subprocess.run(
        [sys.executable, "-m", "fcfd_viz", "defaults", "--runs-dir", str(tmp_path), "--no-gap"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert out.returncode == 0 and "defaults ready" in out.stdout, out.stderr
    # issue #29: a second build waited for the first, then said "ready in 0 s"
    lock = tmp_path / defaults.DEFAULTS / ".lock"
    holding, release = threading.Event(), threading.Event()

    def other_build():
        with file_lock(lock):
            holding.set()
            release.wait(30)

    other = threading.Thread(target=other_build)
    other.start()
    holding.wait(30)
    threading.Timer(1.5, release.set).start()
    seen.clear()
    defaults.ensure_defaults(tmp_path, progress=lambda f, m: seen.append((f, m)))
    other.join()
    assert "waiting for it to end" in seen[0][1], seen
    assert "another process built them while this one waited" in seen[-1][1], seen


def test_the_pairs_demo_is_the_papers_setting_on_digit_pairs(tmp_path):
    """The second demo: the pairs-resnet56-resnet20 preset's teacher on digit-pairs with the
    schedule `fcfd train-teacher --dataset digit-pairs` uses, and one seed of ce / kd / fcfd
    students on the preset's schedule, in RUNS/pairs (apart from the first launch's runs)."""
    from fcfd_viz.data import digit_pairs

    pairs = defaults.DEMOS["pairs"]
    cfgs = defaults.default_configs(tmp_path, demo=pairs)
    assert list(cfgs) == ["teacher", "ce", "kd", "fcfd"]
    teacher = cfgs["teacher"]
    assert teacher.student == "resnet56" and teacher.data.dataset == "digit-pairs"
    train = teacher.train
    assert {k: getattr(train, k) for k in digit_pairs.TEACHER_TRAIN} == digit_pairs.TEACHER_TRAIN
    for m in ("ce", "kd", "fcfd"):
        c = cfgs[m]
        assert c.student == "resnet20" and c.data.dataset == "digit-pairs" and c.method == m
        assert c.train.epochs == 20 and c.train.warmup_epochs == 1 and c.train.seed == 0
    assert cfgs["kd"].teacher == str((tmp_path / "pairs" / "teacher").resolve())
    assert cfgs["ce"].teacher is None
    names = defaults.default_names(pairs)
    assert set(names.values()) == {f"pairs/{k}" for k in ("teacher", "ce", "kd", "fcfd")}
    assert not defaults.defaults_ready(tmp_path, pairs)
    assert defaults.default_names() == defaults.default_names(defaults.DIGITS)  # unchanged


def test_each_demo_button_states_its_measured_build_time():
    """The Home page's buttons read their text from the demo: the time when measured, and
    that it is not measured yet otherwise (the pairs demo, for now)."""
    from dataclasses import replace

    digits, pairs = defaults.DIGITS, defaults.PAIRS
    assert digits.measured_build and digits.measured_how
    assert digits.build_label == f"Build digits (10 classes) ({digits.measured_build})"
    assert pairs.measured_build is None
    assert pairs.build_label.endswith("(build time not yet measured)")
    assert replace(pairs, measured_build="12 min").build_label == (
        "Build the paper's setting (100 classes) (12 min)"
    )
