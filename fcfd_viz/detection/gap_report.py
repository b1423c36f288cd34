"""The detection gap report: what ``fcfd gap`` prints for detector checkpoints, what the
Detection page and notebook 06 show.

:func:`det_gap_inputs` loads a detection teacher and students from checkpoints (files or run
directories) into a bound :class:`~fcfd_viz.detection.gap.DetectionGap` (FCFD students
bring their own s2t bridges) with the test and training loaders of their dataset;
:func:`det_gap_report` measures them and returns a :class:`DetGapReport`.
:func:`checkpoints_task` says which gap a set of checkpoints needs, refusing a mix.

>>> inputs = det_gap_inputs(["runs/det-kd", "runs/det-fcfd"], fit_images=200)  # doctest: +SKIP
>>> report = det_gap_report(inputs)                                             # doctest: +SKIP
>>> report.to_dict()["students"]["kd (fitted)"]["functional"]["p3"]             # doctest: +SKIP
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from functools import partial
from pathlib import Path

from torch import nn
from torch.utils.data import DataLoader

from fcfd_viz.analysis.base import Result
from fcfd_viz.analysis.gap.fit_config import FitConfig
from fcfd_viz.analysis.gap.inputs import first_items, student_labels
from fcfd_viz.detection.gap import DetectionGap, bridges_of
from fcfd_viz.detection.gap_result import DetGapResult, det_gap_reading
from fcfd_viz.errors import UserError

INPUT_KEYS = ("path", "method", "dataset", "seed")  # what a report keeps of each student


def _task(ckpt: dict) -> str:
    return ckpt["model"].get("task") or "classification"


def checkpoints_task(students: Sequence[str | Path], teacher: str | Path | None = None) -> str:
    """``"detection"`` or ``"classification"``: the task of the students and the teacher
    (the recorded one when None); a one-line :class:`UserError` when they mix tasks."""
    from fcfd_viz.runs.checkpoints import load_checkpoint

    if not students:
        raise UserError("pass at least one student checkpoint")
    ckpts = [load_checkpoint(p) for p in students]
    tasks = {c["path"]: _task(c) for c in ckpts}
    if teacher is None:
        recorded = {c.get("teacher") for c in ckpts}
        teacher = recorded.pop() if len(recorded) == 1 and None not in recorded else None
    if teacher is not None:
        t = load_checkpoint(teacher)
        for path, task in tasks.items():
            if task != _task(t):
                raise UserError(
                    f"teacher {t['path']} is a {_kind(_task(t))} but student {path} is a "
                    f"{_kind(task)}; compare students and a teacher of one task (detection "
                    "students come from `fcfd distill --task detection`)"
                )
    if len(set(tasks.values())) > 1:
        raise UserError("the students mix detectors and classifiers; pass students of one task")
    return next(iter(tasks.values()))


def check_det_regime(bn: str, fit_data: str = "full") -> None:
    """The detection gap runs every network in eval mode and fits connectors on the full
    training split: a one-line :class:`UserError` for anything else."""
    if bn != "eval" or fit_data != "full":
        raise UserError(
            "the detection gap runs every network in eval mode on the full training split; "
            "drop --bn batch / --fit-data student"
        )


def _kind(task: str) -> str:
    return "detector" if task == "detection" else "classifier"


@dataclass
class DetGapReport(Result):
    """A :class:`DetGapResult` with its teacher, dataset and students' sources."""

    result: DetGapResult
    teacher: str
    dataset: str | None
    inputs: dict[str, dict]  # student label -> path, method, dataset, seed

    @property
    def reading(self) -> str:
        return det_gap_reading(self.result)

    def to_dict(self, curves: bool = True) -> dict:
        """``fcfd gap --json`` of detectors: :meth:`DetGapResult.to_dict`'s keys plus
        ``teacher``, ``dataset``, ``reading`` and ``inputs``."""
        return {
            **self.result.to_dict(curves),
            "teacher": self.teacher,
            "dataset": self.dataset,
            "reading": self.reading,
            "inputs": {k: dict(v) for k, v in self.inputs.items()},
        }

    @classmethod
    def from_dict(cls, d: dict) -> DetGapReport:
        inputs = {k: dict(v) for k, v in d["inputs"].items()}
        return cls(DetGapResult.from_dict(d), d["teacher"], d.get("dataset"), inputs)


