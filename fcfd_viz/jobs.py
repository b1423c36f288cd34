"""Background training jobs whose whole state lives in the runs folder (no UI code here).

A job is a ``python -m fcfd_viz distill ... --out RUNS/NAME --no-progress`` subprocess started
in its own session, so closing or reloading the app never kills it. Its run directory is a
normal run (``fcfd runs`` lists it, ``fcfd distill --resume --out RUNS/NAME`` continues it).
Beside the runs, ``RUNS/.jobs/NAME.json`` records the launch (pid, process start time,
command) and ``RUNS/.jobs/NAME.log`` holds the process output.

The registry is recomputed from those files on every call, so every page reload and browser
tab sees the same jobs. States: ``starting`` (process alive, training not begun), ``running``,
``stopping`` (STOP requested), ``completed``, ``stopped``, ``failed``, ``interrupted`` (the
status says running but its process is gone: resume it) and ``unknown``.

Concurrency: at most ``max_jobs()`` active jobs (``FCFD_MAX_JOBS``, default 2) per runs
folder, counting every live run in it (CLI runs and the defaults build too). A launch beyond
the limit is *refused* with :class:`JobLimitError` (no queue: a queue would need a scheduler
that outlives the browser). Launching a name that already exists starts nothing and returns
the existing job, so a double click or a second tab never duplicates a run.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from fcfd_viz.errors import UserError
from fcfd_viz.job_spec import JOBS_DIR, RESERVED, JobSpec, needs_teacher, validate
from fcfd_viz.procs import pid_alive, proc_stat
from fcfd_viz.runs import STOP_FILE, Run, list_runs, read_json, write_json

ACTIVE = ("starting", "running", "stopping")


__all__ = [
    "JOBS_DIR",
    "RESERVED",
    "Job",
    "JobLimitError",
    "JobSpec",
    "active_count",
    "default_runs_dir",
    "delete",
    "get_job",
    "launch",
    "list_jobs",
    "max_jobs",
    "needs_teacher",
    "pid_alive",
    "resume",
    "stop",
    "validate",
    "wait",
]


class JobLimitError(UserError):
    """Too many active jobs in the runs folder; wait for one to finish or stop one."""


def default_runs_dir(arg: str | os.PathLike | None = None) -> Path:
    """The runs folder: ``arg`` if given, else ``$FCFD_RUNS_DIR``, else ``./runs``."""
    return Path(arg or os.environ.get("FCFD_RUNS_DIR") or "runs")


def max_jobs() -> int:
    """Concurrent job limit from ``$FCFD_MAX_JOBS`` (default 2, one per core on a 2-core box)."""
    try:
        return max(1, int(os.environ.get("FCFD_MAX_JOBS", "2")))
    except ValueError:
        return 2


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

    @property
    def active(self) -> bool:
        return self.state in ACTIVE


# ---------------------------------------------------------------- processes
@contextlib.contextmanager
def runs_lock(runs_dir: Path):
    """Exclusive lock of the runs folder's job records (across threads and processes)."""
    d = runs_dir / JOBS_DIR
    d.mkdir(parents=True, exist_ok=True)
    with open(d / "lock", "a") as f:
        try:
            import fcntl

            fcntl.flock(f, fcntl.LOCK_EX)
        except ImportError:  # pragma: no cover - not POSIX
            pass
        yield


def job_record(runs_dir: Path, name: str) -> dict | None:
    """The launch record of job ``name`` (pid, start, cmd, log), or None."""
    try:
        return read_json(runs_dir / JOBS_DIR / f"{_key(name)}.json")
    except (OSError, json.JSONDecodeError):
        return None


def _key(name: str) -> str:
    return name.replace("/", "__")


