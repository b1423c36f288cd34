"""The gap report: what ``fcfd gap`` prints and the Functional-gap page shows.

:func:`gap_inputs` loads a teacher and students from checkpoints into a bound
:class:`~fcfd_viz.analysis.FunctionalGap` with its data loaders; :func:`gap_report` measures
them in one BN regime and returns a :class:`GapReport` (the result, where it came from and a
one-line reading). Students measured apart (the app caches each on its own) are joined with
:func:`merge_gap_reports`. :func:`student_gap` measures one student as the app and
``fcfd report`` do (connectors fitted on the training split, kept too) and keeps the report on disk
(:func:`gap_file`), so either finds what the other computed.

>>> inputs = gap_inputs(["runs/kd", "runs/fcfd"], teacher="runs/teacher")  # doctest: +SKIP
>>> report = gap_report(inputs, bn="eval", fit=FitConfig(max_epochs=100))  # doctest: +SKIP
>>> report.reading, report.to_dict()["students"]["kd (fitted)"]["functional"]  # doctest: +SKIP
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path

from fcfd_viz.analysis.base import Result, keep, result_file, stored
from fcfd_viz.analysis.gap.fit_config import FitConfig, FitInfo
from fcfd_viz.analysis.gap.functional import FunctionalGap
from fcfd_viz.analysis.gap.inputs import gap_loaders, load_students
from fcfd_viz.analysis.gap.result import GapResult, gap_reading
from fcfd_viz.analysis.gap.spectra import SpectrumResult, gap_spectra, predictors
from fcfd_viz.errors import UserError

INPUT_KEYS = ("path", "method", "dataset", "seed")  # what a report keeps of each student


@dataclass
class GapReport(Result):
    """A :class:`GapResult` with its teacher, dataset, input shape and students' sources."""

    result: GapResult
    teacher: str
    dataset: str | None
    input_shape: list[int]
    inputs: dict[str, dict]  # student label -> path, method, dataset, seed
    spectrum: SpectrumResult | None = None  # where the errors lie (``fcfd gap --spectrum``)

    @property
    def reading(self) -> str:
        """One plain-English line (:func:`~fcfd_viz.analysis.gap_reading`)."""
        return gap_reading(self.result)

    def to_dict(self, curves: bool = True) -> dict:
        """The keys of ``fcfd gap --json``: :meth:`GapResult.to_dict`'s plus ``teacher``,
        ``dataset``, ``input_shape``, ``reading`` and ``inputs``."""
        out = {
            **self.result.to_dict(curves),
            "teacher": self.teacher,
            "dataset": self.dataset,
            "input_shape": list(self.input_shape),
            "reading": self.reading,
            "inputs": {k: dict(v) for k, v in self.inputs.items()},
        }
        if self.spectrum is not None:  # the key only when asked: older reports stay as they were
            out["spectrum"] = self.spectrum.to_dict()
            entries = self.spectrum.entries
            out["spectrum"]["predictors"] = (
                predictors([self.spectrum]) if len(entries) > 1 else None
            )
        return out

    @classmethod
    def from_dict(cls, d: dict) -> GapReport:
        inputs = {k: dict(v) for k, v in d["inputs"].items()}
        shape = list(d["input_shape"])
        spectrum = SpectrumResult.from_dict(d["spectrum"]) if d.get("spectrum") else None
        return cls(GapResult.from_dict(d), d["teacher"], d.get("dataset"), shape, inputs, spectrum)


@dataclass
class GapInputs:
    """What a gap report measures: the bound analysis, its loaders and the models' metadata
    (:func:`~fcfd_viz.analysis.load_students`'s ``info``)."""

    gap: FunctionalGap
    test_loader: object
    train_loaders: dict[str, object]
    info: dict

    def to(self, device) -> GapInputs:
        """Move the teacher, the students and their own bridges to ``device``."""
        for net in (self.gap.teacher, *self.gap.students.values()):
            net.to(device)
        for bridges in self.gap.own.values():
            for b in bridges:
                if b is not None:
                    b.to(device)
        return self

    def fit(self, config: FitConfig, progress: bool = False) -> dict[str, FitInfo]:
        """Fit every student's connectors now (a later report with ``config`` reuses them)."""
        return self.gap.fit(self.train_loaders, config=config, progress=progress)


