"""The sections of a study report's page (:func:`~fcfd_viz.reports.study.study_report`):
the runs table, the training curves, the teacher's probe, the students' functional gap and
how to train every run again. Each measured part says the ``fcfd`` command that measures it
alone; figures come from :mod:`fcfd_viz.viz.figures`, the HTML from :mod:`fcfd_viz.viz.report`."""

from __future__ import annotations

import json
import os
import shlex
from collections.abc import Sequence

from fcfd_viz.analysis.reports.gap import FIT_DATA
from fcfd_viz.reports.study import (
    Study,
    StudyOptions,
    StudyRun,
    load_study,
    report_command,
)
from fcfd_viz.runs.listing import shown_metric
from fcfd_viz.viz.report import Section, code, details, heading, table, text

PROBE_ATTRIBUTION = "grad_x_act"  # the captum method the probe ranks against (the cheapest)
RUN_COLUMNS = ("run", "role", "method", "student", "dataset", "epochs", "top1", "best_top1")


def report_sections(
    study: Study, options: StudyOptions, cache_dir: str | os.PathLike | None, progress: bool
) -> list[Section]:
    """Every section of the page, measuring what ``options`` ask for."""
    sections = [runs_section(study), curves_section(study)]
    if options.probe:
        sections.append(probe_section(study, options, progress))
    if options.gap:
        sections.append(gap_section(study, options, cache_dir, progress))
    return [*sections, commands_section(study)]


def runs_section(study: Study) -> Section:
    rows = [
        {**r.row, "run": r.name, "role": "teacher" if r.is_teacher else "student"}
        for r in study.runs
    ]
    columns = [shown_metric(study.task, c) for c in RUN_COLUMNS]  # detection: mAP for top-1
    return Section("Runs", table(rows, columns))


def curves_section(study: Study) -> Section:
    """Test and train top-1 (detection: test mAP) of every run in one figure, then each
    run's loss terms."""
    from fcfd_viz.viz import figures as viz

    figures = [viz.accuracy_curves_figure({r.label: r.metrics for r in study.runs})]
    figures += [
        viz.loss_curves_figure(r.metrics, f"Training losses: {r.label}") for r in study.runs
    ]
    return Section("Training curves", "", figures)


def _missing(title: str, why: str) -> Section:
    return Section(title, text(f"Not measured: {why}", note=True))


def _fmt(v: float | None) -> str:
    return "n/a" if v is None else f"{v:.3g}"


def probe_section(study: Study, options: StudyOptions, progress: bool) -> Section:
    """The teacher's perturbation anisotropy after one stage, as ``fcfd probe`` measures it."""
    from fcfd_viz.analysis.cuts import make_cut
    from fcfd_viz.analysis.reports.probe import probe_images, probe_report
    from fcfd_viz.runs.checkpoints import load_checkpoint, model_from_checkpoint
    from fcfd_viz.viz import figures as viz

    title = "Teacher probe: sensitivity and anisotropy"
    if study.teacher is None:
        return _missing(title, "the runs record no teacher (pass --teacher CKPT).")
    if study.task == "detection":
        return _missing(
            title, "the probe takes classifiers and these runs are detectors (the gap "
            "section compares their FPN levels)."
        )  # fmt: skip
    ckpt = load_checkpoint(study.teacher)
    net = model_from_checkpoint(ckpt)
    stage = options.stage if options.stage is not None else min(2, net.num_stages - 1)
    make_cut(net, stage)  # a stage the net lacks fails before the images load
    images, info = probe_images(ckpt, options.images, data_dir=options.data_dir)
    report = probe_report(
        net, images, stage, attribution=[PROBE_ATTRIBUTION], ckpt=ckpt["path"],
        dataset=info.name, progress=progress,
    )  # fmt: skip
    d = report.to_dict(full=False)
    line = (
        f"{d['arch']} cut after stage {stage} {tuple(d['feature_shape'])}, {d['num_images']} "
        f"{d['dataset']} test images, eps {d['eps']} of ||f||, {d['mode']} mode: channel "
        f"sensitivity max/min {_fmt(d['anisotropy_ratio'])}, p95/p5 {_fmt(d['p95_p5_ratio'])}; "
        f"random directions median {_fmt(d['random_median'])}."
    )
    argv = ["fcfd", "probe", study.teacher, "--stage", str(stage), "--images", str(options.images)]
    argv += ["--attribution", PROBE_ATTRIBUTION, *_data_dir(options)]
    body = text(line) + text("Measured alone by:", note=True) + code(shlex.join(argv))
    return Section(title, body, viz.probe_figures(report))


