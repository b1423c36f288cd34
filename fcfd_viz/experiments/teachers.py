"""A teacher's default arch, data and schedule per task and dataset: what ``fcfd
train-teacher`` trains when the user names no more (a config layer, under ``--config`` and
flags)."""

from __future__ import annotations

from fcfd_viz.data import digit_pairs
from fcfd_viz.experiments import presets
from fcfd_viz.experiments.experiment import DEFAULT_TEACHER_ARCH, DEFAULT_TEACHER_EPOCHS


def teacher_defaults(task: str, dataset: str, preset: str | None = None) -> dict:
    """Classification: resnet8x4 for a short cosine run on digits, resnet32x4 for the
    calibrated schedule on digit-pairs, resnet8x4 for the paper's 240-epoch step schedule on
    CIFAR / ImageNet. Detection: the teacher arch, data and schedule of ``preset``, by
    default the ``det-digits`` preset (digit-boxes) or the paper's R101 COCO schedule
    (``coco-r101-r18``)."""
    if task == "detection":
        p = presets.load(preset or ("det-digits" if dataset == "digit-boxes" else "coco-r101-r18"))
        data = {"dataset": dataset, **{k: v for k, v in p.data.items() if k != "subset"}}
        return {"method": "ce", "student": p.teacher, "data": data, "train": dict(p.train)}
    if dataset == "digit-pairs":
        train = dict(digit_pairs.TEACHER_TRAIN)
        return {"method": "ce", "student": digit_pairs.TEACHER_ARCH, "train": train}
    if dataset.startswith("digits"):
        train = {"epochs": DEFAULT_TEACHER_EPOCHS}
    else:
        train = {"epochs": 240, "schedule": "step", "milestones": [150, 180, 210]}
    return {"method": "ce", "student": DEFAULT_TEACHER_ARCH, "train": train}
