"""COCO through torchvision's ``CocoDetection``, on a COCO-format folder written here (two
categories with non-contiguous ids, a crowd box and a degenerate box per image): what the
dataset yields, and one epoch of teacher training and FCFD distillation from ``--data-dir``."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from PIL import Image, ImageDraw

from fcfd_viz.cli import main
from fcfd_viz.detection import data

pytestmark = pytest.mark.usefixtures("one_thread")
CAR, TRAIN = 3, 7  # COCO category ids: the dataset maps them to labels 1 and 2
QUIET = ["--no-progress", "--no-tensorboard", "--device", "cpu"]


def write_coco(root: Path, sizes: dict[str, int]) -> Path:
    """``root/{train2017,val2017}`` with ``sizes[split]`` JPEGs (a red box and a green disc
    on grey) and ``root/annotations/instances_<split>.json``."""
    (root / "annotations").mkdir(parents=True)
    for split, n in sizes.items():
        (root / split).mkdir()
        images, anns = [], []
        for i in range(n):
            w, h = 96 + 16 * i, 80
            im = Image.new("RGB", (w, h), (20, 20, 20))
            draw = ImageDraw.Draw(im)
            draw.rectangle([10, 12, 40, 50], fill=(200, 30, 30))
            draw.ellipse([50, 20, 80, 60], fill=(30, 200, 30))
            im.save(root / split / f"{i:012d}.jpg")
            images.append({"id": i + 1, "file_name": f"{i:012d}.jpg", "width": w, "height": h})
            boxes = [  # (category, xywh, crowd): the last two are dropped
                (CAR, [10, 12, 30, 38], 0),
                (TRAIN, [50, 20, 30, 40], 0),
                (TRAIN, [0, 0, 90, 70], 1),
                (CAR, [5, 5, 0.5, 10], 0),
            ]
            for j, (cat, xywh, crowd) in enumerate(boxes):
                area = xywh[2] * xywh[3]
                anns.append(
                    {"id": 10 * i + j, "image_id": i + 1, "category_id": cat, "bbox": xywh,
                     "area": area, "iscrowd": crowd}
                )  # fmt: skip
        cats = [{"id": CAR, "name": "car"}, {"id": TRAIN, "name": "train"}]
        ann = {"images": images, "annotations": anns, "categories": cats}
        (root / "annotations" / f"instances_{split}.json").write_text(json.dumps(ann))
    return root


def test_coco_images_boxes_and_labels(tmp_path: Path):
    root = write_coco(tmp_path / "coco", {"train2017": 2, "val2017": 1})
    train, test, classes = data.detection_datasets("coco", str(root))
    assert (len(train), len(test), classes) == (2, 1, 81)
    image, target = train[1]
    assert image.shape == (3, 80, 112) and 0 <= image.min() and image.max() <= 1
    # crowd and degenerate boxes dropped, xywh -> xyxy, category ids -> contiguous labels
    assert target["boxes"].tolist() == [[10, 12, 40, 50], [50, 20, 80, 60]]
    assert target["labels"].tolist() == [1, 2] and target["labels"].dtype == torch.int64
    assert image[0, 30, 25] > 0.7 and image[1, 30, 25] < 0.2  # the red box is where it says


@pytest.mark.slow
def test_train_and_distill_from_a_coco_folder(tmp_path: Path, capsys):
    root = write_coco(tmp_path / "coco", {"train2017": 4, "val2017": 2})
    common = ["--task", "detection", "--dataset", "coco", "--data-dir", str(root)]
    common += ["--epochs", "1", "--batch-size", "2", *QUIET]
    teacher = tmp_path / "t"
    argv = ["train-teacher", *common, "--arch", "det_resnet10", "--out", str(teacher)]
    assert main(argv) == 0
    assert "on coco: test mAP" in capsys.readouterr().out
    out = tmp_path / "s"
    argv = ["distill", *common, "--method", "fcfd", "--teacher", str(teacher)]
    assert main([*argv, "--student", "det_resnet10", "--out", str(out)]) == 0
    summary = json.loads((out / "summary.json").read_text())
    assert summary["dataset"] == "coco" and 0 <= summary["map"] <= 100
    record = json.loads((out / "metrics.jsonl").read_text().splitlines()[0])
    assert record["steps"] == 2 and "roi_kd/st" in record["losses"]
