"""The Functional gap page's cached results: each student's connectors fitted once (memory
and RUNS/.cache), its gap report per BN regime (with the error spectrum when asked), and one
test image through the fitted connectors."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import models_state
import state
import streamlit as st

from fcfd_viz.runs.layout import CACHE_DIR

if TYPE_CHECKING:
    from fcfd_viz.analysis.gap.spectra import SpectrumResult
    from fcfd_viz.analysis.reports.gap import GapReport


@st.cache_resource(max_entries=24, show_spinner=False)
def _fitted(root: str, t: tuple, s: tuple, label: str, epochs: int):
    """One student's gap inputs with its connectors fitted on the training split, read-only
    afterwards; the connectors are kept in RUNS/.cache, so a restarted app does not fit again."""
    from fcfd_viz.analysis.reports.gap import fitted_student

    return fitted_student(t[0], s[0], label, epochs, folder=Path(root) / CACHE_DIR)


def _gap_file(root, t: tuple, s: tuple, label: str, bn: str, epochs: int, spectrum=None) -> Path:
    """RUNS/.cache/gap-<hash>.json: a restarted app (and `fcfd report`) shows a computed gap
    at once (a report with the error spectrum on ``spectrum`` images under its own key)."""
    from fcfd_viz.analysis.reports.gap import gap_file

    return gap_file(Path(root) / CACHE_DIR, t, s, label, bn, epochs, spectrum=spectrum)


@st.cache_data(max_entries=128, show_spinner=False)
def _gap_one(
    root: str, t: tuple, s: tuple, label: str, bn: str, epochs: int, spectrum: int | None
) -> GapReport:
    from fcfd_viz.analysis.reports.gap import student_gap

    folder = Path(root) / CACHE_DIR
    fitted = lambda: _fitted(root, t, s, label, epochs)  # noqa: E731
    return student_gap(t[0], s[0], label, bn, epochs, folder, fitted=fitted, spectrum=spectrum)


@st.fragment(run_every=2.0)
def default_gap_progress() -> None:
    """A progress bar of the background fits of the default students' connectors
    (:mod:`fcfd_viz.experiments.demo_gap`), redrawn every 2 s; the page reruns once they are done."""
    from fcfd_viz.experiments.demo_gap import default_gap_progress as progress
    from fcfd_viz.experiments.demo_gap import default_gap_running

    root = state.runs_dir()
    p = progress(root) or {"fraction": 0.0, "message": "starting"}
    st.progress(p["fraction"], text=p["message"])
    if not default_gap_running(root):
        st.rerun()  # done (or failed): redraw the whole page once


def gap_labels(students: list[dict]) -> list[str]:
    """One distinct label per student: its method, or ``method: run`` for duplicates."""
    from fcfd_viz.analysis.reports.gap import gap_labels as labels

    return labels([c["method"] for c in students], [c["name"] for c in students])


def gap(
    root: Path, teacher: str, students: list[dict], bn: str, epochs: int, spectrum: int | None
) -> GapReport:
    """Functional gap of ``students`` (checkpoint rows) against ``teacher``: one cached
    report per student (memory and RUNS/.cache, keyed by checkpoint paths + mtimes, BN
    regime, fit budget and the error spectrum's image count, None: no spectrum), merged by
    the library; a new selection computes only new students."""
    from fcfd_viz.analysis.gap.shared_teacher import shared_teacher
    from fcfd_viz.analysis.reports.gap import merge_gap_reports

    t = models_state.ckpt_file(teacher)
    labels = gap_labels(students)
    with shared_teacher():  # the students' fits share the teacher's features and Grams
        reports = [
            _gap_one(str(root), t, models_state.ckpt_file(c["path"]), lab, bn, epochs, spectrum)
            for c, lab in zip(students, labels)
        ]
    return merge_gap_reports(reports)


def gap_cached(
    root: Path, teacher: str, students: list[dict], bn: str, epochs: int, spectrum: int | None
) -> bool:
    """Whether :func:`gap` would answer from the disk cache (no fitting)."""
    t = models_state.ckpt_file(teacher)
    return all(
        _gap_file(root, t, models_state.ckpt_file(c["path"]), label, bn, epochs, spectrum).exists()
        for c, label in zip(students, gap_labels(students))
    )


@st.cache_data(max_entries=32, show_spinner=False)
def spectrum_predictors(spectrum: SpectrumResult) -> dict | None:
    """Whether fisher or l2 predicts the KL across ``spectrum``'s views and stages
    (:func:`~fcfd_viz.analysis.gap.spectra.predictors`: Spearman with bootstrap intervals);
    None for fewer than two views."""
    from fcfd_viz.analysis.gap.spectra import predictors

    return predictors([spectrum]) if len(spectrum.entries) > 1 else None


def one_image(
    root: Path, teacher: str, students: dict[str, dict], epochs: int, index: int, stage: int
):
    """(image, :class:`~fcfd_viz.analysis.gap.one_image.ImagePredictions`) of test image ``index``
    at ``stage`` through the fitted connectors of ``students`` (label -> checkpoint row, the
    labels :func:`gap` used: the fits are shared with it and kept in RUNS/.cache)."""
    from fcfd_viz.analysis.gap.one_image import bridged_predictions

    t, pred, image = models_state.ckpt_file(teacher), None, None
    for label, c in students.items():
        inputs, _ = _fitted(str(root), t, models_state.ckpt_file(c["path"]), label, epochs)
        image, y = inputs.test_loader.dataset[index]
        p = bridged_predictions(inputs.gap, image, stage, int(y))
        pred = p if pred is None else pred.merged(p)
    return image, pred


def test_images(root: Path, teacher: str, label: str, student: dict, epochs: int) -> int:
    """How many test images :func:`one_image` can pick from."""
    inputs, _ = _fitted(
        str(root),
        models_state.ckpt_file(teacher),
        models_state.ckpt_file(student["path"]),
        label,
        epochs,
    )
    return len(inputs.test_loader.dataset)
