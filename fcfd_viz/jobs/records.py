"""The job registry's own files and processes: launch records ``RUNS/.jobs/KEY.json`` (pid,
process start time, command, log), their lock, and starting a detached job.

``KEY`` is the job's name percent-encoded (:func:`~fcfd_viz.jobs.spec.record_key`), so two
names never share a record. :mod:`fcfd_viz.jobs.control` reads these together with the run folders.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

from fcfd_viz.io.files import is_regular, read_object, tail_lines, write_json
from fcfd_viz.io.procs import identity
from fcfd_viz.jobs.spec import record_key
from fcfd_viz.runs.layout import JOBS_DIR


def max_jobs() -> int:
    """Concurrent job limit from ``$FCFD_MAX_JOBS`` (default 2, one per core on a 2-core box)."""
    try:
        return max(1, int(os.environ.get("FCFD_MAX_JOBS", "2")))
    except ValueError:
        return 2


def job_record(runs_dir: Path, name: str) -> dict | None:
    """The launch record of job ``name`` (pid, create_time, cmd, log), or None."""
    return read_object(Path(runs_dir) / JOBS_DIR / f"{record_key(name)}.json")[0]


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
    log = log_path(runs_dir, name)
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    threads = threads or max(1, (os.cpu_count() or 1) // max_jobs())
    env.setdefault("OMP_NUM_THREADS", str(threads))
    cmd = [sys.executable, "-m", module, *fcfd_args]
    with open(log, "ab") as out:
        out.write(f"$ {' '.join(cmd)}\n".encode())
        out.flush()
        proc = subprocess.Popen(
            cmd,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # a reload or a closed app does not kill the run
            env=env,
        )
    rec = {"name": name, **identity(proc.pid), "cmd": cmd}
    write_json(d / f"{record_key(name)}.json", {**rec, "time": time.time(), "log": str(log)})
    return rec


def log_path(runs_dir: Path, name: str) -> Path:
    """Where job ``name``'s output goes (never taken from a record, which may be junk)."""
    return Path(runs_dir) / JOBS_DIR / f"{record_key(name)}.log"


def last_log_line(path: Path | None) -> str:
    """The last non-empty line of a job's log (its error, when it failed)."""
    if path is None or not is_regular(path):
        return ""
    try:
        lines = [ln.strip() for ln in tail_lines(path, 1 << 16) if ln.strip()]
    except OSError:
        return ""
    return lines[-1].decode(errors="replace")[-300:] if lines else ""