def _data_dir(options: StudyOptions) -> list[str]:
    return ["--data-dir", options.data_dir] if options.data_dir else []


def gap_section(
    study: Study, options: StudyOptions, cache_dir: str | os.PathLike | None, progress: bool
) -> Section:
    """The students' appearance vs functional gap against the teacher, one student at a time
    (kept in ``cache_dir``), merged."""
    from tqdm.auto import tqdm

    from fcfd_viz.analysis.reports.gap import merge_gap_reports, student_gap
    from fcfd_viz.viz import figures as viz

    title = "Functional gap: teacher and students"
    if study.teacher is None:
        return _missing(title, "the runs record no teacher (pass --teacher CKPT).")
    students = study.students
    if not students:
        return _missing(title, "no student runs beside the teacher.")
    if study.task == "detection":
        return det_gap_section(study, options, progress)
    labels = study.gap_labels
    bar = tqdm(
        list(zip(students, labels)), desc="functional gap", unit="student", disable=not progress
    )
    reports = [
        student_gap(
            study.teacher, run.path, label, options.bn, options.fit_epochs, folder=cache_dir,
            data_dir=options.data_dir, progress=progress, spectrum=options.spectrum,
        )
        for run, label in bar
    ]  # fmt: skip
    report = merge_gap_reports(reports)
    res = report.result
    flags = ["--fit-data", FIT_DATA, "--fit-max-epochs", str(options.fit_epochs)]
    flags += ["--bn", options.bn, *_data_dir(options)]
    about = (
        f"Teacher top-1 {res.teacher_accuracy:.2f}% on {res.num_images} test images, "
        f"{res.bn_label}. Students without their own bridges get connectors fitted on "
        f"their own training subset (at most {options.fit_epochs} epochs)."
    )
    figures = viz.gap_figures(res)
    if report.spectrum is not None:
        about += " " + spectrum_reading(report)
        flags += ["--spectrum", str(options.spectrum)]
        figures += spectrum_figures(report)
    body = _gap_body(study, labels, report.reading, about, flags)
    return Section(title, body, figures)


def spectrum_reading(report) -> str:
    """One paragraph on the report's error spectrum: what it is and, for two or more
    students, which appearance metric ranks the functional gap."""
    from fcfd_viz.analysis.gap.spectra import predictor_text, predictors, stage_predictor_text

    spec = report.spectrum
    line = (
        f"Error spectrum on {spec.images} test images: the share of each student's bridged "
        "error in the teacher's most sensitive directions, against an isotropic error's."
    )
    if len(spec.entries) < 2:
        return line
    p = predictors([spec])
    within = stage_predictor_text(p)
    return (
        line
        + f" Spearman with the measured KL over students and stages: {predictor_text(p)}."
        + (f" {within[0].upper()}{within[1:]}." if within else "")
    )


def spectrum_figures(report) -> list:
    """The error spectrum's figures of a gap report that has one."""
    from fcfd_viz.analysis.gap.spectra import predictors
    from fcfd_viz.viz import spectrum as viz_spectrum

    figs = [viz_spectrum.share_figure([report.spectrum])]
    if len(report.spectrum.entries) > 1:
        p = predictors([report.spectrum])
        figs.append(viz_spectrum.predictor_figure([report.spectrum], p))
    return figs


