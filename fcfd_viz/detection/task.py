"""``--task detection`` in the shared trainer and pipeline: the :class:`Detection` task,
its loaders, its distiller built from an experiment config, and its checks.

A detection run writes the classification run directory (config.json with
``task: detection``, metrics.jsonl, last.pt / best.pt, summary.json, status.json, tb/)
with ``map``, ``map_50``, ``map_75`` (%) where classification has top-1 / top-5, and
``best_map`` (the epoch with the best ``map`` is ``best.pt``).
"""

from __future__ import annotations

from functools import partial
from typing import Any

import torch
from torch.utils.data import DataLoader, DistributedSampler, Subset

from fcfd_viz.data.datasets import DETECTION_DATASETS, DataConfig, dataset_size
from fcfd_viz.data.loaders import rank_batch_size
from fcfd_viz.detection import data as det_data
from fcfd_viz.detection import methods
from fcfd_viz.detection import models as det_models
from fcfd_viz.detection.metrics import KEYS, evaluate_detector
from fcfd_viz.errors import UserError
from fcfd_viz.training.task import Task


class Detection(Task):
    """mAP: batches are (list of images, list of targets); no training metric."""

    name = "detection"
    fixed_input_shape = False  # images are resized to their own aspect ratio

    def to_device(self, x, y, device, channels_last: bool):
        images = [im.to(device, non_blocking=True) for im in x]
        targets = [{k: v.to(device, non_blocking=True) for k, v in t.items()} for t in y]
        return images, targets

    def evaluate(self, student, loader, device, amp_dtype) -> dict[str, float]:
        return evaluate_detector(student, loader, device, amp_dtype)

    def no_eval(self) -> dict[str, float]:
        return dict.fromkeys(KEYS, 0.0)

    def initial_best(self) -> dict[str, float | None]:
        return {"best_map": 0.0}

    def best_from(self, ckpt: dict) -> dict[str, float | None]:
        return {"best_map": float(ckpt["best_map"])}

    def improved(self, best: dict, record: dict) -> bool:
        if record["map"] > best["best_map"]:
            best["best_map"] = record["map"]
            return True
        return False

    def summary(self, last: dict, best: dict, student) -> dict:
        return {**{k: last.get(k) for k in KEYS}, "best_map": best["best_map"], "task": self.name}


DETECTION = Detection()


def image_size(cfg: DataConfig) -> int:
    """The canvas side of ``digit-boxes`` (64 when ``--image-size`` is left at 16)."""
    return det_data.CANVAS if cfg.image_size == 16 else cfg.image_size


def check(cfg) -> None:
    """The detection parts of an ExperimentConfig ``cfg``: dataset, method, knobs, archs."""
    if cfg.data.dataset not in DETECTION_DATASETS:
        raise UserError(
            f"--task detection needs a detection dataset, got --dataset {cfg.data.dataset}; "
            f"use one of {', '.join(DETECTION_DATASETS)}"
        )
    methods.make_config(cfg.method, **cfg.method_kwargs)  # unknown method / knobs
    det_models.check_name(cfg.student)
    if cfg.weights is not None:
        raise UserError("--weights: detectors are built without downloaded weights; drop it")


