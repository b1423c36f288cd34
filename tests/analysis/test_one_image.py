"""The functional gap for one picture: the identical student predicts like the teacher, and
one image's KL is exactly that image's share of FunctionalGap's per-stage average."""

from __future__ import annotations

import copy

import pytest
import torch
from torch.utils.data import DataLoader, TensorDataset

from fcfd_viz import models
from fcfd_viz.analysis import FunctionalGap
from fcfd_viz.analysis.gap.connectors import new_bridges
from fcfd_viz.analysis.gap.one_image import ImagePredictions, bridged_predictions
from fcfd_viz.errors import UserError
from fcfd_viz.viz import gap as viz_gap

SHAPE = (3, 16, 16)
pytestmark = pytest.mark.usefixtures("one_thread_module")


def with_stats(seed: int):
    """A resnet8 whose BN running statistics were estimated on data (eval != batch BN)."""
    torch.manual_seed(seed)
    net = models.create("resnet8", num_classes=10).train()
    with torch.no_grad():
        for _ in range(3):
            net(torch.randn(32, *SHAPE) * 1.5 + 0.3)
    return net.eval()


@pytest.fixture(scope="module")
def setup():
    teacher = with_stats(0)
    twin, other = copy.deepcopy(teacher), with_stats(1)
    s2t, t2s = new_bridges(teacher, twin, SHAPE)
    for b in [*s2t.values(), *t2s.values()]:
        b.set_identity()
    rand = new_bridges(teacher, other, SHAPE, seed=3)
    bridges = {"fcfd": (s2t.eval(), t2s.eval()), "kd": (rand[0].eval(), rand[1].eval())}
    gap = FunctionalGap(teacher, {"fcfd": twin, "kd": other}, bridges, SHAPE)
    images = torch.randn(3, *SHAPE, generator=torch.Generator().manual_seed(5)) * 1.5 + 0.3
    return gap, images


def test_identical_student_predicts_like_the_teacher_and_others_do_not(setup):
    gap, images = setup
    before = {k: v.clone() for k, v in gap.teacher.state_dict().items()}
    pred = bridged_predictions(gap, images[0], stage=2, label=4)
    assert set(pred.bridged) == {"fcfd (own bridges)", "kd (own bridges)"}
    assert torch.allclose(pred.bridged["fcfd (own bridges)"], pred.teacher, atol=1e-9)
    assert pred.kl["fcfd (own bridges)"] < 1e-9 < pred.kl["kd (own bridges)"]
    assert float(pred.teacher.sum()) == pytest.approx(1.0)
    assert torch.allclose(pred.student["fcfd"], pred.teacher, atol=1e-9)
    assert pred.top_class() == pred.top_class("fcfd (own bridges)")
    assert all(torch.equal(v, gap.teacher.state_dict()[k]) for k, v in before.items())
    assert set(pred.without_own().bridged) == set() and pred.without_own(keep=True) is pred
    back = ImagePredictions.from_dict(pred.to_dict())
    assert back.kl == pred.kl and torch.equal(
        back.bridged["kd (own bridges)"], pred.bridged["kd (own bridges)"]
    )


def test_one_image_kl_is_its_share_of_the_gap(setup):
    gap, images = setup
    y = torch.zeros(len(images), dtype=torch.long)
    res = gap.compute(DataLoader(TensorDataset(images, y), batch_size=1), bn="eval", fit=False)
    for stage in gap.stages:
        kls = [bridged_predictions(gap, x, stage).kl["kd (own bridges)"] for x in images]
        mean = sum(kls) / len(kls)
        assert mean == pytest.approx(float(res.entries["kd (own bridges)"].functional[stage - 1]))


def test_merge_figure_and_errors(setup):
    gap, images = setup
    a = bridged_predictions(gap, images[1], stage=1, label=2)
    both = a.merged(a)
    assert set(both.bridged) == set(a.bridged)
    fig = viz_gap.one_image_figure(a)
    assert len(fig.data) == 1 + len(a.bridged)  # the teacher's panel and one per view
    assert "KL" in fig.layout.annotations[1].text
    assert fig.data[0].marker.color[2] == "#2ca02c"  # the true class stands out
    with_image = viz_gap.one_image_figure(a, image=images[1])
    assert with_image.data[0].type == "heatmap" and len(with_image.data) == len(fig.data) + 1
    with pytest.raises(UserError, match="stage must be one of"):
        bridged_predictions(gap, images[0], stage=0)
    with pytest.raises(UserError, match="cannot be merged"):
        a.merged(bridged_predictions(gap, images[0], stage=1))
