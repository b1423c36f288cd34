"""The demo builds as background jobs: the Home page's buttons start ``fcfd defaults --demo
NAME`` in its own process (:func:`start_defaults`, job ``RUNS/.jobs/<demo folder>``), and every
page asks whether one runs (:func:`building`)."""

from __future__ import annotations

import os
from pathlib import Path

from fcfd_viz.experiments.demo import DIGITS, Demo, defaults_progress, defaults_ready
from fcfd_viz.io.procs import record_alive
from fcfd_viz.jobs import control as jobs
from fcfd_viz.jobs.records import job_record, spawn
from fcfd_viz.runs.layout import runs_lock


def start_defaults(runs_dir: str | os.PathLike, demo: Demo = DIGITS) -> bool:
    """Build ``demo`` in a background ``fcfd defaults --demo NAME`` process (the app's
    buttons), recorded as job ``demo.folder``.

    Returns False when it is ready or its build is already running (nothing started).
    """
    runs_dir = Path(runs_dir)
    if defaults_ready(runs_dir, demo):
        return False
    with runs_lock(runs_dir):
        if building(runs_dir, demo):
            return False
        jobs.check_limit(runs_dir)
        # the first launch's demo gets every core (the app has nothing else to show until it
        # is done); a later one a job's share, leaving the app its pages
        threads = (os.cpu_count() or 1) if demo == DIGITS else None
        args = ["defaults", "--runs-dir", str(runs_dir.resolve()), "--demo", demo.name]
        spawn(runs_dir, demo.folder, args, threads=threads)
    return True


def building(runs_dir: str | os.PathLike, demo: Demo = DIGITS) -> bool:
    """True while a build of ``demo`` runs: one :func:`start_defaults` began, or any other
    process (``fcfd defaults`` in a terminal) whose progress file is not finished."""
    if record_alive(job_record(Path(runs_dir), demo.folder)):
        return True
    p = defaults_progress(runs_dir, demo)
    return bool(p and p["fraction"] < 1 and record_alive(p))