def gap_inputs(
    students: Sequence[str | Path],
    teacher: str | Path | None = None,
    labels: Sequence[str] | None = None,
    fit_data: str = "full",
    data_dir: str | None = None,
    batch_size: int = 256,
    fit_images: int | None = None,
) -> GapInputs:
    """Teacher and students from checkpoints (files or run directories), bound in a
    :class:`FunctionalGap` with each student's method, and the loaders of
    :func:`~fcfd_viz.analysis.gap.inputs.gap_loaders` (``fit_data``: ``"full"`` training
    split or each ``"student"``'s own subset; ``fit_images``: only its first N images)."""
    if batch_size < 1:
        raise UserError(f"--batch-size must be >= 1, got {batch_size}")
    loaded = load_students(students, teacher, labels)
    shape = loaded.info["input_shape"]
    gap = FunctionalGap(
        loaded.teacher, loaded.students, loaded.bridges, shape, methods=loaded.methods
    )
    test_loader, train_loaders = gap_loaders(
        loaded, fit_data, data_dir, batch_size, fit_images=fit_images
    )
    return GapInputs(gap, test_loader, train_loaders, loaded.info)


def gap_report(
    inputs: GapInputs,
    bn: str = "eval",
    fit: FitConfig | bool | None = None,
    progress: bool = False,
    spectrum: int | None = None,
) -> GapReport:
    """Measure ``inputs`` in BN regime ``bn``; ``fit`` as in :meth:`FunctionalGap.compute`
    (False: only students with their own bridges, nothing fitted). ``spectrum``: also the
    error spectrum (:func:`~fcfd_viz.analysis.gap.spectra.gap_spectra`) on that many test
    images."""
    train = None if fit is False else inputs.train_loaders
    res = inputs.gap.compute(inputs.test_loader, train, bn=bn, fit=fit, progress=progress)
    spec = None
    if spectrum is not None:
        spec = gap_spectra(inputs.gap, inputs.test_loader, bn=bn, images=spectrum)
    info = inputs.info
    sources = {k: {f: v.get(f) for f in INPUT_KEYS} for k, v in info["students"].items()}
    shape = list(info["input_shape"])
    return GapReport(res, info["teacher"], info["dataset"], shape, sources, spec)


def merge_gap_reports(reports: Sequence[GapReport]) -> GapReport:
    """One report of students measured apart against the same teacher, regime and test
    batches: their entries side by side (in the given order), the seconds summed."""
    if not reports:
        raise UserError("no gap reports to merge")

    def setting(r: GapReport) -> tuple:
        res = r.result
        return r.teacher, res.bn, res.stages, res.num_images, res.batch_size

    first = reports[0]
    if any(setting(r) != setting(first) for r in reports[1:]):
        raise UserError(
            "gap reports of different teachers, BN regimes or test batches cannot be merged"
        )
    entries = {k: e for r in reports for k, e in r.result.entries.items()}
    seconds = sum(r.result.seconds for r in reports)
    result = replace(first.result, entries=entries, seconds=seconds)
    inputs = {k: v for r in reports for k, v in r.inputs.items()}
    spectrum = None
    parts = [r.spectrum for r in reports if r.spectrum is not None]
    if len(parts) == len(reports):  # every student's, side by side
        spectra = {k: e for part in parts for k, e in part.entries.items()}
        spectrum = replace(parts[0], entries=spectra)
    return replace(first, result=result, inputs=inputs, spectrum=spectrum)


# ---------------------------------------------------------------- one student at a time
def gap_labels(methods: Sequence[str], names: Sequence[str]) -> list[str]:
    """One distinct label per student: its method, or ``method: name`` where methods repeat."""
    methods = list(methods)
    return [m if methods.count(m) == 1 else f"{m}: {n}" for m, n in zip(methods, names)]


