"""Streamlit plumbing: the runs folder, the sidebar, widget helpers, and cached wrappers
around library calls (the analysis itself lives in :mod:`fcfd_viz.analysis`).

Models come from ``st.cache_resource`` (one shared, read-only instance per checkpoint file
and mtime); analysis results from ``st.cache_data`` keyed by checkpoint path + mtime + every
parameter. ``st.cache_data`` pickles what a function returns and hands every caller its own
copy, so it caches the library's result objects themselves (``ProbeReport``, ``GapReport``
...): nothing is converted to dicts and back, and nothing cached is ever mutated. torch is
imported inside the functions: the Home page imports this file and must start fast.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import TYPE_CHECKING

import streamlit as st

from fcfd_viz.errors import UserError
from fcfd_viz.experiments.demo import default_paths
from fcfd_viz.experiments.networks import network_from_checkpoint
from fcfd_viz.io import plugins
from fcfd_viz.jobs import control as jobs
from fcfd_viz.jobs.records import max_jobs
from fcfd_viz.runs.checkpoints import (
    checkpoint_file,
    checkpoint_key,
    load_checkpoint,
)
from fcfd_viz.runs.layout import CACHE_DIR, default_runs_dir
from fcfd_viz.runs.listing import list_runs

if TYPE_CHECKING:
    from fcfd_viz.analysis.reports.gap import GapReport


def _load_plugins() -> str | None:
    """Import the user's model modules as the CLI does ($FCFD_IMPORT, which ``fcfd --import M
    app`` sets, and entry points), once per server; the error line when one fails."""
    try:
        plugins.load_plugins()
    except UserError as e:
        return str(e)
    return None


PLUGIN_ERROR = _load_plugins()


def _cli_runs_dir() -> str | None:
    """``--runs-dir`` from ``streamlit run app/main.py -- --runs-dir DIR``."""
    p = argparse.ArgumentParser(add_help=False, allow_abbrev=False)
    p.add_argument("--runs-dir", default=None)
    return p.parse_known_args(sys.argv[1:])[0].runs_dir


def runs_dir() -> Path:
    """The runs folder of this session: sidebar > CLI ``--runs-dir`` > $FCFD_RUNS_DIR > ./runs."""
    if "runs_dir" not in st.session_state:
        st.session_state["runs_dir"] = str(default_runs_dir(_cli_runs_dir()))
    return Path(st.session_state["runs_dir"]).expanduser()


def sidebar() -> Path:
    """The sidebar every page shares: the runs folder and how many runs are active."""
    root = runs_dir()
    if PLUGIN_ERROR:
        st.error(PLUGIN_ERROR)
    with st.sidebar:
        st.text_input("Runs folder", key="runs_dir", help="env FCFD_RUNS_DIR or --runs-dir")
        if not root.is_dir():
            st.caption(f"{root} does not exist yet")
        else:
            n = jobs.active_count(root)
            st.caption(f"{n} active run(s), limit {max_jobs()}")
    return root


def keep_valid(key: str, options: list) -> None:
    """Drop what a widget's saved value holds that is no longer an option (a deleted run)."""
    value = st.session_state.get(key)
    if isinstance(value, list):
        st.session_state[key] = [v for v in value if v in options]
    elif value is not None and value not in options:
        del st.session_state[key]


def run_label(job) -> str:
    """``method: run`` for a curve legend (``teacher: ...`` for a teacher run, its own colour)."""
    kind = "teacher" if job.path.name.startswith("teacher") else job.method
    return f"{kind}: {job.name}"


def default_runs(root: Path) -> dict[str, str]:
    """The default runs' names in ``root`` (``{"teacher": "defaults/teacher", ...}``)."""
    return {k: p.relative_to(root).as_posix() for k, p in default_paths(root).items()}


def show_error(e: Exception) -> None:
    """An error box for a bad input; the page keeps working."""
    st.error(str(e) if isinstance(e, UserError) else f"{type(e).__name__}: {e}")


