"""Background training jobs whose whole state lives in the runs folder (no UI code here).

A job is a ``python -m fcfd_viz distill ... --out RUNS/NAME --no-progress`` subprocess started
in its own session, so closing or reloading the app never kills it. Its run directory is a
normal run (``fcfd runs`` lists it, ``fcfd distill --resume --out RUNS/NAME`` continues it).
Beside the runs, ``RUNS/.jobs/KEY.json`` records the launch (pid, process start time,
command) and ``RUNS/.jobs/KEY.log`` holds the process output (``KEY``: the name
percent-encoded, see :func:`~fcfd_viz.jobs.spec.record_key`).

The registry is recomputed from those files on every call, so every page reload and browser
tab sees the same jobs. States: ``starting`` (process alive, training not begun), ``running``,
``stopping`` (STOP requested), ``completed``, ``stopped``, ``failed``, ``diverged``,
``interrupted`` (Ctrl-C / SIGTERM, or the status says running but its process, identified by
pid and start time, is gone: resume it), ``unreadable`` (malformed files: delete it) and
``unknown``. Every name is resolved inside the runs folder (:func:`run_path`); one that
leaves it is refused.

Concurrency: at most ``max_jobs()`` active jobs (``FCFD_MAX_JOBS``, default 2) per runs
folder, counting every live run in it (CLI runs and the defaults build too). A launch beyond
the limit is *refused* with :class:`JobLimitError` (no queue: a queue would need a scheduler
that outlives the browser). Launching a name that already exists starts nothing and returns
the existing job, so a double click or a second tab never duplicates a run.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import time
from dataclasses import dataclass, field
from pathlib import Path

from fcfd_viz.errors import UserError
from fcfd_viz.experiments.demo import DEMOS
from fcfd_viz.io.procs import record_alive
from fcfd_viz.jobs.records import (
    job_record,
    last_log_line,
    log_path,
    max_jobs,
    spawn,
)
from fcfd_viz.jobs.spec import (
    JobSpec,
    key_name,
    record_key,
    run_path,
    validate,
)
from fcfd_viz.runs import listing
from fcfd_viz.runs.layout import JOBS_DIR, STOP_FILE, Run, runs_lock
from fcfd_viz.runs.writer import writers_held

ACTIVE = ("starting", "running", "stopping")
RESUMABLE = ("stopped", "interrupted", "failed")  # a diverged run would diverge again


class JobLimitError(UserError):
    """Too many active jobs in the runs folder; wait for one to finish or stop one."""


@dataclass
class Job:
    """One run of the folder, as the registry sees it now."""

    name: str  # path relative to the runs folder
    path: Path
    state: str
    pid: int | None = None
    epoch: int | None = None
    epochs: int | None = None
    top1: float | None = None
    method: str | None = None
    student: str | None = None
    message: str = ""
    log: Path | None = None
    row: dict = field(default_factory=dict)  # the run's row of fcfd_viz.runs.listing (or {})

    @property
    def active(self) -> bool:
        return self.state in ACTIVE


def active_count(runs_dir: str | os.PathLike) -> int:
    """Active jobs in ``runs_dir``, the demo builds included."""
    runs_dir = Path(runs_dir)
    pids = {j.pid for j in list_jobs(runs_dir) if j.active}
    for demo in DEMOS.values():
        rec = job_record(runs_dir, demo.folder)
        if record_alive(rec):
            pids.add(rec["pid"])  # its runs under <demo folder>/ share that one process
    return len(pids)


def check_limit(runs_dir: Path, limit: int | None = None) -> None:
    """Raise :class:`JobLimitError` when another job would exceed the limit."""
    limit = limit or max_jobs()
    n = active_count(runs_dir)
    if n >= limit:
        raise JobLimitError(
            f"{n} run(s) already active in {runs_dir} (limit {limit}, set FCFD_MAX_JOBS); "
            "wait for one to finish or stop one, then launch again"
        )


# ---------------------------------------------------------------- registry
def _number(x) -> float:
    return float(x) if isinstance(x, (int, float)) and not isinstance(x, bool) else 0.0


def _job(runs_dir: Path, path: Path, row: dict | None) -> Job:
    """Job of run directory ``path``: its listing row (state with a live pid check) read
    together with its launch record (a job launched or resumed from the app)."""
    name = path.relative_to(runs_dir).as_posix()
    row, rec = row or {}, job_record(runs_dir, name) or {}
    log = log_path(runs_dir, name)
    status = Run(path).status()
    state, message = row.get("state"), row.get("error") or ""
    launched = record_alive(rec)
    # a final status counts unless a later launch (a resume) is still on its way
    final = state in listing.FINAL and _number(status.get("time")) >= _number(rec.get("time"))
    if state == "unreadable":
        pass
    elif state == "running" or (launched and not final):
        state = "running" if state == "running" else "starting"
        if Run(path).stop_requested():
            state = "stopping"
    elif rec and not final:  # launched (or resumed) and gone before writing a status
        tail = last_log_line(log)
        if "error" in tail.lower():
            state, message = "failed", tail
        elif state in (None, "unknown"):
            state, message = "interrupted", message or tail
    pid = status.get("pid") if state == "running" else rec.get("pid")
    pid = pid if isinstance(pid, int) and not isinstance(pid, bool) else None
    job = Job(name, path, state or "unknown", pid, message=message)
    job.log, job.row = log, row
    job.epoch, job.epochs = row.get("epochs_done"), row.get("epochs_total")
    job.top1, job.method, job.student = row.get("top1"), row.get("method"), row.get("student")
    return job


def list_jobs(runs_dir: str | os.PathLike) -> list[Job]:
    """Every run in ``runs_dir`` (as :func:`~fcfd_viz.runs.listing.list_runs` finds them, newest
    first) plus launched jobs that have no ``config.json`` yet, each with its live state."""
    runs_dir = Path(runs_dir)
    rows = [r for r in listing.list_runs(runs_dir) if Path(r["run"]) != runs_dir]
    jobs = [_job(runs_dir, Path(r["run"]), r) for r in rows]
    seen = {j.name for j in jobs}
    try:
        recs = sorted((runs_dir / JOBS_DIR).glob("*.json"), key=lambda p: -p.stat().st_mtime)
    except OSError:
        recs = []
    for p in recs:
        name = key_name(p.stem)
        if name in seen or name == "defaults" or job_record(runs_dir, name) is None:
            continue  # listed already, the defaults build, or a junk record
        with contextlib.suppress(UserError):  # a record no run name can have: not a job
            jobs.insert(0, _job(runs_dir, run_path(runs_dir, name), None))
    return jobs


def get_job(runs_dir: str | os.PathLike, name: str) -> Job | None:
    """The job called ``name`` (path relative to the runs folder), or None. A name that
    leaves the runs folder is a :class:`UserError`."""
    runs_dir = Path(runs_dir)
    path = run_path(runs_dir, name)
    has_files = path.is_dir() and any(path.iterdir())
    if not has_files and job_record(runs_dir, name) is None:
        return None
    return _job(runs_dir, path, listing.run_row(path))


def _started(runs_dir: Path, name: str) -> Job:
    """The job just spawned as ``name`` (its record is written before the spawn returns)."""
    job = get_job(runs_dir, name)
    if job is None:
        raise RuntimeError(f"job {name!r} left no record when it started")
    return job


# ---------------------------------------------------------------- actions
def launch(
    runs_dir: str | os.PathLike, spec: JobSpec, limit: int | None = None
) -> tuple[Job, bool]:
    """Start ``spec`` in the background; returns (job, started).

    Idempotent: when ``RUNS/spec.name`` exists already, nothing starts and the existing job
    comes back with ``started=False``. Raises :class:`JobLimitError` at the concurrency limit
    and :class:`UserError` for an invalid spec (bad name, incompatible teacher, ...).
    """
    runs_dir = Path(runs_dir)
    validate(spec)
    with runs_lock(runs_dir):
        job = get_job(runs_dir, spec.name)
        if job is not None:
            return job, False
        check_limit(runs_dir, limit)
        out = (runs_dir / spec.name).resolve()
        spawn(runs_dir, spec.name, ["distill", *spec.argv(), "--out", str(out), "--no-progress"])
    return _started(runs_dir, spec.name), True


def resume(runs_dir: str | os.PathLike, name: str, limit: int | None = None) -> Job:
    """Continue a stopped or interrupted run from its ``last.pt`` in the background."""
    runs_dir = Path(runs_dir)
    with runs_lock(runs_dir):
        job = get_job(runs_dir, name)
        if job is None:
            raise UserError(f"no run {name!r} in {runs_dir}")
        if job.active:
            return job
        if job.state == "completed":
            raise UserError(f"run {name!r} is completed: nothing to resume")
        if not (job.path / "last.pt").exists():
            raise UserError(
                f"run {name!r} ended before its first epoch did: nothing to resume; "
                "delete it and launch it again"
            )
        check_limit(runs_dir, limit)
        (job.path / STOP_FILE).unlink(missing_ok=True)
        out = str(job.path.resolve())
        spawn(runs_dir, name, ["distill", "--resume", "--out", out, "--no-progress"])
    return _started(runs_dir, name)


def stop(runs_dir: str | os.PathLike, name: str) -> Job:
    """Ask job ``name`` to stop: the trainer checks the STOP file every step and then writes
    its summary (state ``stopped``). A job whose run directory does not exist yet gets
    SIGTERM (it ends ``interrupted``)."""
    runs_dir = Path(runs_dir)
    job = get_job(runs_dir, name)
    if job is None:
        raise UserError(f"no run {name!r} in {runs_dir}")
    if job.active:
        if job.path.exists():  # the trainer made it, past its emptiness check: safe to touch
            Run(job.path).request_stop()
        elif job.pid:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(job.pid, signal.SIGTERM)
    return get_job(runs_dir, name) or job


def delete(runs_dir: str | os.PathLike, name: str) -> None:
    """Delete the run directory, launch record and log of job ``name``; never an active one."""
    runs_dir = Path(runs_dir)
    job = get_job(runs_dir, name)
    if job is None:
        raise UserError(f"no run {name!r} in {runs_dir}")
    if job.active:
        raise UserError(f"run {name!r} is {job.state}; stop it before deleting it")
    root, path = runs_dir.resolve(), job.path.resolve()
    if root not in path.parents:
        raise UserError(f"refusing to delete {path}: it is not inside {root}")
    # the writer locks, not the states: a run starting up (no status yet), or one nested
    # below this one, is refused while its trainer holds its lock
    held = contextlib.nullcontext() if job.path.is_symlink() else writers_held(path)
    with runs_lock(runs_dir), held:
        if job.path.is_symlink():  # a link inside the folder: remove it, not what it points to
            job.path.unlink()
        else:
            shutil.rmtree(job.path, ignore_errors=True)
        for ext in (".json", ".log"):
            (runs_dir / JOBS_DIR / f"{record_key(name)}{ext}").unlink(missing_ok=True)


def wait(
    runs_dir: str | os.PathLike, name: str, timeout: float = 300.0, poll: float = 0.5
) -> Job | None:
    """Block until job ``name`` is no longer active (or ``timeout`` seconds passed); None
    when there is no such job."""
    deadline = time.monotonic() + timeout
    while True:
        job = get_job(runs_dir, name)
        if job is None or not job.active or time.monotonic() > deadline:
            return job
        time.sleep(poll)