def _gap_body(study: Study, labels: list[str], reading: str, about: str, flags: list[str]) -> str:
    """A gap section's text: its reading, what it measured and the ``fcfd gap`` command
    (the students under ``labels``, then ``flags``) that measures it alone."""
    if study.teacher is None:
        raise ValueError("a gap section needs the study's teacher")
    argv = ["fcfd", "gap", "--teacher", study.teacher]
    for run, label in zip(study.students, labels):
        argv += ["--student", str(run.path), "--label", label]
    command = code(shlex.join([*argv, *flags]))
    return text(reading) + text(about) + text("Measured alone by:", note=True) + command


def det_gap_section(study: Study, options: StudyOptions, progress: bool) -> Section:
    """The detector students' per-FPN-level appearance vs functional gap, as ``fcfd gap``
    measures detector checkpoints (eval-mode BN; connectors fitted on the full training
    split for students without their own bridges, at most ``options.fit_epochs`` epochs).
    Measured afresh each time: detection gaps are not kept in the runs folder's cache."""
    from dataclasses import replace

    from fcfd_viz.detection.gap import DET_FIT
    from fcfd_viz.detection.gap_report import check_det_regime, det_gap_inputs, det_gap_report
    from fcfd_viz.viz import detection as viz_detection

    check_det_regime(options.bn)
    epochs = options.fit_epochs
    fit = replace(DET_FIT, max_epochs=epochs, min_epochs=min(DET_FIT.min_epochs, epochs))
    labels = study.gap_labels
    paths = [r.path for r in study.students]
    inputs = det_gap_inputs(paths, study.teacher, labels, options.data_dir)
    report = det_gap_report(inputs, fit=fit, progress=progress)
    res = report.result
    about = (
        f"{res.num_images} test images of {report.dataset}, eval-mode BN. Students without "
        f"their own bridges get connectors fitted on the training split (at most {epochs} "
        "epochs)."
    )
    flags = ["--fit-max-epochs", str(epochs), *_data_dir(options)]
    body = _gap_body(study, labels, report.reading, about, flags)
    return Section(
        "Functional gap: teacher and students", body, [viz_detection.det_gap_figure(res)]
    )


def commands_section(study: Study) -> Section:
    """Every run's command line and config.json."""
    body = text(
        "Each command trains the run again from its config.json (shown under it: save it "
        "there to run the command elsewhere); on CPU, with the same seed and thread count, "
        "it gives the same metrics."
    )
    body += "".join(_run_commands(r) for r in study.runs)
    return Section("How to train each run again", body)


def _run_commands(run: StudyRun) -> str:
    config = json.dumps(run.config, indent=2, sort_keys=True, default=str)
    return (
        heading(run.label)
        + code(run.command)
        + details(f"{run.path / 'config.json'}", code(config))
    )


def study_report(
    runs: Sequence[str | os.PathLike],
    teacher: str | os.PathLike | None = None,
    options: StudyOptions | None = None,
    *,
    root: str | os.PathLike | None = None,
    cache_dir: str | os.PathLike | None = None,
    progress: bool = False,
    out: str | os.PathLike = "report.html",
    title: str | None = None,
) -> str:
    """The study's self-contained HTML page.

    Args:
        runs: run directories (the teacher's joins them when the runs record it).
        teacher: teacher checkpoint or run directory (default: the one the runs record).
        options: what to measure (:class:`StudyOptions`; default: probe and gap).
        root: the runs folder, which names runs inside it relative to it.
        cache_dir: where gap reports are kept (the app's ``RUNS/.cache``); None: none kept.
        progress: tqdm bars for the probe, the connector fits and the gap.
        out: the file the page is for (named in its ``fcfd report`` command line).
        title: the page's title (default: names the teacher).
    """
    from fcfd_viz import __version__
    from fcfd_viz.viz.report import code, html_page, text

    options = options or StudyOptions()
    options.validate()
    study = load_study(runs, teacher, root, need_teacher=options.probe or options.gap)
    sections = report_sections(study, options, cache_dir, progress)
    head = study.runs[0].name if study.runs[0].is_teacher else study.teacher
    title = title or f"fcfd report: {len(study.runs)} runs" + (f" ({head})" if head else "")
    intro = text(f"Made with fcfd-viz {__version__} by:") + code(
        report_command(runs, teacher, options, out)
    )
    return html_page(sections, title, intro)