def spawn(
    runs_dir: Path,
    name: str,
    fcfd_args: list[str],
    threads: int | None = None,
    module: str = "fcfd_viz",
) -> dict:
    """Start ``python -m MODULE ARGS`` detached and record it as job ``name``."""
    d = runs_dir / JOBS_DIR
    d.mkdir(parents=True, exist_ok=True)
    log_path = d / f"{_key(name)}.log"
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    threads = threads or max(1, (os.cpu_count() or 1) // max_jobs())
    env.setdefault("OMP_NUM_THREADS", str(threads))
    cmd = [sys.executable, "-m", module, *fcfd_args]
    with open(log_path, "ab") as log:
        log.write(f"$ {' '.join(cmd)}\n".encode())
        log.flush()
        proc = subprocess.Popen(
            cmd,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # a reload or a closed app does not kill the run
            env=env,
        )
    info = proc_stat(proc.pid)
    rec = {"name": name, "pid": proc.pid, "start": info[1] if info else None, "cmd": cmd}
    write_json(d / f"{_key(name)}.json", {**rec, "time": time.time(), "log": str(log_path)})
    return rec


def active_count(runs_dir: str | os.PathLike) -> int:
    """Active jobs in ``runs_dir``, the defaults build included."""
    runs_dir = Path(runs_dir)
    pids = {j.pid for j in list_jobs(runs_dir) if j.active}
    rec = job_record(runs_dir, "defaults")
    if rec and pid_alive(rec.get("pid"), rec.get("start")):
        pids.add(rec["pid"])  # its runs under defaults/ share that one process
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
def last_log_line(path: Path | None) -> str:
    """The last non-empty line of a job's log (its error, when it failed)."""
    try:
        lines = [ln for ln in path.read_text(errors="replace").splitlines() if ln.strip()]
    except (OSError, AttributeError):
        return ""
    return lines[-1][-300:] if lines else ""


def _job(runs_dir: Path, path: Path, row: dict | None) -> Job:
    name = path.relative_to(runs_dir).as_posix()
    run, rec = Run(path), job_record(runs_dir, name)
    status, summ = run.status(), run.summary()
    log = Path(rec["log"]) if rec and rec.get("log") else None
    pid, start = (rec or {}).get("pid"), (rec or {}).get("start")
    alive = pid_alive(pid, start)
    if not alive and status.get("pid") and status["pid"] != pid:  # started elsewhere (CLI)
        pid = status["pid"]
        alive = pid_alive(pid)
    state = status.get("state") or ("completed" if summ else None)
    message = status.get("error", "")
    # a final status counts unless a later launch (a resume) is still on its way
    final = state in ("completed", "stopped", "failed") and status.get("time", 0) >= (
        rec or {}
    ).get("time", 0)
    if alive and not final:
        running = state == "running" and status.get("pid") == pid
        state = "running" if running else "starting"
        if run.stop_requested():
            state = "stopping"
    elif state == "running" or (state is None and rec):
        tail = last_log_line(log)
        state = "failed" if "error" in tail.lower() else "interrupted"
        message = message or tail
    job = Job(name, path, state or "unknown", pid, message=message, log=log)
    job.epoch = status.get("epoch", summ.get("epochs") if summ else None)
    job.epochs = status.get("epochs")
    if row:
        job.top1, job.method, job.student = row.get("top1"), row.get("method"), row.get("student")
    return job


def list_jobs(runs_dir: str | os.PathLike) -> list[Job]:
    """Every run in ``runs_dir`` (as :func:`~fcfd_viz.runs.list_runs` finds them, newest
    first) plus launched jobs that have no ``config.json`` yet, each with its live state."""
    runs_dir = Path(runs_dir)
    jobs = [_job(runs_dir, Path(r["run"]), r) for r in list_runs(runs_dir)]
    seen = {j.name for j in jobs}
    recs = sorted((runs_dir / JOBS_DIR).glob("*.json"), key=lambda p: -p.stat().st_mtime)
    for p in recs:
        name = p.stem.replace("__", "/")
        if name not in seen and name != "defaults":
            jobs.insert(0, _job(runs_dir, runs_dir / name, None))
    return jobs


def get_job(runs_dir: str | os.PathLike, name: str) -> Job | None:
    """The job called ``name`` (path relative to the runs folder), or None."""
    runs_dir = Path(runs_dir)
    path = runs_dir / name
    has_files = path.is_dir() and any(path.iterdir())
    if not has_files and job_record(runs_dir, name) is None:
        return None
    return _job(runs_dir, path, next((r for r in list_runs(path) if Path(r["run"]) == path), None))


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
    return get_job(runs_dir, spec.name), True


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
    return get_job(runs_dir, name)


def stop(runs_dir: str | os.PathLike, name: str) -> Job:
    """Ask job ``name`` to stop: the trainer checks the STOP file every step and then writes
    its summary (state ``stopped``). A job whose run directory does not exist yet is killed."""
    runs_dir = Path(runs_dir)
    job = get_job(runs_dir, name)
    if job is None:
        raise UserError(f"no run {name!r} in {runs_dir}")
    if job.active:
        if job.path.exists():  # the trainer made it, past its emptiness check: safe to touch
            Run(job.path).request_stop()
        else:
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
    with runs_lock(runs_dir):
        shutil.rmtree(path, ignore_errors=True)
        for ext in (".json", ".log"):
            (runs_dir / JOBS_DIR / f"{_key(name)}{ext}").unlink(missing_ok=True)


def wait(runs_dir: str | os.PathLike, name: str, timeout: float = 300.0, poll: float = 0.5) -> Job:
    """Block until job ``name`` is no longer active (or ``timeout`` seconds passed)."""
    deadline = time.monotonic() + timeout
    while True:
        job = get_job(runs_dir, name)
        if job is None or not job.active or time.monotonic() > deadline:
            return job
        time.sleep(poll)
