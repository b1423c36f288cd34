"""mAP against answers known by hand."""

from __future__ import annotations

import pytest
import torch

from fcfd_viz.detection.metrics import mean_ap


def boxes(*rows):
    return torch.tensor(rows, dtype=torch.float32)


def test_perfect_predictions_score_100():
    t = [{"boxes": boxes([0, 0, 10, 10], [20, 20, 40, 30]), "labels": torch.tensor([1, 2])}]
    p = [{**t[0], "scores": torch.tensor([0.9, 0.8])}]
    assert mean_ap(p, t) == pytest.approx({"map": 100.0, "map_50": 100.0, "map_75": 100.0})


def test_one_of_two_objects_missed():
    # one class, two objects, one found exactly: precision 1 up to recall 0.5, then nothing;
    # COCO averages precision at 101 recall points, 51 of them (0, .01, ... .5) at 1 -> 51/101
    t = [{"boxes": boxes([0, 0, 10, 10], [20, 20, 40, 30]), "labels": torch.tensor([3, 3])}]
    p = [
        {"boxes": boxes([0, 0, 10, 10]), "scores": torch.tensor([0.9]), "labels": torch.tensor([3])}
    ]
    assert mean_ap(p, t) == pytest.approx({k: 100 * 51 / 101 for k in ("map", "map_50", "map_75")})


def test_a_shifted_box_counts_below_its_iou_only():
    # a 10x10 box shifted by 2 px: IoU 80/120 = 0.667, a hit at IoU thresholds .50 .. .65
    # (4 of the 10) and a miss from .70 on
    t = [{"boxes": boxes([0, 0, 10, 10]), "labels": torch.tensor([1])}]
    p = [
        {"boxes": boxes([2, 0, 12, 10]), "scores": torch.tensor([1.0]), "labels": torch.tensor([1])}
    ]
    got = mean_ap(p, t)
    assert got["map_50"] == pytest.approx(100.0) and got["map_75"] == pytest.approx(0.0)
    assert got["map"] == pytest.approx(40.0, abs=1e-4)
