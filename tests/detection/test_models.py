"""Detector builders: FPN levels, sizes kept, pairs checked, specs rebuilt."""

from __future__ import annotations

import pytest
import torch

from fcfd_viz.detection import models
from fcfd_viz.errors import UserError

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.mark.parametrize("arch", ["det_resnet10", "det_mobilenetv2"])
def test_small_detectors_keep_the_canvas_and_give_five_levels(arch):
    net = models.create(arch, 11, fpn_channels=16)
    assert net.transform.min_size == (64,) and net.transform.max_size == 64
    feats = net.backbone(torch.zeros(1, 3, 64, 64))
    assert list(feats) == list(models.LEVEL_NAMES)
    assert [tuple(f.shape[1:]) for f in feats.values()] == [(16, s, s) for s in (16, 8, 4, 2, 1)]
    net.eval()
    with torch.no_grad():
        out = net([torch.rand(3, 64, 64)])
    assert set(out[0]) == {"boxes", "labels", "scores"}


def test_spec_round_trip_and_pair_checks():
    a = models.create("det_resnet10", 11, fpn_channels=16)
    spec = a.spec()
    assert spec["arch"] == "det_resnet10" and spec["task"] == "detection"
    b = models.from_checkpoint({"model": spec, "state_dict": a.state_dict()})
    assert torch.equal(
        b.state_dict()["roi_heads.box_predictor.cls_score.weight"],
        a.state_dict()["roi_heads.box_predictor.cls_score.weight"],
    )
    models.check_pair(models.create("det_mobilenetv2", 11, fpn_channels=16), a)
    with pytest.raises(UserError, match="resize images differently"):
        models.check_pair(models.create("det_resnet10", 11, image_size=96), a)
    with pytest.raises(UserError, match="classes"):
        models.check_pair(models.create("det_resnet10", 5, fpn_channels=16), a)
    with pytest.raises(UserError, match="unknown detector"):
        models.create("resnet8", 11)
    assert set(models.PAIRS) == {"r101-r18", "r101-r50", "r50-mbv2"}


def test_the_papers_coco_pairs_build_and_line_up():
    for teacher_arch, student_arch in models.PAIRS.values():
        teacher, student = models.create(teacher_arch, 81), models.create(student_arch, 81)
        models.check_pair(teacher, student)
        assert teacher.backbone.out_channels == student.backbone.out_channels == 256
        assert student.transform.min_size == (800,) and student.transform.max_size == 1333
    feats = models.create("frcnn_mbv2", 81).backbone(torch.zeros(1, 3, 64, 64))
    assert [tuple(f.shape[1:]) for f in feats.values()] == [(256, s, s) for s in (16, 8, 4, 2, 1)]
