"""The tasks by name (``classification``, ``detection``), each an object that answers what
the CLI, the app and notebooks would otherwise branch on: its default teacher and student
settings (config layers under a preset, ``--config`` and flags), its default dataset, the
image size of its checkpoints, the metric its runs are shown by, its method registry, its
architecture check and how a checkpoint of it is tested.

``task(name)`` is the one lookup; :data:`TASKS` lists them in the order ``--task`` offers.
"""

from __future__ import annotations

from typing import ClassVar

from fcfd_viz import distill, models
from fcfd_viz.data import digit_pairs
from fcfd_viz.detection import methods as det_methods
from fcfd_viz.detection import models as det_models
from fcfd_viz.distill.knob import Knob
from fcfd_viz.distill.registry import MethodRegistry
from fcfd_viz.errors import UserError
from fcfd_viz.experiments import presets
from fcfd_viz.experiments.experiment import DEFAULT_TEACHER_ARCH, DEFAULT_TEACHER_EPOCHS
from fcfd_viz.models.input_size import checkpoint_input_size
from fcfd_viz.runs.metric import TaskMetric, task_metric


class TaskProfile:
    """What one task is by default; subclasses fill each answer."""

    name: ClassVar[str] = "task"
    methods: ClassVar[MethodRegistry]
    # whether ``fcfd train-teacher --preset`` takes a preset of this task (its teacher arch,
    # data and schedule); classification presets name a teacher trained elsewhere
    trains_preset_teachers: ClassVar[bool] = False
    # whether the perturbation probe takes its networks (it cuts classifiers at a stage)
    probes: ClassVar[bool] = True

    @property
    def metric(self) -> TaskMetric:
        """The result its runs are judged and shown by (top-1, mAP)."""
        return task_metric(self.name)

    def input_size(self, ckpt: dict) -> int:
        """The image side a checkpoint of this task is tested and probed at: the one rule of
        :mod:`fcfd_viz.models.input_size` (both tasks read it alike)."""
        return checkpoint_input_size(ckpt)

    def default_dataset(self, preset: str | None = None) -> str:
        """The dataset a command trains on when the user names none (``preset``'s if given)."""
        raise NotImplementedError

    def teacher_defaults(self, dataset: str, preset: str | None = None) -> dict:
        """The config layer of a teacher on ``dataset``: method ``ce``, arch (``student``),
        data and schedule."""
        raise NotImplementedError

    def student_defaults(self, dataset: str) -> dict:
        """The config layer of a distilled student on ``dataset`` with no preset: its arch,
        data and schedule."""
        raise NotImplementedError

    def check_arch(self, arch: str, weights: str | None = None) -> None:
        """A one-line :class:`UserError` unless ``arch`` (with pretrained ``weights``) is a
        network of this task."""
        raise NotImplementedError

    def evaluate_checkpoint(self, ckpt: dict, **options) -> dict:
        """``fcfd eval``'s JSON of checkpoint ``ckpt`` on its dataset's test split."""
        raise NotImplementedError

    def eval_line(self, result: dict) -> str:
        """The one line ``fcfd eval`` prints for :meth:`evaluate_checkpoint`'s ``result``."""
        raise NotImplementedError

    def result_line(self, summary: dict) -> str:
        """A finished run's test results as a training command says them."""
        raise NotImplementedError


class ClassificationTask(TaskProfile):
    """Top-1: the registry of :mod:`fcfd_viz.distill`, the networks of :mod:`fcfd_viz.models`."""

    name = "classification"
    methods = distill.REGISTRY

    def default_dataset(self, preset: str | None = None) -> str:
        return presets.load(preset).dataset if preset else "digits"

    def teacher_defaults(self, dataset: str, preset: str | None = None) -> dict:
        """resnet8x4 for a short cosine run on digits, resnet32x4 for the calibrated
        schedule on digit-pairs, resnet8x4 for the paper's 240-epoch step schedule on CIFAR /
        ImageNet."""
        if dataset == "digit-pairs":
            train = dict(digit_pairs.TEACHER_TRAIN)
            return {"method": "ce", "student": digit_pairs.TEACHER_ARCH, "train": train}
        if dataset.startswith("digits"):
            train = {"epochs": DEFAULT_TEACHER_EPOCHS}
        else:
            train = {"epochs": 240, "schedule": "step", "milestones": [150, 180, 210]}
        return {"method": "ce", "student": DEFAULT_TEACHER_ARCH, "train": train}

    def student_defaults(self, dataset: str) -> dict:
        """resnet8 on the training defaults (:class:`~fcfd_viz.training.config.TrainConfig`)."""
        return {"student": "resnet8"}

    def check_arch(self, arch: str, weights: str | None = None) -> None:
        models.check_name(arch)
        if weights is not None and not models.takes_weights(arch):
            raise UserError(f"--weights: {models.registry.no_weights(arch)}")

    def evaluate_checkpoint(self, ckpt: dict, **options) -> dict:
        from fcfd_viz.experiments.evaluation import evaluate_classifier

        return evaluate_classifier(
            ckpt, **{**options, "size": options.get("size") or self.input_size(ckpt)}
        )

    def eval_line(self, result: dict) -> str:
        k = result["top5_k"]
        five = "top-5" if k == 5 else f"top-{k} (all {k} classes)"
        return (
            f"{result['arch']} on {result['dataset']}: test top-1 {result['top1']:.2f}%, "
            f"{five} {result['top5']:.2f}% ({result['n']} images)"
        )

    def result_line(self, summary: dict) -> str:
        return f"test top-1 {summary['top1']:.2f}% (best {summary['best_top1']:.2f}%)"


