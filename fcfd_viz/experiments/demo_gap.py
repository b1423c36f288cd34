"""The Functional gap page's results for the default runs, computed ahead of the class.

Fitting post-hoc connectors for the nine default students (closed form: seconds each) and
measuring their gap in both BN regimes takes a few minutes on 2 CPU cores, longer than a
class wants to watch a spinner. ``fcfd defaults`` (the Home page's build) therefore goes on,
within its one progress bar (:data:`RUNS_SHARE`), once the runs are trained and every page
works, to compute exactly what
the Functional gap page asks for with its default choices: each default student's connectors
fitted for :data:`FIT_EPOCHS` epochs and its gap report in both BN regimes, kept in
``RUNS/.cache`` under the keys the page reads (:func:`fcfd_viz.analysis.reports.gap.student_gap`,
labels from :func:`~fcfd_viz.analysis.reports.gap.gap_labels`). The page then opens on them
at once; while this runs it shows its progress (``RUNS/defaults/gap-progress.json``).
"""

from __future__ import annotations

import os
import time
from pathlib import Path

from fcfd_viz.experiments.demo import (
    DIGITS,
    Demo,
    Progress,
    default_names,
    default_paths,
    key_method,
    progress_writer,
    read_progress,
)

FIT_EPOCHS = 100  # the page's default connector-fit budget (its slider starts here)
FIT_BUDGETS = (10, 25, 50, 100, 200, 400)  # the page's slider
PROGRESS_FILE = "gap-progress.json"
# the runs' part of `fcfd defaults`' one progress bar, the gap phase the rest (both measured
# on 2 shared cores: benchmarks/connector_fit.py, docs/benchmarks.md)
RUNS_SHARE = 0.5


def fit_epochs() -> int:
    """The default connector-fit budget, one of :data:`FIT_BUDGETS`: the nearest to
    ``$FCFD_GAP_FIT_EPOCHS`` when set (tests and slow machines), else :data:`FIT_EPOCHS`.
    The page's slider starts here and ``fcfd defaults`` fits with it, so they meet in the cache."""
    try:
        want = int(os.environ.get("FCFD_GAP_FIT_EPOCHS", str(FIT_EPOCHS)))
    except ValueError:
        want = FIT_EPOCHS
    return min(FIT_BUDGETS, key=lambda c: abs(c - want))


def default_gap_students(runs_dir: str | os.PathLike, demo: Demo = DIGITS) -> dict[str, Path]:
    """``{label: run directory}`` of the default students, labelled as the Functional gap page
    labels them when all of them are selected (its default selection)."""
    from fcfd_viz.analysis.reports.gap import gap_labels

    names = {k: n for k, n in default_names(demo).items() if k != "teacher"}
    paths = default_paths(runs_dir, demo)
    labels = gap_labels([key_method(k) for k in names], list(names.values()))
    return {label: paths[k] for label, k in zip(labels, names)}


def ensure_default_gap(
    runs_dir: str | os.PathLike,
    progress: Progress | None = None,
    epochs: int | None = None,
    bns: tuple[str, ...] = ("eval", "batch"),
    demo: Demo = DIGITS,
) -> int:
    """Compute (or find kept) the gap report of every default student against the default
    teacher with connectors fitted for ``epochs`` (default :func:`fit_epochs`), in each BN
    regime of ``bns``; returns how many reports were computed anew. The default runs must
    exist (:func:`fcfd_viz.experiments.demo.ensure_defaults`)."""
    from fcfd_viz.analysis.gap.shared_teacher import shared_teacher
    from fcfd_viz.analysis.reports.gap import gap_file, student_gap
    from fcfd_viz.runs.checkpoints import checkpoint_key
    from fcfd_viz.runs.layout import CACHE_DIR

    runs_dir, epochs = Path(runs_dir), epochs or fit_epochs()
    folder, teacher = runs_dir / CACHE_DIR, default_paths(runs_dir, demo)["teacher"]
    report = progress_writer(runs_dir / demo.folder / PROGRESS_FILE, progress)
    students = default_gap_students(runs_dir, demo)
    todo = [(label, path, bn) for label, path in students.items() for bn in bns]
    t0, computed = time.perf_counter(), 0
    with shared_teacher():  # one teacher: its features and Grams serve all nine fits
        for i, (label, path, bn) in enumerate(todo):
            keys = checkpoint_key(teacher), checkpoint_key(path)
            if not gap_file(folder, *keys, label, bn, epochs).exists():
                report(i / len(todo), f"gap: fitting connectors for {label} ({bn} BN)")
                student_gap(teacher, path, label, bn, epochs, folder)
                computed += 1
    report(1.0, f"gap ready in {time.perf_counter() - t0:.0f} s")
    return computed


def default_gap_progress(runs_dir: str | os.PathLike, demo: Demo = DIGITS) -> dict | None:
    """The last progress of :func:`ensure_default_gap` (``fraction``, ``message``, ``pid``)."""
    return read_progress(Path(runs_dir) / demo.folder / PROGRESS_FILE)


def default_gap_running(runs_dir: str | os.PathLike, demo: Demo = DIGITS) -> bool:
    """True while a process computes the default gap (its progress file is unfinished and the
    process that writes it is alive)."""
    from fcfd_viz.io.procs import record_alive

    p = default_gap_progress(runs_dir, demo)
    return bool(p) and p["fraction"] < 1 and record_alive(p)
