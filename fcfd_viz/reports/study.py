"""The study report: one shareable HTML page of runs (``fcfd report``, the Runs page's download).

A study is a set of run directories and their teacher. Its page holds the runs' training
curves, the teacher's probe (:func:`~fcfd_viz.analysis.reports.probe.probe_report`), the
students' functional gap (:func:`~fcfd_viz.analysis.reports.gap.student_gap`: one student
at a time, kept on disk where the app keeps it) and every run's ``config.json`` with the
``fcfd`` command that trains it again (:func:`train_command`). :func:`load_study` reads the
runs (JSON only: cheap) and finds the teacher; :func:`study_report` measures what
:class:`StudyOptions` ask for and returns the page (:func:`fcfd_viz.viz.report.html_page`,
plotly.js inlined: it opens offline).

>>> html = study_report(["runs/kd", "runs/fcfd"], options=StudyOptions(gap=False))  # doctest: +SKIP
"""

from __future__ import annotations

import os
import shlex
from collections.abc import Sequence
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

from fcfd_viz.errors import UserError

CURVE_POINTS = 2000  # metrics records per curve at most: a long history is thinned


@dataclass(frozen=True)
class StudyOptions:
    """What a study report measures besides the curves (the flags of ``fcfd report``)."""

    probe: bool = True  # the teacher's perturbation anisotropy
    gap: bool = True  # the students' functional gap
    stage: int | None = None  # the probe's cut; None: stage 2, or the last of a shallower net
    images: int = 32  # test images the probe perturbs
    bn: str = "eval"  # the gap's BN regime
    fit_epochs: int = 100  # connector fit budget (the Functional gap page's default)
    data_dir: str | None = None  # CIFAR / ImageNet data
    spectrum: int | None = None  # the gap's error spectrum on that many test images; None: not

    def validate(self) -> None:
        """A one-line :class:`UserError` naming the flag of a bad value."""
        from fcfd_viz.analysis.gap.result import check_regime

        if self.images < 1:
            raise UserError(f"--images must be >= 1, got {self.images}")
        if self.fit_epochs < 1:
            raise UserError(f"--fit-max-epochs must be >= 1, got {self.fit_epochs}")
        if self.spectrum is not None and self.spectrum < 1:
            raise UserError(f"--spectrum must be >= 1 images, got {self.spectrum}")
        if self.stage is not None and self.stage < 0:
            raise UserError(f"--stage must be >= 0, got {self.stage}")
        check_regime(self.bn)

    def argv(self) -> list[str]:
        """These options as ``fcfd report`` flags (those that differ from the defaults)."""
        d, out = StudyOptions(), []
        out += ["--no-probe"] if not self.probe else []
        out += ["--no-gap"] if not self.gap else []
        named = (("--stage", "stage"), ("--images", "images"), ("--bn", "bn"))
        for flag, name in (*named, ("--spectrum", "spectrum")):
            if getattr(self, name) != getattr(d, name):
                out += [flag, str(getattr(self, name))]
        if self.fit_epochs != d.fit_epochs:
            out += ["--fit-max-epochs", str(self.fit_epochs)]
        return out + (["--data-dir", self.data_dir] if self.data_dir else [])


@dataclass
class StudyRun:
    """One run directory of a study: where it is, how it is named, what it recorded."""

    path: Path  # as given
    name: str  # relative to the runs folder when it lies inside it
    row: dict  # its row of the runs table (:func:`fcfd_viz.runs.listing.run_row`)
    config: dict  # config.json
    is_teacher: bool = False  # the study's teacher

    @cached_property
    def metrics(self) -> list[dict]:
        """metrics.jsonl records (at most about :data:`CURVE_POINTS`), read when first asked."""
        from fcfd_viz.runs.layout import Run

        return Run(self.path).metrics(max_points=CURVE_POINTS)

    @property
    def method(self) -> str:
        return self.row["method"]

    @property
    def label(self) -> str:
        """``teacher: NAME`` or ``METHOD: NAME`` (a curve's legend, coloured by method)."""
        return f"{'teacher' if self.is_teacher else self.method}: {self.name}"

    @property
    def command(self) -> str:
        return train_command(self.path, self.config)


@dataclass
class Study:
    """Runs (the teacher's first when it is a run directory) and the teacher's checkpoint
    (a file or run directory; None when the runs record none and none was given)."""

    runs: list[StudyRun]
    teacher: str | None

    @property
    def students(self) -> list[StudyRun]:
        return [r for r in self.runs if not r.is_teacher]

    @property
    def task(self) -> str:
        """``"detection"`` or ``"classification"`` (:func:`load_study` refuses a mix)."""
        return self.runs[0].row["task"] if self.runs else "classification"

    @property
    def gap_labels(self) -> list[str]:
        """The students' labels in the gap: their methods, ``method: run`` where one repeats."""
        from fcfd_viz.analysis.reports.gap import gap_labels

        return gap_labels([r.method for r in self.students], [r.name for r in self.students])