def make_loaders(cfg: DataConfig, seed: int = 0, rank: int = 0, world_size: int = 1):
    """Train and test loaders of (images, targets) batches, as :func:`fcfd_viz.data.datasets.
    make_loaders` shards and reseeds them; ``subset`` keeps a fixed random fraction of the
    training canvases (per ``subset_seed``)."""
    per_rank = rank_batch_size(cfg.batch_size, world_size)
    train, test, _ = det_data.detection_datasets(cfg.dataset, cfg.data_dir, image_size(cfg))
    n = dataset_size(train)
    if cfg.subset is not None and cfg.subset < 1:
        g = torch.Generator().manual_seed(cfg.subset_seed or 0)
        keep = torch.randperm(n, generator=g)[: max(1, round(cfg.subset * n))]
        train = Subset(train, sorted(keep.tolist()))
        n = len(keep)
    workers = cfg.num_workers if cfg.num_workers is not None else 0
    loader = partial(DataLoader, collate_fn=det_data.collate, num_workers=workers)
    # a last batch of one image would give BatchNorm a single value on the 1x1 p6 level
    drop_last = n % per_rank == 1
    if world_size > 1:
        sampler: DistributedSampler[Any] = DistributedSampler(
            train, num_replicas=world_size, rank=rank, seed=seed
        )
        train_loader = loader(train, batch_size=per_rank, sampler=sampler, drop_last=drop_last)
    else:
        gen = torch.Generator().manual_seed(seed)
        train_loader = loader(
            train, batch_size=per_rank, shuffle=True, generator=gen, drop_last=drop_last
        )
    test_loader = loader(test, batch_size=2 * cfg.batch_size, shuffle=False)
    return train_loader, test_loader


def build_distiller(cfg):
    """Student (seeded by ``cfg.train.seed``), teacher (from its checkpoint) and the
    detection distiller of an ExperimentConfig ``cfg``."""
    from fcfd_viz.runs.checkpoints import load_checkpoint
    from fcfd_viz.training.runtime import seed_everything

    methods.method_class(cfg.method).check_teacher(cfg.teacher or None)
    kwargs = {"image_size": image_size(cfg.data)} if cfg.student.startswith("det_") else {}
    num_classes = det_data.NUM_CLASSES if cfg.data.dataset == "digit-boxes" else 81
    teacher = None
    if cfg.teacher:
        ckpt = load_checkpoint(cfg.teacher)
        if ckpt["model"].get("task") != "detection":
            raise UserError(
                f"teacher {ckpt['path']} is a classification checkpoint; --task detection "
                "needs a detector (train one with `fcfd train-teacher --task detection`)"
            )
        if ckpt.get("dataset") != cfg.data.dataset:
            raise UserError(
                f"teacher {ckpt['path']} was trained on {ckpt.get('dataset')}, the student "
                f"data is {cfg.data.dataset}; use a teacher trained on the same dataset"
            )
        teacher = det_models.from_checkpoint(ckpt)
    seed_everything(cfg.train.seed)
    student = det_models.create(cfg.student, num_classes, **kwargs)
    return methods.create(cfg.method, student, teacher, **cfg.method_kwargs)


def input_shape(cfg: DataConfig) -> list[int] | None:
    """What the run records as ``input_shape``: the canvas, or None (COCO's sizes vary)."""
    return [3, image_size(cfg), image_size(cfg)] if cfg.dataset == "digit-boxes" else None


def evaluate_checkpoint(
    ckpt: dict,
    arch=None,
    dataset=None,
    data_dir=None,
    size=None,
    batch_size=None,
    workers=None,
    device="auto",
) -> dict:
    """``fcfd eval`` of a detector checkpoint dict: ckpt, arch, dataset, map, map_50,
    map_75 (%) and n (test images) on its dataset's test split (or ``dataset``'s)."""
    from fcfd_viz.training.runtime import resolve_device

    net = det_models.from_checkpoint(ckpt)
    if arch is not None and net.arch != arch:
        raise UserError(f"checkpoint {ckpt.get('path')} holds a {net.arch}, not a {arch}")
    dataset = dataset or ckpt.get("dataset")
    from fcfd_viz.models.input_size import checkpoint_input_size

    size = size or checkpoint_input_size(ckpt)
    cfg = DataConfig(dataset, data_dir, image_size=size, batch_size=batch_size or 16)
    cfg.num_workers = workers
    _, test_loader = make_loaders(cfg)
    dev = resolve_device(device)
    result = {"ckpt": ckpt.get("path"), "arch": net.arch, "dataset": dataset}
    result |= evaluate_detector(net.to(dev), test_loader, dev)
    return {**result, "n": len(test_loader.dataset)}
