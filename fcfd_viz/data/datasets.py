"""Datasets: embedded digits (default) and digit-pairs (100 classes), CIFAR-10/100,
an ImageNet-style folder.

Every dataset yields ``(image, label)`` with images as normalised float tensors (3, H, W).
Nothing is downloaded unless the user asks for it (``download=True`` / ``--download``).
"""

from __future__ import annotations

import os
from collections.abc import Sized
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, cast

import numpy as np
from torch import Tensor
from torch.utils.data import Dataset, Subset

from fcfd_viz.data.digit_pairs import NUM_CLASSES as NUM_PAIR_CLASSES
from fcfd_viz.data.digit_pairs import DigitPairs
from fcfd_viz.data.digits import DigitsDataset
from fcfd_viz.errors import UserError
from fcfd_viz.io import checks
from fcfd_viz.io.checks import setting

if TYPE_CHECKING:
    from torchvision.datasets import ImageFolder

DATASETS = ("digits", "digits-hard", "digit-pairs", "cifar10", "cifar100", "imagenet")
# the datasets built into the package: generated in memory, nothing to download or load
EMBEDDED = ("digits", "digits-hard", "digit-pairs")
# the datasets of ``--task detection`` (fcfd_viz.detection.data): boxes, not labels
DETECTION_DATASETS = ("digit-boxes", "coco")


@dataclass
class DataConfig:
    """Which data and how to load it.

    ``image_size`` applies to digits, digit-pairs and the ImageNet folder (CIFAR is always
    32x32); left at its default 16, ImageNet loads at 224 (:func:`image_size`).
    ``batch_size`` is the global batch of one optimizer step: under torchrun each of the N
    ranks loads ``batch_size / N`` (:func:`rank_batch_size`).
    ``subset`` (0 < subset <= 1) keeps a stratified fraction of the *training* split, fixed
    per ``subset_seed``; ``digits-hard`` is digits with ``subset=0.1`` for the student.
    """

    dataset: str = setting(
        "digits",
        "dataset (digit-boxes, coco: --task detection)",
        choices=DATASETS + DETECTION_DATASETS,
    )
    data_dir: str | None = setting(None, "folder with CIFAR / ImageNet data")
    download: bool = setting(False, "download CIFAR into --data-dir (needs internet)")
    image_size: int = setting(
        16, "digits / digit-pairs / ImageNet image size (ImageNet: 224 when left at 16)"
    )
    batch_size: int = setting(64, "global batch of one optimizer step (split across ranks)")
    subset: float | None = setting(None, "stratified fraction of the training split")
    # None: the training seed (a subset fixed per seed)
    subset_seed: int | None = setting(None, "seed of --subset (default: --seed)")
    num_workers: int | None = setting(None, "data loader workers", flag="--workers")
    # digit-pairs: the generator draws new training canvases every epoch unless this is set
    # (the calibration's first setting; docs/results.md, "digit-pairs calibration")
    fixed_canvases: bool = setting(
        False, "digit-pairs: train on the same canvases every epoch instead of new ones"
    )

    def validate(self) -> None:
        """Raise a one-line :class:`UserError` for a value no loader can use."""
        checks.choice("--dataset", self.dataset, DATASETS + DETECTION_DATASETS)
        checks.integer("--batch-size", self.batch_size, 1)
        checks.integer("--image-size", self.image_size, 1)
        if self.num_workers is not None:
            checks.integer("--workers", self.num_workers, 0)
        if self.subset is not None:
            checks.number("--subset", self.subset, 0, strict=True)
            if self.subset > 1:
                raise UserError(f"subset must be in (0, 1], got {self.subset}")
        if self.subset_seed is not None:
            checks.seed("subset_seed", self.subset_seed)


@dataclass
class DataInfo:
    """What a model needs to know about the data."""

    name: str
    num_classes: int
    input_shape: tuple[int, int, int]


# the size a dataset renders at when --image-size is left at its default (16)
DEFAULT_IMAGE_SIZE = 16
NATIVE_SIZES = {"imagenet": 224}


def image_size(cfg: DataConfig) -> int:
    """The side of ``cfg``'s images: CIFAR's 32, else ``cfg.image_size``, where the default 16
    means the dataset's native size (:data:`NATIVE_SIZES`; digits: 16)."""
    if cfg.dataset in CIFAR_STATS:
        return 32
    if cfg.image_size == DEFAULT_IMAGE_SIZE:
        return NATIVE_SIZES.get(cfg.dataset, DEFAULT_IMAGE_SIZE)
    return cfg.image_size


def stratified_subset(targets: Tensor | np.ndarray, fraction: float, seed: int) -> list[int]:
    """Indices of a class-stratified random ``fraction`` of ``targets`` (>= 1 per class)."""
    if not 0 < fraction <= 1:
        raise UserError(f"subset must be in (0, 1], got {fraction}")
    targets = np.asarray(targets)
    rng = np.random.default_rng(seed)
    keep: list[int] = []
    for c in np.unique(targets):
        idx = np.flatnonzero(targets == c)
        k = max(1, round(fraction * len(idx)))
        keep.extend(rng.choice(idx, size=k, replace=False).tolist())
    return sorted(keep)


# ---------------------------------------------------------------- CIFAR / ImageNet
CIFAR_STATS = {
    "cifar10": ((0.4914, 0.4822, 0.4465), (0.2470, 0.2435, 0.2616)),
    "cifar100": ((0.5071, 0.4867, 0.4408), (0.2675, 0.2565, 0.2761)),  # CRD, FCFD authors
}
IMAGENET_STATS = ((0.485, 0.456, 0.406), (0.229, 0.224, 0.225))


CIFAR_FOLDERS = {"cifar10": "cifar-10-batches-py", "cifar100": "cifar-100-python"}


