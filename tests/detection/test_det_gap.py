"""The detection functional gap: exactly zero for a student equal to its teacher through
identity bridges, a perturbed level shows at that level only, shapes, fitting, round trip."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn
from torch.utils.data import DataLoader
from torchvision.ops import MultiScaleRoIAlign

from fcfd_viz.analysis.gap.fit_config import FitConfig
from fcfd_viz.detection import data, models
from fcfd_viz.detection.gap import DetectionGap
from fcfd_viz.detection.gap_result import DetGapResult, det_gap_reading
from fcfd_viz.errors import UserError

pytestmark = pytest.mark.usefixtures("one_thread")
LEVELS = ["p2", "p3", "p4", "p5", "p6"]
KEYS = ["0", "1", "2", "3", "pool"]


def tiny(arch: str = "det_resnet10", seed: int = 0, channels: int = 8):
    torch.manual_seed(seed)
    return models.create(arch, 11, fpn_channels=channels).eval()


def loader(train: bool = False, n: int = 4) -> DataLoader:
    return DataLoader(data.DigitBoxes(train, n=n), batch_size=2, collate_fn=data.collate)


def identities() -> nn.ModuleDict:
    return nn.ModuleDict({k: nn.Identity() for k in KEYS})


class Shift(nn.Module):
    def forward(self, x):
        return x + 0.5


def test_identity_bridge_and_same_network_give_exactly_zero():
    teacher = tiny()
    gap = DetectionGap(teacher, {"twin": teacher}, {"twin": identities()})
    res = gap.compute(loader(), fit=False)
    e = res.entries["twin (own bridges)"]
    assert res.levels == LEVELS and res.num_images == 4 and res.num_rois > 0
    assert e.appearance.shape == e.functional.shape == e.box.shape == (5,)
    assert torch.equal(e.appearance, torch.zeros(5, dtype=torch.float64))
    assert torch.equal(e.functional[:4], torch.zeros(4, dtype=torch.float64))
    assert torch.equal(e.box[:4], torch.zeros(4, dtype=torch.float64))
    assert math.isnan(e.functional[4]) and math.isnan(e.box[4])  # p6 feeds only the RPN
    assert e.all_functional == 0.0 and e.all_box == 0.0


def spread():
    """A tiny teacher whose box head pools the untrained RPN's small proposals from p2 and
    p3 (canonical scale 12 instead of 32), so more than one level is read."""
    teacher = tiny()
    teacher.roi_heads.box_roi_pool = MultiScaleRoIAlign(KEYS[:4], 7, 1, canonical_scale=12)
    return teacher


@pytest.mark.parametrize("level", [0, 1, 2])
def test_a_perturbed_level_shows_at_that_level_only(level):
    teacher = spread()
    s2t = identities()
    s2t[KEYS[level]] = Shift()
    res = DetectionGap(teacher, {"twin": teacher}, {"twin": s2t}).compute(loader(), fit=False)
    e = res.entries["twin (own bridges)"]
    assert res.rois_per_level[:2] > [0, 0] and res.rois_per_level[2:] == [0, 0, 0]
    assert e.appearance[level] == pytest.approx(0.25, rel=1e-6)
    others = [i for i in range(5) if i != level]
    assert all(e.appearance[i] == 0 for i in others)
    assert all(e.functional[i] == 0 and e.box[i] == 0 for i in others[:3])
    if level < 2:  # a level the head pools from: a functional gap there, and in "all"
        assert e.functional[level] > 0 and e.box[level] > 0
        assert e.all_functional == pytest.approx(float(e.functional[level]))
        assert e.all_box == pytest.approx(float(e.box[level]))
    else:  # no proposal pools from p4: only the appearance gap moves
        assert e.functional[level] == 0 and e.all_functional == 0


def test_fitted_connectors_for_another_student_and_round_trip():
    teacher, student = tiny(), tiny("det_mobilenetv2", seed=1, channels=16)
    gap = DetectionGap(teacher, {"kd": student}, methods={"kd": "kd"})
    with pytest.raises(UserError, match="no bridges"):
        gap.compute(loader(), fit=False)
    cfg = FitConfig(max_epochs=3, min_epochs=1, patience=1, batch_size=4)
    res = gap.compute(loader(), loader(True, 6), fit=cfg)
    e = res.entries["kd (fitted)"]
    assert e.method == "kd" and e.fit.num_images == 6 and e.fit.cached
    assert set(e.fit.bridges) == {f"s2t/{p}" for p in LEVELS}
    assert all(b.epochs <= 3 for b in e.fit.bridges.values())
    assert (e.appearance > 0).all() and e.functional[0] > 0 and e.all_functional > 0
    s2t, _ = gap.fitted("kd")
    assert not s2t.training and not any(p.requires_grad for p in s2t.parameters())
    again = DetGapResult.from_dict(res.to_dict())
    assert again.to_dict() == res.to_dict()
    d = res.to_dict()
    assert d["students"]["kd (fitted)"]["functional"]["p6"] is None
    assert "smallest functional gap" in det_gap_reading(res)
    # the fit is kept: measuring again does not fit anew
    assert gap.compute(loader(), loader(True, 6), fit=cfg).entries["kd (fitted)"].fit is e.fit


def test_bad_bridges_are_refused():
    teacher = tiny()
    with pytest.raises(UserError, match="must cover FPN levels"):
        DetectionGap(teacher, {"s": teacher}, {"s": nn.ModuleDict({"0": nn.Identity()})})
    with pytest.raises(UserError, match="unknown student"):
        DetectionGap(teacher, {"s": teacher}, {"x": identities()})