@dataclass
class DetGapInputs:
    """The bound analysis, its loaders and where the models came from."""

    gap: DetectionGap
    test_loader: DataLoader
    train_loader: DataLoader
    info: dict

    def to(self, device) -> DetGapInputs:
        """Move the teacher, the students and their own bridges to ``device``."""
        modules: list[nn.Module] = [self.gap.teacher, *self.gap.students.values()]
        for m in (*modules, *self.gap.own.values()):
            m.to(device)
        return self


def det_gap_inputs(
    students: Sequence[str | Path],
    teacher: str | Path | None = None,
    labels: Sequence[str] | None = None,
    data_dir: str | None = None,
    batch_size: int = 16,
    test_images: int | None = None,
    fit_images: int | None = None,
) -> DetGapInputs:
    """Teacher and students from detection checkpoints bound in a :class:`DetectionGap`,
    with loaders of the teacher's dataset: the first ``test_images`` test images (all when
    None) and the first ``fit_images`` training images for post-hoc connectors."""
    from fcfd_viz.detection import data as det_data
    from fcfd_viz.detection import models as det_models
    from fcfd_viz.runs.checkpoints import load_checkpoint
    from fcfd_viz.runs.layout import method_fields
    from fcfd_viz.runs.provenance import common_teacher

    if batch_size < 1:
        raise UserError(f"--batch-size must be >= 1, got {batch_size}")
    checkpoints_task(students, teacher)  # one task, and a detector
    ckpts = [load_checkpoint(p) for p in students]
    if any(_task(c) != "detection" for c in ckpts):
        raise UserError("the detection gap needs detector checkpoints")
    teacher = common_teacher(ckpts, teacher)
    t_ckpt = load_checkpoint(teacher)
    t_net = det_models.from_checkpoint(t_ckpt)
    metas = []
    for c in ckpts:
        if c.get("dataset") != t_ckpt.get("dataset"):
            raise UserError(
                f"student {c['path']} was trained on {c.get('dataset')}, the teacher "
                f"{t_ckpt['path']} on {t_ckpt.get('dataset')}; use one dataset"
            )
        try:
            method = method_fields(c)[0]
        except ValueError:
            method = None
        metas.append({"path": c["path"], "method": method or "student", **_meta(c)})
    names = student_labels(metas, labels)
    students_, bridges = {}, {}
    for name, c in zip(names, ckpts):
        net = det_models.from_checkpoint(c)
        det_models.check_pair(t_net, net)
        students_[name] = net
        s2t = (c.get("extras") or {}).get("s2t")
        bridges[name] = bridges_of(s2t, t_net, net) if s2t else None
    methods = {n: m["method"] for n, m in zip(names, metas)}
    gap = DetectionGap(t_net, students_, bridges, methods)
    shape = t_ckpt.get("input_shape") or [3, det_data.CANVAS, det_data.CANVAS]
    dataset = t_ckpt.get("dataset") or "digit-boxes"
    train, test, _ = det_data.detection_datasets(dataset, data_dir, shape[-1])
    loader = partial(DataLoader, batch_size=batch_size, shuffle=False, collate_fn=det_data.collate)
    test_loader = loader(first_items(test, test_images))
    train_loader = loader(first_items(train, fit_images))
    info = {
        "teacher": t_ckpt["path"],
        "dataset": dataset,
        "input_shape": list(shape),
        "students": dict(zip(names, metas)),
    }
    return DetGapInputs(gap, test_loader, train_loader, info)


def _meta(ckpt: dict) -> dict:
    return {"dataset": ckpt.get("dataset"), "seed": ckpt.get("seed")}


def det_gap_report(
    inputs: DetGapInputs, fit: FitConfig | bool | None = None, progress: bool = False
) -> DetGapReport:
    """Measure ``inputs``; ``fit`` as in :meth:`DetectionGap.compute` (None: the small
    default budget :data:`~fcfd_viz.detection.gap.DET_FIT`; False: own bridges only)."""
    train = None if fit is False else inputs.train_loader
    res = inputs.gap.compute(inputs.test_loader, train, fit=fit, progress=progress)
    info = inputs.info
    sources = {k: {f: v.get(f) for f in INPUT_KEYS} for k, v in info["students"].items()}
    return DetGapReport(res, info["teacher"], info["dataset"], sources)