def data_root(data_dir: str | None) -> str:
    """The folder CIFAR is looked for in: ``data_dir``, else ``$FCFD_DATA_DIR``, else ./data."""
    return data_dir or os.environ.get("FCFD_DATA_DIR") or "./data"


def missing_data(dataset: str, data_dir: str | None) -> str | None:
    """Why ``dataset`` cannot be loaded from ``data_dir`` without downloading (one line), or
    None when its folder is there. Only looks for the folders; reads no file."""
    if dataset in CIFAR_FOLDERS:
        root, folder = os.path.abspath(data_root(data_dir)), CIFAR_FOLDERS[dataset]
        if not os.path.isdir(os.path.join(root, folder)):
            return f"{dataset} not found in {root} (expected {folder}/ there); set --data-dir"
    elif dataset == "imagenet":
        if not data_dir:
            return "imagenet needs a data folder (--data-dir) with train/ and val/ ImageFolders"
        for split in (os.path.join(data_dir, s) for s in ("train", "val")):
            if not os.path.isdir(split):
                return f"imagenet folder {split} not found; --data-dir must contain train/ and val/"
    elif dataset not in DATASETS:
        return f"unknown dataset {dataset!r}; choose one of {', '.join(DATASETS)}"
    return None


def _cifar(name: str, train: bool, data_dir: str | None, download: bool) -> Dataset:
    from torchvision import datasets, transforms

    root = data_root(data_dir)
    mean, std = CIFAR_STATS[name]
    tf = [transforms.RandomCrop(32, padding=4), transforms.RandomHorizontalFlip()] if train else []
    tf = transforms.Compose([*tf, transforms.ToTensor(), transforms.Normalize(mean, std)])
    cls = datasets.CIFAR10 if name == "cifar10" else datasets.CIFAR100
    try:
        return cls(root, train=train, transform=tf, download=download)
    except Exception as e:  # torchvision: RuntimeError when absent, URLError when offline
        folder = CIFAR_FOLDERS[name]
        how = "the download failed" if download else "download is off"
        raise UserError(
            f"{name} not found in {os.path.abspath(root)} (expected {folder}/ there; {how}: {e}). "
            f"Pass --data-dir pointing at it, or --download on a machine with internet."
        ) from None


def _imagenet(train: bool, data_dir: str | None, image_size: int) -> ImageFolder:
    from torchvision import datasets, transforms

    reason = missing_data("imagenet", data_dir)
    if reason or data_dir is None:  # (no data_dir always has a reason)
        raise UserError(reason or "imagenet needs --data-dir")
    split = os.path.join(data_dir, "train" if train else "val")
    mean, std = IMAGENET_STATS
    if train:
        tf = [transforms.RandomResizedCrop(image_size), transforms.RandomHorizontalFlip()]
    else:
        tf = [transforms.Resize(int(image_size * 256 / 224)), transforms.CenterCrop(image_size)]
    tf = transforms.Compose([*tf, transforms.ToTensor(), transforms.Normalize(mean, std)])
    return datasets.ImageFolder(split, transform=tf)


def dataset_size(data: Dataset) -> int:
    """The length of ``data`` (torch's ``Dataset`` declares none; every one here has one)."""
    return len(cast(Sized, data))


def build_datasets(cfg: DataConfig) -> tuple[Dataset, Dataset, DataInfo]:
    """Training and test datasets plus :class:`DataInfo` for ``cfg``."""
    name = cfg.dataset
    if name not in DATASETS:
        raise UserError(f"unknown dataset {name!r}; choose one of {', '.join(DATASETS)}")
    subset = cfg.subset
    size = image_size(cfg)
    train: Dataset
    test: Dataset
    if name in ("digits", "digits-hard"):
        train, test = DigitsDataset(True, size), DigitsDataset(False, size)
        info = DataInfo(name, 10, (3, size, size))
        if name == "digits-hard" and subset is None:
            subset = DIGITS_HARD_SUBSET
    elif name == "digit-pairs":
        train, test = DigitPairs(True, size, fresh=not cfg.fixed_canvases), DigitPairs(False, size)
        info = DataInfo(name, NUM_PAIR_CLASSES, (3, size, size))
    elif name in CIFAR_STATS:
        train = _cifar(name, True, cfg.data_dir, cfg.download)
        test = _cifar(name, False, cfg.data_dir, cfg.download)
        info = DataInfo(name, 10 if name == "cifar10" else 100, (3, 32, 32))
    else:
        folder = _imagenet(True, cfg.data_dir, size)
        train, test = folder, _imagenet(False, cfg.data_dir, size)
        info = DataInfo(name, len(folder.classes), (3, size, size))
    if subset is not None and subset < 1:
        targets = cast(Any, train).targets  # every dataset above lists its labels
        train = Subset(train, stratified_subset(targets, subset, cfg.subset_seed or 0))
    return train, test, info


# The fraction of digits' training split a ``digits-hard`` student sees (10% ~ 14 images per
# class). Measured with the authors' code: resnet8 CE 94.3% vs KD 96.7%, so the teacher matters.
DIGITS_HARD_SUBSET = 0.1


def data_info(cfg: DataConfig) -> DataInfo:
    """:class:`DataInfo` without building the datasets when it is known up front."""
    size = image_size(cfg)
    if cfg.dataset in ("digits", "digits-hard"):
        return DataInfo(cfg.dataset, 10, (3, size, size))
    if cfg.dataset == "digit-pairs":
        return DataInfo(cfg.dataset, NUM_PAIR_CLASSES, (3, size, size))
    if cfg.dataset in CIFAR_STATS:
        return DataInfo(cfg.dataset, 10 if cfg.dataset == "cifar10" else 100, (3, 32, 32))
    return build_datasets(cfg)[2]