class DetectionTask(TaskProfile):
    """mAP: the registry of :mod:`fcfd_viz.detection.methods`; its defaults are the detection
    presets' (``det-digits`` on digit-boxes, the paper's ``coco-r101-r18`` on COCO)."""

    name = "detection"
    methods = det_methods.REGISTRY
    trains_preset_teachers = True
    probes = False

    def default_dataset(self, preset: str | None = None) -> str:
        return presets.load(preset).dataset if preset else "digit-boxes"

    def default_preset(self, dataset: str) -> presets.Preset:
        """The preset whose settings are the defaults on ``dataset``."""
        return presets.load("det-digits" if dataset == "digit-boxes" else "coco-r101-r18")

    def _layer(self, p: presets.Preset, arch: str, dataset: str) -> dict:
        # the preset's whole training set: its `subset` is what makes a smoke preset short
        data = {"dataset": dataset, **{k: v for k, v in p.data.items() if k != "subset"}}
        return {"student": arch, "data": data, "train": dict(p.train)}

    def teacher_defaults(self, dataset: str, preset: str | None = None) -> dict:
        """The teacher arch, data and schedule of ``preset``, by default of
        :meth:`default_preset`."""
        p = presets.load(preset) if preset else self.default_preset(dataset)
        return {"method": "ce", **self._layer(p, p.teacher, dataset)}

    def student_defaults(self, dataset: str) -> dict:
        """The student arch, data and schedule of :meth:`default_preset` (on digit-boxes:
        lr 0.02 with a warm-up epoch; the classification lr 0.05 diverges)."""
        p = self.default_preset(dataset)
        return self._layer(p, p.student, dataset)

    def check_arch(self, arch: str, weights: str | None = None) -> None:
        det_models.check_name(arch)  # weights: refused when the run starts (detection.task)

    def evaluate_checkpoint(self, ckpt: dict, **options) -> dict:
        from fcfd_viz.detection.task import evaluate_checkpoint

        names = ("arch", "dataset", "data_dir", "batch_size", "workers", "device")
        size = options.get("size") or self.input_size(ckpt)
        return evaluate_checkpoint(ckpt, size=size, **{k: options.get(k) for k in names})

    def eval_line(self, result: dict) -> str:
        return (
            f"{result['arch']} on {result['dataset']}: test mAP {result['map']:.2f}%, AP50 "
            f"{result['map_50']:.2f}%, AP75 {result['map_75']:.2f}% ({result['n']} images)"
        )

    def result_line(self, summary: dict) -> str:
        return (
            f"test mAP {summary['map']:.2f}% (AP50 {summary['map_50']:.2f}%, "
            f"best mAP {summary['best_map']:.2f}%)"
        )


TASKS: dict[str, TaskProfile] = {t.name: t for t in (ClassificationTask(), DetectionTask())}


def task(name: str | None) -> TaskProfile:
    """The task ``name`` (classification for None: what runs before ``--task`` recorded)."""
    name = name or "classification"
    if name not in TASKS:
        raise UserError(f"--task must be one of {', '.join(TASKS)}, got {name!r}")
    return TASKS[name]


def of_checkpoint(ckpt: dict) -> TaskProfile:
    """The task of a loaded checkpoint (:func:`~fcfd_viz.runs.checkpoints.load_checkpoint`)."""
    return task(ckpt["model"].get("task"))


def of_preset(name: str) -> TaskProfile:
    """The task of the named preset."""
    return task(presets.load(name).task)


def all_knobs() -> list[Knob]:
    """Every knob of every task's methods, once each by name (the first task's first)."""
    seen: dict[str, Knob] = {}
    for t in TASKS.values():
        for k in t.methods.knobs():
            seen.setdefault(k.name, k)
    return list(seen.values())
