"""The demo build as a background job: the Home page's button starts ``fcfd defaults`` in
its own process (:func:`start_defaults`), and every page asks whether one runs
(:func:`building`)."""

from __future__ import annotations

import os
from pathlib import Path

from fcfd_viz.experiments.demo import DEFAULTS, defaults_progress, defaults_ready
from fcfd_viz.io.procs import record_alive
from fcfd_viz.jobs import control as jobs
from fcfd_viz.jobs.records import job_record, spawn
from fcfd_viz.runs.layout import runs_lock


def start_defaults(runs_dir: str | os.PathLike) -> bool:
    """Build the defaults in a background ``fcfd defaults`` process (the app's button).

    Returns False when they are ready or a build is already running (nothing started).
    """
    runs_dir = Path(runs_dir)
    if defaults_ready(runs_dir):
        return False
    with runs_lock(runs_dir):
        if building(runs_dir):
            return False
        jobs.check_limit(runs_dir)
        # every core: the app has nothing else to show until this is done
        spawn(
            runs_dir,
            DEFAULTS,
            ["defaults", "--runs-dir", str(runs_dir.resolve())],
            threads=os.cpu_count() or 1,
        )
    return True


def building(runs_dir: str | os.PathLike) -> bool:
    """True while a defaults build runs: one :func:`start_defaults` began, or any other
    process (``fcfd defaults`` in a terminal) whose progress file is not finished."""
    if record_alive(job_record(Path(runs_dir), DEFAULTS)):
        return True
    p = defaults_progress(runs_dir)
    return bool(p) and p["fraction"] < 1 and record_alive(p)