def gap_kept(study: Study, options: StudyOptions, cache_dir: str | os.PathLike) -> bool:
    """Whether ``cache_dir`` keeps the gap of every student (the report then fits nothing)."""
    from fcfd_viz.analysis.reports.gap import gap_file
    from fcfd_viz.runs.checkpoints import checkpoint_key

    if study.teacher is None or not study.students:
        return False
    try:
        t = checkpoint_key(study.teacher)
        keys = [checkpoint_key(r.path) for r in study.students]
    except (UserError, OSError):  # a checkpoint missing: nothing to reuse
        return False
    return all(
        gap_file(
            cache_dir, t, s, label, options.bn, options.fit_epochs, spectrum=options.spectrum
        ).exists()
        for s, label in zip(keys, study.gap_labels)
    )


def train_command(path: str | os.PathLike, config: dict) -> str:
    """The command that trains run ``path`` again into ``PATH-again`` from its own
    config.json (a complete ``--config``: same config, and on CPU with the same seed and
    thread count the same metrics): ``fcfd train-teacher`` for a cross-entropy run without a
    teacher, else ``fcfd distill``; under ``torchrun`` when the run was distributed."""
    from fcfd_viz.runs.layout import method_fields

    p = Path(path)
    p = p if p.name else p.absolute()
    method = method_fields(config)[0]
    sub = "train-teacher" if method == "ce" and not config.get("teacher") else "distill"
    world = (config.get("distributed") or {}).get("world_size")
    head = ["fcfd"]
    if isinstance(world, int) and world > 1:
        head = ["torchrun", f"--nproc_per_node={world}", "-m", "fcfd_viz"]
    again = p.parent / f"{p.name}-again"
    return shlex.join([*head, sub, "--config", str(p / "config.json"), "--out", str(again)])


def report_command(
    runs: Sequence[str | os.PathLike],
    teacher: str | os.PathLike | None,
    options: StudyOptions,
    out: str | os.PathLike,
) -> str:
    """The ``fcfd report`` command that writes this study's page to ``out``."""
    given = ["--teacher", str(teacher)] if teacher is not None else []
    argv = ["fcfd", "report", *map(str, runs), *given, *options.argv(), "--out", str(out)]
    return shlex.join(argv)


def load_run(path: str | os.PathLike, root: str | os.PathLike | None = None) -> StudyRun:
    """A run directory's records, or a one-line :class:`UserError` for a missing folder, one
    without config.json or with unreadable files."""
    from fcfd_viz.runs.layout import Run
    from fcfd_viz.runs.listing import run_row

    p = Path(path)
    if not p.is_dir():
        raise UserError(f"{p}: no such run directory")
    row = run_row(p)
    if row is None:
        raise UserError(f"{p}: not a run directory (no config.json)")
    if row["state"] == "unreadable":
        raise UserError(f"{p}: unreadable run ({row['error']})")
    name = str(p)
    if root is not None and Path(root).resolve() in p.resolve().parents:
        name = p.resolve().relative_to(Path(root).resolve()).as_posix()
    return StudyRun(p, name, row, Run(p).config())


def _identity(ckpt: str) -> str:
    """One name per checkpoint, however the path to it is written."""
    from fcfd_viz.runs.checkpoints import checkpoint_file

    try:
        return str(checkpoint_file(ckpt).resolve())
    except (UserError, OSError):
        return str(Path(ckpt).resolve())


def load_study(
    runs: Sequence[str | os.PathLike],
    teacher: str | os.PathLike | None = None,
    root: str | os.PathLike | None = None,
    need_teacher: bool = False,
) -> Study:
    """The runs (each once) and their teacher: ``teacher``, else the one the runs record
    (runs recording different ones are an error). The teacher's run directory joins the
    runs, first. ``root`` names runs relative to a runs folder; ``need_teacher``: a teacher
    given or recorded must exist (the probe and the gap load it)."""
    from fcfd_viz.runs.checkpoints import checkpoint_file

    if not runs:
        raise UserError("name at least one run directory")
    loaded: dict[str, StudyRun] = {}
    for p in runs:
        run = load_run(p, root)
        loaded.setdefault(str(run.path.resolve()), run)
    if len({r.row["task"] for r in loaded.values()}) > 1:
        raise UserError("the runs mix detection and classification runs; report one task at a time")
    if teacher is None:
        recorded = {}
        for run in loaded.values():
            t = run.config.get("teacher")
            if isinstance(t, str) and t:
                recorded.setdefault(_identity(t), t)
        if len(recorded) > 1:
            names = ", ".join(sorted(recorded.values()))
            raise UserError(f"the runs record different teachers ({names}); pass --teacher CKPT")
        teacher = next(iter(recorded.values()), None)
        if teacher is not None and need_teacher and not Path(teacher).exists():
            raise UserError(
                f"the runs' teacher {teacher} (recorded in their config.json) is not found "
                "from here; pass --teacher CKPT"
            )
    elif need_teacher:
        checkpoint_file(teacher)  # a one-line error for a wrong --teacher
    study = Study(list(loaded.values()), None if teacher is None else str(teacher))
    if teacher is not None and Path(teacher).exists():
        folder = Path(teacher) if Path(teacher).is_dir() else Path(teacher).parent
        key = str(folder.resolve())
        if key not in loaded and (folder / "config.json").is_file():
            try:
                loaded[key] = load_run(folder, root)
            except UserError:  # a checkpoint in some folder, not a readable run: no curves
                return study
        if key in loaded:
            loaded[key].is_teacher = True
            study.runs = [loaded[key], *(r for k, r in loaded.items() if k != key)]
    return study
