"""Background jobs (fcfd_viz.jobs.control): launch, stop, resume, limits, names that leave the runs
folder, record names."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import pytest

from fcfd_viz.errors import UserError
from fcfd_viz.io.files import write_json
from fcfd_viz.jobs import control as jobs
from fcfd_viz.jobs.records import job_record
from fcfd_viz.jobs.spec import JobSpec, record_key, validate
from fcfd_viz.runs.layout import Run
from fcfd_viz.runs.listing import list_runs


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


# ------------------------------------------------------------------ the writer lock (issue #29)
HOLD = """import json, sys, time
from pathlib import Path
from fcfd_viz.io.locks import file_lock
run = Path(sys.argv[1])
with file_lock(run / ".writer.lock", wait=False):
    if sys.argv[2] == "config":  # a trainer between config.json and its first status
        (run / "config.json").write_text(json.dumps({"method": "ce", "student": "resnet8"}))
    print("holding", flush=True)
    time.sleep(120)
"""


@pytest.mark.parametrize("layout", ["start-up window", "nested run"])
def test_delete_respects_the_writer_lock_whatever_the_status(tmp_path, layout):
    """Between config.json and status.json the listing says ``unknown`` and delete removed
    config.json and the lock from under the trainer (it then ended rc 0 in an orphan
    folder); a run nested in a finished one went with the outer run's delete."""
    root = tmp_path / "runs"
    done = root / "done"
    done.mkdir(parents=True)
    if layout == "nested run":
        write_json(done / "config.json", {"method": "ce", "student": "resnet8"})
        write_json(done / "status.json", {"state": "completed", "time": time.time()})
        writer = done / "nested"
        writer.mkdir()
    else:
        writer = done
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLD, str(writer), "config" if writer == done else "-"],
        stdout=subprocess.PIPE,
    )
    try:
        assert holder.stdout.readline().strip() == b"holding"
        before = sorted(done.rglob("*"))
        assert jobs.get_job(root, "done").state in ("unknown", "completed")  # not "active"
        with pytest.raises(UserError, match="being written"):
            jobs.delete(root, "done")
        assert sorted(done.rglob("*")) == before
    finally:
        holder.kill()
        holder.wait()
    jobs.delete(root, "done")  # the writer is gone: the run may go
    assert not done.exists()