# ---------------------------------------------------------------- checkpoints and models
def checkpoints(root: Path, task: str = "classification") -> list[dict]:
    """Runs of ``root`` of ``task`` that hold a checkpoint: name, path, method, arch,
    dataset, top-1 (mAP for detection)."""
    out = []
    for r in list_runs(root):
        path = Path(r["run"])
        if r["state"] == "unreadable":  # its metadata cannot be trusted: the Runs page shows it
            continue
        if r.get("task", "classification") != task:
            continue
        try:
            checkpoint_file(path)
        except UserError:  # no best.pt nor last.pt (yet)
            continue
        name = path.relative_to(root).as_posix() if root in path.parents else r["name"]
        top1 = r.get("map" if task == "detection" else "top1")
        unit = " mAP" if task == "detection" else "%"
        acc = f", {top1:.1f}{unit}" if isinstance(top1, float) else ""
        label = f"{name} ({r['method']} {r['student']}, {r['dataset']}{acc})"
        out.append({**r, "name": name, "path": str(path), "label": label})
    return out


def ckpt_file(path: str | Path) -> tuple[str, float]:
    """(checkpoint file, its mtime): the cache key that changes when training writes a new one."""
    return checkpoint_key(path)


@st.cache_resource(max_entries=16, show_spinner=False)
def _model(path: str, mtime: float):
    ckpt = load_checkpoint(path)
    meta = {k: v for k, v in ckpt.items() if k not in ("state_dict", "optimizer", "extras")}
    return network_from_checkpoint(ckpt), meta


def model(path: str | Path):
    """(eval-mode staged net, checkpoint metadata) shared by all sessions; never modify it."""
    return _model(*ckpt_file(path))


CURVE_POINTS = 2000  # a curve needs no more; a huge metrics file stays cheap to redraw


@st.cache_data(max_entries=256, show_spinner=False)
def _metrics(path: str, key: tuple) -> list[dict]:
    from fcfd_viz.runs.layout import Run

    return Run(path).metrics(max_points=CURVE_POINTS)


def metrics(path: str | Path) -> list[dict]:
    """metrics.jsonl records of a run (thinned to :data:`CURVE_POINTS`), cached until the
    file changes."""
    try:
        st_ = (Path(path) / "metrics.jsonl").stat()
        key = (st_.st_ino, st_.st_size, st_.st_mtime_ns)
    except OSError:
        key = ()
    return _metrics(str(path), key)


# ---------------------------------------------------------------- functional gap
@st.cache_resource(max_entries=24, show_spinner=False)
def _fitted(root: str, t: tuple, s: tuple, label: str, epochs: int):
    """One student's gap inputs with its connectors fitted on the training split, read-only
    afterwards; the connectors are kept in RUNS/.cache, so a restarted app does not fit again."""
    from fcfd_viz.analysis.reports.gap import fitted_student

    return fitted_student(t[0], s[0], label, epochs, folder=Path(root) / CACHE_DIR)


def _gap_file(root, t: tuple, s: tuple, label: str, bn: str, epochs: int) -> Path:
    """RUNS/.cache/gap-<hash>.json: a restarted app (and `fcfd report`) shows a computed gap
    at once."""
    from fcfd_viz.analysis.reports.gap import gap_file

    return gap_file(Path(root) / CACHE_DIR, t, s, label, bn, epochs)


@st.cache_data(max_entries=128, show_spinner=False)
def _gap_one(root: str, t: tuple, s: tuple, label: str, bn: str, epochs: int) -> GapReport:
    from fcfd_viz.analysis.reports.gap import student_gap

    folder = Path(root) / CACHE_DIR
    fitted = lambda: _fitted(root, t, s, label, epochs)  # noqa: E731
    return student_gap(t[0], s[0], label, bn, epochs, folder, fitted=fitted)


@st.fragment(run_every=2.0)
def default_gap_progress() -> None:
    """A progress bar of the background fits of the default students' connectors
    (:mod:`fcfd_viz.experiments.demo_gap`), redrawn every 2 s; the page reruns once they are done."""
    from fcfd_viz.experiments.demo_gap import default_gap_progress as progress
    from fcfd_viz.experiments.demo_gap import default_gap_running

    root = runs_dir()
    p = progress(root) or {"fraction": 0.0, "message": "starting"}
    st.progress(p["fraction"], text=p["message"])
    if not default_gap_running(root):
        st.rerun()  # done (or failed): redraw the whole page once


def gap_labels(students: list[dict]) -> list[str]:
    """One distinct label per student: its method, or ``method: run`` for duplicates."""
    from fcfd_viz.analysis.reports.gap import gap_labels as labels

    return labels([c["method"] for c in students], [c["name"] for c in students])


