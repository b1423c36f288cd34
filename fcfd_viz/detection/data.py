"""Detection data: the embedded digit canvases (``digit-boxes``) and COCO from a folder.

Every dataset yields ``(image, target)``: ``image`` a float tensor (3, H, W) in [0, 1] (the
detector's own transform normalises it), ``target`` ``{"boxes": (N, 4) float xyxy in
pixels, "labels": (N,) int64}`` with labels from 1 (torchvision keeps 0 for background).
:func:`collate` makes a batch ``(list of images, list of targets)``.
"""

from __future__ import annotations

import os
from functools import lru_cache

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor
from torch.utils.data import Dataset

from fcfd_viz.data.datasets import DETECTION_DATASETS
from fcfd_viz.errors import UserError

# Why 64x64 canvases with 1-3 digits of 12-24 px, 1000 train / 300 test: at stride 4 the
# finest FPN level is 16x16 and the coarsest (stride 64) 1x1, so all five levels exist; a
# digit of 12 px still covers 3x3 cells of the finest level; a small Faster R-CNN then takes
# about a minute per epoch on 2 CPU cores, while 300 test canvases (~600 boxes) give a mAP
# that moves by well under a point between test-set draws.
CANVAS = 64
SCALES = (12, 24)  # the side of a placed digit, in pixels (inclusive range)
PER_CANVAS = (1, 3)  # digits per canvas (inclusive range)
TRAIN_CANVASES, TEST_CANVASES = 1000, 300
SOURCE_TEST_FRACTION = 0.25  # of sklearn's 1797 digits, kept for the test canvases only
SPLIT_SEED = 0  # the canvases never change, whatever the training seed
NUM_CLASSES = 11  # background + digits 0..9 (label = digit + 1)
# the canvases' pixel statistics (train split, seed 0), for the detector's transform
MEAN, STD = 0.05, 0.18


@lru_cache(maxsize=1)
def _digits():
    from sklearn.datasets import load_digits

    return load_digits()


def source_split(seed: int = SPLIT_SEED) -> tuple[np.ndarray, np.ndarray]:
    """Indices into sklearn's digits of the train and test *source* digits: disjoint,
    stratified by digit, fixed by ``seed``."""
    from sklearn.model_selection import train_test_split

    y = _digits().target
    tr, te = train_test_split(
        np.arange(len(y)), test_size=SOURCE_TEST_FRACTION, stratify=y, random_state=seed
    )
    return np.sort(tr), np.sort(te)


def _place(rng: np.random.Generator, sizes: list[int], canvas: int) -> list[tuple[int, int]]:
    """Top-left corners of squares of ``sizes`` that do not overlap, inside the canvas."""
    corners: list[tuple[int, int]] = []
    for s in sizes:
        for _ in range(200):  # rejection sampling; 3 digits of <= 24 px fit easily in 64
            x, y = (int(v) for v in rng.integers(0, canvas - s + 1, size=2))
            if all(
                x + s <= cx or cx + cs <= x or y + s <= cy or cy + cs <= y
                for (cx, cy), cs in zip(corners, sizes)
            ):
                corners.append((x, y))
                break
        else:
            break  # no room left: fewer digits on this canvas
    return corners


@lru_cache(maxsize=8)
def render(train: bool, n: int, canvas: int = CANVAS, seed: int = SPLIT_SEED):
    """``n`` canvases from the train (or test) source digits, deterministic per ``seed``.

    Returns (images (n, canvas, canvas) float32 in [0, 1], boxes: list of (k, 4) float32
    xyxy, labels: list of (k,) int64 in 1..10, sources: list of (k,) sklearn digit indices).
    A box is the tight box of its digit's ink (pixels > 0); digits never overlap, so every
    inked pixel lies in exactly one box.
    """
    digits = _digits()
    pool = source_split(seed)[0 if train else 1]
    rng = np.random.default_rng([seed, 0 if train else 1, canvas])
    imgs = np.zeros((n, canvas, canvas), np.float32)
    boxes, labels, sources = [], [], []
    for i in range(n):
        k = int(rng.integers(PER_CANVAS[0], PER_CANVAS[1] + 1))
        sizes = [int(s) for s in rng.integers(SCALES[0], SCALES[1] + 1, size=k)]
        picks = rng.choice(pool, size=k, replace=False)
        b, lab, src = [], [], []
        for (x, y), s, j in zip(_place(rng, sizes, canvas), sizes, picks):
            digit = torch.from_numpy(digits.images[j].astype(np.float32) / 16.0)[None, None]
            patch = F.interpolate(digit, size=(s, s), mode="bilinear", align_corners=False)
            patch = patch[0, 0].clamp(0, 1).numpy()  # (s, s)
            patch[patch < 0.05] = 0.0  # bilinear tails: no faint ink outside the drawn digit
            imgs[i, y : y + s, x : x + s] = patch
            rows, cols = np.nonzero(patch)
            b.append([x + cols.min(), y + rows.min(), x + cols.max() + 1, y + rows.max() + 1])
            lab.append(int(digits.target[j]) + 1)
            src.append(int(j))
        boxes.append(np.asarray(b, np.float32).reshape(-1, 4))
        labels.append(np.asarray(lab, np.int64))
        sources.append(np.asarray(src, np.int64))
    return imgs, boxes, labels, sources


