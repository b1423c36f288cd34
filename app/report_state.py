"""The Runs page's shareable report: what to include, then a download button."""

from __future__ import annotations

from pathlib import Path

import state
import streamlit as st

from fcfd_viz.runs.layout import CACHE_DIR


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
        state.show_error(e)
        return
    from fcfd_viz.experiments import tasks
    from fcfd_viz.experiments.demo_gap import fit_epochs

    epochs = fit_epochs()
    teacher = study.teacher is not None and Path(study.teacher).exists()
    students, cache = bool(study.students), root / CACHE_DIR
    kept = teacher and sr.gap_kept(study, sr.StudyOptions(fit_epochs=epochs), cache)
    probes = teacher and tasks.task(study.task).probes  # the probe takes classifiers
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