# post-hoc connectors are fitted on the whole training split (`fcfd gap`'s default, as in
# benchmarks/gap.py): on a 10%-subset student's own images the wide last-stage connector
# overfits, and the gap it reports says more about the fit than about the student
FIT_DATA = "full"
# how the app, `fcfd report` and `fcfd defaults` fit connectors (part of their cache keys: a
# report of another method is never taken for this one's)
FIT_METHOD = FitConfig().method


def fitted_student(
    teacher: str | Path,
    student: str | Path,
    label: str,
    max_epochs: int,
    data_dir: str | None = None,
    progress: bool = False,
    folder: str | os.PathLike | None = None,
    method: str = FIT_METHOD,
) -> tuple[GapInputs, FitConfig]:
    """One student's gap inputs with its connectors fitted on the training split
    (:data:`FIT_DATA`) by ``method`` for at most ``max_epochs``, and the fit's config. With ``folder``, the
    connectors are read from it when fitted before and kept there otherwise
    (:func:`~fcfd_viz.analysis.gap.connectors.save_connectors`): a later session skips the fit."""
    from fcfd_viz.analysis.gap.connectors import load_connectors, save_connectors
    from fcfd_viz.runs.checkpoints import checkpoint_key

    config = FitConfig(max_epochs=max_epochs, method=method)
    config.validate()
    inputs = gap_inputs([student], teacher, [label], fit_data=FIT_DATA, data_dir=data_dir)
    if folder is None:
        inputs.fit(config, progress=progress)
        return inputs, config
    key = [checkpoint_key(teacher), checkpoint_key(student), label, max_epochs, FIT_DATA, method]
    saved = result_file(folder, "connectors", key).with_suffix(".pt")
    gap = inputs.gap
    try:
        gap.set_fitted(
            label, *load_connectors(saved, gap.teacher, gap.students[label], gap.input_shape)
        )
    except Exception:  # noqa: BLE001 - absent, unreadable or of an older layout: fit anew
        inputs.fit(config, progress=progress)
        fitted = gap.fitted(label)
        assert fitted is not None  # (fit() fitted it)
        keep(saved, lambda p: save_connectors(p, *fitted))
    return inputs, config


def gap_file(
    folder: str | os.PathLike,
    teacher: tuple,
    student: tuple,
    label: str,
    bn: str,
    max_epochs: int,
    method: str = FIT_METHOD,
    spectrum: int | None = None,
) -> Path:
    """``folder/gap-<hash>.json``: where :func:`student_gap` keeps a report, keyed by the
    teacher's and the student's :func:`~fcfd_viz.runs.checkpoints.checkpoint_key`, the label, the
    BN regime, the fit budget, the fit data, the fit method and (when measured) the error
    spectrum's image count."""
    key = [teacher, student, label, bn, max_epochs, FIT_DATA, method, "report"]
    key += [] if spectrum is None else [f"spectrum {spectrum}"]  # reports without: same key
    return result_file(folder, "gap", key)


def student_gap(
    teacher: str | Path,
    student: str | Path,
    label: str,
    bn: str = "eval",
    max_epochs: int = 100,
    folder: str | os.PathLike | None = None,
    data_dir: str | None = None,
    progress: bool = False,
    fitted: Callable[[], tuple[GapInputs, FitConfig]] | None = None,
    method: str = FIT_METHOD,
    spectrum: int | None = None,
) -> GapReport:
    """The gap report of one student (connectors from :func:`fitted_student`, or ``fitted()``
    when given: the app shares fitted connectors between BN regimes), read from and kept in
    ``folder`` (:func:`gap_file`) when one is given; ``spectrum``: with the error spectrum on
    that many test images (kept under its own key)."""
    from fcfd_viz.runs.checkpoints import checkpoint_key

    def compute() -> GapReport:
        if fitted is not None:
            inputs, config = fitted()
        else:
            inputs, config = fitted_student(
                teacher, student, label, max_epochs, data_dir, progress, folder, method
            )
        return gap_report(inputs, bn, config, progress=progress, spectrum=spectrum)

    if folder is None:
        return compute()
    keys = checkpoint_key(teacher), checkpoint_key(student)
    file = gap_file(folder, *keys, label, bn, max_epochs, method, spectrum)
    return stored(GapReport, file, compute)