class DigitBoxes(Dataset):
    """The embedded detection set: ``canvas`` x ``canvas`` images with 1-3 sklearn digits
    each (labels 1..10 = digit + 1), the test canvases drawn from source digits no training
    canvas uses. Greyscale repeated to 3 channels; no augmentation (digits are not
    flip-invariant and positions are already random)."""

    def __init__(self, train: bool, canvas: int = CANVAS, n: int | None = None) -> None:
        if canvas < 2 * SCALES[1]:
            raise UserError(
                f"digit-boxes canvases must be >= {2 * SCALES[1]} px, got {canvas}; "
                f"use --image-size {CANVAS}"
            )
        n = n if n is not None else (TRAIN_CANVASES if train else TEST_CANVASES)
        self.images, self.boxes, self.labels, self.sources = render(train, n, canvas)

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, i: int) -> tuple[Tensor, dict[str, Tensor]]:
        img = torch.from_numpy(self.images[i])[None].expand(3, -1, -1)  # (3, H, W)
        target = {
            "boxes": torch.from_numpy(self.boxes[i]),
            "labels": torch.from_numpy(self.labels[i]),
        }
        return img, target


def collate(batch: list) -> tuple[list[Tensor], list[dict[str, Tensor]]]:
    """A batch as torchvision's detectors take it: (list of images, list of targets)."""
    images, targets = zip(*batch)
    return list(images), list(targets)


def coco_files(data_dir: str | None) -> dict[str, str]:
    """The COCO 2017 folders and annotation files under ``data_dir`` (``$FCFD_DATA_DIR``,
    else ./data, when None)."""
    root = os.path.abspath(data_dir or os.environ.get("FCFD_DATA_DIR") or "./data")
    ann = os.path.join(root, "annotations")
    return {
        "train": os.path.join(root, "train2017"),
        "val": os.path.join(root, "val2017"),
        "train_ann": os.path.join(ann, "instances_train2017.json"),
        "val_ann": os.path.join(ann, "instances_val2017.json"),
    }


def missing_coco(data_dir: str | None) -> str | None:
    """Why COCO cannot be read from ``data_dir`` (one line), or None. Reads no file."""
    files = coco_files(data_dir)
    for key, path in files.items():
        if not (os.path.isfile(path) if key.endswith("_ann") else os.path.isdir(path)):
            root = os.path.dirname(files["train"])
            return (
                f"coco not found in {root} ({path} is missing; expected train2017/, val2017/ "
                "and annotations/instances_{train,val}2017.json there); set --data-dir"
            )
    return None


class Coco(Dataset):
    """COCO 2017 detection through ``torchvision.datasets.CocoDetection`` (needs pycocotools):
    crowd and empty boxes dropped, category ids mapped to contiguous labels 1..80."""

    def __init__(self, train: bool, data_dir: str | None) -> None:
        from torchvision.datasets import CocoDetection

        reason = missing_coco(data_dir)
        if reason:
            raise UserError(reason)
        files = coco_files(data_dir)
        split = "train" if train else "val"
        self.base = CocoDetection(files[split], files[f"{split}_ann"])
        cats = sorted(self.base.coco.getCatIds())
        self.label_of = {c: i + 1 for i, c in enumerate(cats)}

    def __len__(self) -> int:
        return len(self.base)

    def __getitem__(self, i: int) -> tuple[Tensor, dict[str, Tensor]]:
        from torchvision.transforms.functional import pil_to_tensor

        image, anns = self.base[i]
        img = pil_to_tensor(image.convert("RGB")).float() / 255.0  # (3, H, W)
        keep = [a for a in anns if not a.get("iscrowd") and a["bbox"][2] > 1 and a["bbox"][3] > 1]
        xywh = torch.tensor([a["bbox"] for a in keep], dtype=torch.float32).reshape(-1, 4)
        boxes = torch.cat([xywh[:, :2], xywh[:, :2] + xywh[:, 2:]], dim=1)  # xyxy
        labels = torch.tensor([self.label_of[a["category_id"]] for a in keep], dtype=torch.int64)
        return img, {"boxes": boxes, "labels": labels}


def detection_datasets(
    dataset: str, data_dir: str | None = None, image_size: int = CANVAS
) -> tuple[Dataset, Dataset, int]:
    """Train and test datasets of ``dataset`` (``digit-boxes`` or ``coco``) and the class
    count the detector needs (background included)."""
    if dataset == "digit-boxes":
        return DigitBoxes(True, image_size), DigitBoxes(False, image_size), NUM_CLASSES
    if dataset == "coco":
        return Coco(True, data_dir), Coco(False, data_dir), 81
    raise UserError(
        f"--dataset {dataset!r} is not a detection dataset; with --task detection choose one "
        f"of {', '.join(DETECTION_DATASETS)}"
    )
