"""Background jobs (fcfd_viz.jobs), default runs (fcfd_viz.defaults) and their CLI."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import pytest

from fcfd_viz import defaults, jobs
from fcfd_viz.errors import UserError
from fcfd_viz.fsio import write_json
from fcfd_viz.job_records import job_record
from fcfd_viz.job_spec import JobSpec, record_key, validate
from fcfd_viz.listing import list_runs
from fcfd_viz.runs import Run


def wait_state(root, name, states, timeout=120.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        job = jobs.get_job(root, name)
        if job is not None and job.state in states:
            return job
        time.sleep(0.2)
    raise AssertionError(f"{name} never reached {states}: {jobs.get_job(root, name)}")


def fake_active(root: Path, name: str) -> subprocess.Popen:
    """A run dir whose status says running, owned by a live `sleep` process."""
    proc = subprocess.Popen(["sleep", "60"])
    path = root / name
    path.mkdir(parents=True)
    write_json(path / "config.json", {"method": {"method": "ce"}, "student": "resnet8"})
    write_json(path / "status.json", {"state": "running", "pid": proc.pid, "time": time.time()})
    return proc


def test_spec_argv_passes_every_knob_and_the_teacher_only_when_used(digits_teacher):
    ce = JobSpec("a", method="ce", teacher=str(digits_teacher)).argv()
    assert "--temperature" not in ce and "--teacher" not in ce
    kd = JobSpec("a", method="kd", teacher=str(digits_teacher), knobs={"temperature": 2.0}).argv()
    assert kd[kd.index("--temperature") + 1] == "2.0" and "--teacher" in kd
    knobs = {"feat_weight": 0.5, "paths": "s2t", "teacher_bn": "batch", "num_paths": 1}
    fcfd = JobSpec("a", method="fcfd", epochs=3, knobs=knobs).argv()
    for name, value in knobs.items():  # any knob of the method, not a fixed few
        flag = "--" + name.replace("_", "-")
        assert fcfd[fcfd.index(flag) + 1] == str(value)
    assert fcfd[fcfd.index("--epochs") + 1] == "3"


def test_validate_rejects_bad_specs(digits_teacher, tmp_path):
    import torch

    from fcfd_viz import models
    from fcfd_viz.checkpoints import save_checkpoint

    for bad in ("", "../x", "defaults", ".jobs", "a b"):
        with pytest.raises(UserError, match="run name"):
            validate(JobSpec(bad, method="ce"))
    with pytest.raises(UserError, match="needs a teacher"):
        validate(JobSpec("x", method="kd"))
    with pytest.raises(UserError, match="epochs"):
        validate(JobSpec("x", method="ce", epochs=0))
    with pytest.raises(UserError, match="temperature must be a finite number > 0"):
        validate(JobSpec("x", method="kd", teacher=str(digits_teacher), knobs={"temperature": 0}))
    with pytest.raises(UserError, match="has no option"):  # a knob the method lacks
        validate(JobSpec("x", method="ce", knobs={"temperature": 2.0}))
    net = models.create("resnet8", num_classes=100)
    cifar = tmp_path / "cifar.pt"
    save_checkpoint(
        cifar,
        {
            "model": net.spec(),
            "state_dict": net.state_dict(),
            "dataset": "cifar100",
            "input_shape": [3, 32, 32],
        },
    )
    with pytest.raises(UserError, match="same dataset"):
        validate(JobSpec("x", method="kd", teacher=str(cifar)))
    validate(JobSpec("x", method="kd", teacher=str(digits_teacher)))
    assert torch.is_tensor(net.state_dict()["head.fc.weight"])


def test_launch_is_idempotent_and_a_normal_run(tmp_path):
    root = tmp_path / "runs"
    spec = JobSpec("smoke", method="ce", epochs=1)
    job, started = jobs.launch(root, spec)
    assert started and job.state in jobs.ACTIVE
    again, started2 = jobs.launch(root, spec)  # a second tab or a double click
    assert not started2 and again.pid == job.pid
    done = jobs.wait(root, "smoke", timeout=180)
    assert done.state == "completed", (done, (root / ".jobs/smoke.log").read_text())
    assert Run(root / "smoke").summary()["epochs"] == 1
    assert [r["name"] for r in list_runs(root)] == ["smoke"]  # `fcfd runs` sees it
    _, started3 = jobs.launch(root, spec)
    assert not started3  # a finished run is not relaunched either


def test_stop_then_resume_from_the_cli_state(tmp_path):
    root = tmp_path / "runs"
    jobs.launch(root, JobSpec("long", method="ce", epochs=12))
    deadline = time.monotonic() + 120  # one epoch done, so last.pt exists to resume from
    while (jobs.get_job(root, "long").epoch or 0) < 1 and time.monotonic() < deadline:
        time.sleep(0.2)
    assert jobs.stop(root, "long").state in ("stopping", "stopped")
    stopped = wait_state(root, "long", {"stopped"}, timeout=60)
    assert Run(stopped.path).summary()["stopped"] is True
    resumed = jobs.resume(root, "long")
    assert resumed.active and not (resumed.path / "STOP").exists()
    done = jobs.wait(root, "long", timeout=180)
    assert done.state == "completed"
    assert [r["epoch"] for r in Run(done.path).metrics()] == list(range(1, 13))


def test_limit_refuses_and_dead_runs_are_interrupted(tmp_path):
    root = tmp_path / "runs"
    proc = fake_active(root, "busy")
    try:
        assert jobs.get_job(root, "busy").state == "running"
        assert jobs.active_count(root) == 1
        with pytest.raises(jobs.JobLimitError, match="limit 1"):
            jobs.launch(root, JobSpec("next", method="ce", epochs=1), limit=1)
        assert jobs.get_job(root, "next") is None  # nothing half-made
        with pytest.raises(UserError, match="stop it before deleting"):
            jobs.delete(root, "busy")
    finally:
        proc.kill()
        proc.wait()
    job = jobs.get_job(root, "busy")
    assert job.state == "interrupted" and not job.active
    jobs.delete(root, "busy")
    assert not (root / "busy").exists() and jobs.list_jobs(root) == []


_default_configs = defaults.default_configs


def tiny_configs(runs_dir, epochs=None):
    from fcfd_viz.pipeline import replace

    cfgs = _default_configs(runs_dir, epochs=1)
    cfgs["teacher"] = replace(cfgs["teacher"], student="resnet8", data={"subset": 0.1})
    return {k: replace(c, train={"device": "cpu"}) for k, c in cfgs.items()}


def test_ensure_defaults_reports_progress_and_is_instant_later(tmp_path, monkeypatch):
    monkeypatch.setattr(defaults, "default_configs", tiny_configs)
    seen = []
    paths = defaults.ensure_defaults(tmp_path, progress=lambda f, m: seen.append((f, m)))
    fractions = [f for f, _ in seen]
    assert fractions == sorted(fractions) and fractions[-1] == 1.0
    assert any(m.startswith("fcfd: epoch 1/1") for _, m in seen)
    assert defaults.defaults_ready(tmp_path) and set(paths) == {"teacher", "ce", "kd", "fcfd"}
    assert Run(paths["kd"]).config()["teacher"] == str(paths["teacher"].resolve())
    assert defaults.defaults_progress(tmp_path)["fraction"] == 1.0
    t0 = time.perf_counter()
    seen.clear()
    defaults.ensure_defaults(tmp_path, progress=lambda f, m: seen.append((f, m)))
    assert time.perf_counter() - t0 < 1.0 and len(seen) == 1
    assert not defaults.start_defaults(tmp_path)  # ready: nothing to start
    out = subprocess.run(
        [sys.executable, "-m", "fcfd_viz", "defaults", "--runs-dir", str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert out.returncode == 0 and "defaults ready" in out.stdout, out.stderr


def test_fcfd_app_binds_localhost(monkeypatch, tmp_path):
    from fcfd_viz.cli import app_cmds, main

    calls = []
    monkeypatch.setattr(app_cmds.subprocess, "call", lambda cmd, env: calls.append(cmd) or 0)
    assert main(["app", "--runs-dir", str(tmp_path)]) == 0
    cmd = calls[0]
    assert cmd[cmd.index("--server.address") + 1] == "127.0.0.1"
    assert cmd[-2:] == ["--runs-dir", str(tmp_path.resolve())]
    assert cmd[cmd.index("run") + 1].endswith("app/main.py")
    main(["app", "--host", "0.0.0.0", "--port", "9999"])
    assert calls[1][calls[1].index("--server.address") + 1] == "0.0.0.0"


# ------------------------------------------------------------------ names (issue #11, point 7)
def test_names_that_leave_the_runs_folder_are_refused(tmp_path):
    root, victim = tmp_path / "runs", tmp_path / "victim"
    root.mkdir()
    proc = fake_active(tmp_path, "victim")  # a run outside the folder, with a live process
    try:
        (root / "link").symlink_to(victim)
        before = sorted(p.name for p in victim.iterdir())
        bad = ["../victim", str(victim), "a/../../victim", "link", ".jobs/lock", "", ".",
               "x\n", "defaults/../../victim"]  # fmt: skip
        for name in bad:
            for action in (jobs.get_job, jobs.resume, jobs.stop, jobs.delete):
                with pytest.raises(UserError, match="not allowed"):
                    action(root, name)
        assert sorted(p.name for p in victim.iterdir()) == before  # no STOP, nothing deleted
        assert not list((root / ".jobs").glob("*.json"))  # no trainer started
        with pytest.raises(UserError, match="run name"):
            validate(JobSpec("ok-name\n", method="ce"))  # `$` matched before a \n
    finally:
        proc.kill()
        proc.wait()


def test_record_names_are_one_to_one(tmp_path):
    root = tmp_path / "runs"
    (root / ".jobs").mkdir(parents=True)
    for name in ("a__b", "a/b"):
        (root / name).mkdir(parents=True)
        write_json(root / name / "config.json", {"method": {"method": "ce"}})
        write_json(root / name / "status.json", {"state": "stopped", "time": time.time()})
        write_json(root / ".jobs" / f"{record_key(name)}.json", {"name": name, "pid": 0})
    assert sorted(j.name for j in jobs.list_jobs(root)) == ["a/b", "a__b"]  # each once
    jobs.delete(root, "a__b")
    assert (root / "a" / "b" / "config.json").exists()
    assert job_record(root, "a/b") is not None  # the other run keeps its records
    assert [j.name for j in jobs.list_jobs(root)] == ["a/b"]
