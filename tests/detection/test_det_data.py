"""The embedded detection canvases: boxes match the digits drawn, splits are disjoint."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from fcfd_viz.detection import data
from fcfd_viz.errors import UserError


def test_boxes_hold_exactly_the_ink():
    imgs, boxes, labels, sources = data.render(True, 60)
    digits = data._digits()
    for img, b, lab, src in zip(imgs, boxes, labels, sources):
        assert 1 <= len(b) <= 3 and len(b) == len(lab) == len(src)
        assert (b[:, :2] >= 0).all() and (b[:, 2:] <= data.CANVAS).all()
        assert (b[:, 2:] > b[:, :2]).all()
        inside = np.zeros(img.shape, bool)
        for (x0, y0, x1, y1), label, j in zip(b.astype(int), lab, src):
            assert label == digits.target[j] + 1  # labels 1..10, 0 is background
            crop = img[y0:y1, x0:x1]
            assert crop.max() > 0.5  # the digit's ink is inside its box
            # tight: each edge row/column of the box carries ink
            assert crop[0].max() > 0 and crop[-1].max() > 0
            assert crop[:, 0].max() > 0 and crop[:, -1].max() > 0
            assert not inside[y0:y1, x0:x1].any()  # boxes never overlap
            inside[y0:y1, x0:x1] = True
        assert img[~inside].max(initial=0.0) == 0.0  # no ink outside every box


def test_deterministic_and_splits_disjoint():
    a = data.render(False, 20)
    data.render.cache_clear()
    b = data.render(False, 20)
    assert np.array_equal(a[0], b[0])
    assert all(np.array_equal(x, y) for x, y in zip(a[1], b[1]))
    tr, te = data.source_split()
    assert not set(tr) & set(te)
    train_src = set(np.concatenate(data.render(True, 200)[3]).tolist())
    test_src = set(np.concatenate(a[3]).tolist())
    assert train_src <= set(tr) and test_src <= set(te)


def test_dataset_and_collate():
    ds = data.DigitBoxes(False, n=4)
    img, target = ds[0]
    assert img.shape == (3, data.CANVAS, data.CANVAS) and img.dtype == torch.float32
    assert target["boxes"].dtype == torch.float32 and target["labels"].dtype == torch.int64
    images, targets = data.collate([ds[0], ds[1]])
    assert len(images) == len(targets) == 2
    with pytest.raises(UserError, match="--image-size 64"):
        data.DigitBoxes(True, canvas=32)


def test_coco_folder_missing_is_one_clear_line(tmp_path):
    with pytest.raises(UserError, match="coco not found in .*set --data-dir"):
        data.Coco(True, str(tmp_path))
    with pytest.raises(UserError, match="not a detection dataset"):
        data.detection_datasets("digits")