def gap(root: Path, teacher: str, students: list[dict], bn: str, epochs: int) -> GapReport:
    """Functional gap of ``students`` (checkpoint rows) against ``teacher``: one cached
    report per student (memory and RUNS/.cache, keyed by checkpoint paths + mtimes, BN
    regime and fit budget), merged by the library; a new selection computes only new
    students."""
    from fcfd_viz.analysis.gap.shared_teacher import shared_teacher
    from fcfd_viz.analysis.reports.gap import merge_gap_reports

    t = ckpt_file(teacher)
    labels = gap_labels(students)
    with shared_teacher():  # the students' fits share the teacher's features and Grams
        reports = [
            _gap_one(str(root), t, ckpt_file(c["path"]), lab, bn, epochs)
            for c, lab in zip(students, labels)
        ]
    return merge_gap_reports(reports)


def gap_cached(root: Path, teacher: str, students: list[dict], bn: str, epochs: int) -> bool:
    """Whether :func:`gap` would answer from the disk cache (no fitting)."""
    t = ckpt_file(teacher)
    return all(
        _gap_file(root, t, ckpt_file(c["path"]), label, bn, epochs).exists()
        for c, label in zip(students, gap_labels(students))
    )


def one_image(
    root: Path, teacher: str, students: dict[str, dict], epochs: int, index: int, stage: int
):
    """(image, :class:`~fcfd_viz.analysis.gap.one_image.ImagePredictions`) of test image ``index``
    at ``stage`` through the fitted connectors of ``students`` (label -> checkpoint row, the
    labels :func:`gap` used: the fits are shared with it and kept in RUNS/.cache)."""
    from fcfd_viz.analysis.gap.one_image import bridged_predictions

    t, pred, image = ckpt_file(teacher), None, None
    for label, c in students.items():
        inputs, _ = _fitted(str(root), t, ckpt_file(c["path"]), label, epochs)
        image, y = inputs.test_loader.dataset[index]
        p = bridged_predictions(inputs.gap, image, stage, int(y))
        pred = p if pred is None else pred.merged(p)
    return image, pred


def test_images(root: Path, teacher: str, label: str, student: dict, epochs: int) -> int:
    """How many test images :func:`one_image` can pick from."""
    inputs, _ = _fitted(str(root), ckpt_file(teacher), ckpt_file(student["path"]), label, epochs)
    return len(inputs.test_loader.dataset)


# ---------------------------------------------------------------- study report


def report_download(root: Path, names: list[str]) -> None:
    """The Runs page's report of runs ``names`` of ``root``: what to include, then a download
    button whose page (:func:`~fcfd_viz.reports.study_page.study_report`) is built when
    clicked. The gap reuses what the Functional gap page kept (eval BN, its default budget)."""
    from fcfd_viz.reports import study as sr
    from fcfd_viz.reports import study_page

    paths = [root / n for n in names]
    try:
        study = sr.load_study(paths, root=root)
    except Exception as e:  # noqa: BLE001 - a run deleted or broken meanwhile
        show_error(e)
        return
    from fcfd_viz.experiments.demo_gap import fit_epochs

    epochs = fit_epochs()
    teacher = study.teacher is not None and Path(study.teacher).exists()
    students, cache = bool(study.students), root / CACHE_DIR
    kept = teacher and sr.gap_kept(study, sr.StudyOptions(fit_epochs=epochs), cache)
    probes = teacher and study.task != "detection"  # the probe takes classifiers
    if st.session_state.get("r_rep_for") != (names, kept):  # a new selection: its defaults
        st.session_state.update(r_rep_for=(names, kept), r_rep_probe=probes, r_rep_gap=kept)
    c1, c2, c3 = st.columns([1, 1, 2])
    probe = c1.checkbox("Teacher probe", disabled=not probes, key="r_rep_probe")
    gap = c2.checkbox(
        "Functional gap",
        disabled=not (teacher and students),
        key="r_rep_gap",
        help="kept results of the Functional gap page are reused; otherwise connectors are "
        "fitted first (closed form: about 15 s of CPU for the first student, about 10 s "
        "for each further one: they share the teacher's side)",
    )
    options = sr.StudyOptions(probe=probe and probes, gap=gap and teacher, fit_epochs=epochs)

    def page() -> bytes:  # runs when the button is clicked, in a thread of its own
        return study_page.study_report(paths, None, options, root=root, cache_dir=cache).encode()

    c3.download_button(
        "Download report (HTML)",
        data=page,
        file_name="fcfd-report.html",
        mime="text/html",
        on_click="ignore",
        key="r_report",
    )
    command = sr.report_command(paths, None, options, "report.html")
    st.caption(f"The same from a shell: `{command}`")
