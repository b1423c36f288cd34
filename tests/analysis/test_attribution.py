"""Captum channel attributions at a stage (``Attribution``), their result's round trip, and
the Spearman rank correlation."""

from __future__ import annotations

import json
import math

import pytest
import torch
from torch import nn

from fcfd_viz import models
from fcfd_viz.analysis import Attribution, AttributionResult, spearman
from fcfd_viz.analysis.probe.attribution import METHODS, parse_methods
from fcfd_viz.errors import UserError
from fcfd_viz.models.base import Head, StagedNet

# tiny tensors: one thread avoids OpenMP spin-waits when the CPU is shared
pytestmark = pytest.mark.usefixtures("one_thread_module")


def test_spearman_basics():
    a = [0.3, 1.0, 2.5, 7.0, 9.0]
    assert spearman(a, a) == pytest.approx(1.0)
    assert spearman(a, a[::-1]) == pytest.approx(-1.0)
    assert spearman(a, [x**3 for x in a]) == pytest.approx(1.0)  # ranks only
    assert math.isnan(spearman([1, 1, 1], [1, 2, 3]))
    with pytest.raises(UserError):
        spearman([1, 2], [1, 2, 3])


def test_spearman_ties_use_average_ranks():
    # ranks of a: 1.5 1.5 3 4 ; of b: 1 2 3.5 3.5  -> Pearson of the rank vectors
    a, b = [1, 1, 2, 3], [1, 2, 3, 3]
    ra, rb = torch.tensor([1.5, 1.5, 3, 4]), torch.tensor([1, 2, 3.5, 3.5])
    ra, rb = ra - ra.mean(), rb - rb.mean()
    assert spearman(a, b) == pytest.approx(float((ra * rb).sum() / (ra.norm() * rb.norm())))


def test_spearman_is_scipys_with_ties_and_nan():
    from scipy import stats

    assert spearman([1, 1, 2, 3], [1, 2, 3, 3]) == pytest.approx(8 / 9)  # the ranks above
    g = torch.Generator().manual_seed(0)
    for n in (2, 5, 64):
        a = torch.randint(0, 4, (n,), generator=g).float()  # many ties
        b = torch.randn(n, generator=g).requires_grad_()
        want = stats.spearmanr(a.numpy(), b.detach().numpy()).statistic
        assert spearman(a, b) == pytest.approx(want, abs=1e-12)
    nan = float("nan")
    assert math.isnan(spearman([1.0, nan, 3.0], [1.0, 2.0, 3.0]))  # propagated, as scipy does
    assert math.isnan(stats.spearmanr([1.0, nan, 3.0], [1.0, 2.0, 3.0]).statistic)
    assert math.isnan(spearman([5.0], [1.0]))


def test_every_method_gives_one_value_per_channel():
    net = models.create("resnet8", num_classes=10)
    x = torch.randn(3, 3, 16, 16, generator=torch.Generator().manual_seed(0))
    before = {k: v.clone() for k, v in net.state_dict().items()}
    net.train()
    res = Attribution(net, 2).compute(
        x, methods=tuple(METHODS), n_steps=4, perturbations_per_eval=5
    )
    assert isinstance(res, AttributionResult) and res.methods == list(METHODS)
    for name, v in res.channels.items():
        assert v.shape == (32,), name
        assert torch.isfinite(v).all() and (v >= 0).all() and v.sum() > 0, name
    assert res.target.shape == (3,)
    assert net.training  # mode restored
    assert all(torch.equal(before[k], v) for k, v in net.state_dict().items())
    assert all(p.grad is None for p in net.parameters())
    d = json.loads(json.dumps(res.to_dict()))
    assert set(d["channels"]) == set(METHODS) and len(d["channels"]["ablation"]) == 32
    again = AttributionResult.from_dict(d)  # the round trip: tensors back, same dict
    assert again.to_dict() == res.to_dict() and again.methods == res.methods
    assert again.target.dtype == torch.long and torch.equal(again.target, res.target)
    for name, v in res.channels.items():
        assert torch.is_tensor(again.channels[name]) and torch.equal(again.channels[name], v)


def test_known_importance_on_a_linear_head():
    # stage 1 output channel c is x_c * scale_c; target logit = sum_c w_c mean(stage output)
    scale = torch.tensor([1.0, 2.0, 3.0, 4.0, 5.0])
    weight = torch.tensor([[0.5, -3.0, 0.1, 1.0, -0.2], [0.0, 0.0, 0.0, 0.0, 0.0]])

    class Scale(nn.Module):
        def forward(self, f):
            return f * scale.view(1, -1, 1, 1)

    head = Head(5, 2, relu=False)
    with torch.no_grad():
        head.fc.weight.copy_(weight)
        head.fc.bias.zero_()
    net = StagedNet([nn.Identity(), Scale()], head, arch="toy", num_classes=2)
    x = torch.rand(4, 5, 3, 3) + 0.5  # positive, so |mean| = mean |.|
    res = Attribution(net, 1).compute(x, target=0, perturbations_per_eval=2)
    expect = weight[0].abs() * scale * x.mean(dim=(0, 2, 3))  # |w_c| * mean activation
    # gradient methods share the effect among the 9 positions; ablation gives every position
    # of the group the whole group's effect
    for name, factor in (("grad_x_act", 9), ("integrated_gradients", 9), ("ablation", 1)):
        torch.testing.assert_close(
            res.channels[name] * factor, expect, rtol=1e-4, atol=1e-6, msg=name
        )
    assert res.spearman_with(expect) == pytest.approx({m: 1.0 for m in res.channels})
    assert res.target.tolist() == [0, 0, 0, 0]


def test_default_target_is_the_prediction():
    net = models.create("resnet8", num_classes=10).eval()
    x = torch.randn(4, 3, 16, 16)
    res = Attribution(net, 3).compute(x, methods="grad_x_act")
    with torch.no_grad():
        assert res.target.tolist() == net(x).argmax(1).tolist()


def test_errors():
    net = models.create("resnet8", num_classes=10)
    x = torch.randn(2, 3, 16, 16)
    with pytest.raises(UserError, match="stage"):
        Attribution(net, 4)
    with pytest.raises(UserError, match="saliency"):
        Attribution(net, 1).compute(x, methods=("saliency",))
    with pytest.raises(UserError, match="at least one"):
        Attribution(net, 1).compute(x, methods="none")
    with pytest.raises(UserError, match="without 'target'"):  # a summary is not a result
        AttributionResult.from_dict({"stage": 1, "channels": {}})


def test_parse_methods():
    assert parse_methods("grad_x_act, Ablation,grad_x_act") == ["grad_x_act", "ablation"]
    assert parse_methods("none") == parse_methods("") == parse_methods([]) == []
    with pytest.raises(UserError, match="lime.*or none"):
        parse_methods(["grad_x_act", "lime"])


@pytest.mark.parametrize("cut", [dict(stage=2), dict(layer="stages.1")])
def test_methods_at_the_cut_equal_captum(cut):
    net = models.create("resnet8", num_classes=10).eval()
    x = torch.randn(3, 3, 16, 16, generator=torch.Generator().manual_seed(0))
    methods = ["grad_x_act", "integrated_gradients", "ablation"]
    stage = cut.get("stage")
    ours = Attribution(net, stage, layer=cut.get("layer")).compute(x, methods, n_steps=5)
    ref = Attribution(net, stage, layer=cut.get("layer")).compute(
        x, methods, n_steps=5, captum=True
    )
    assert torch.equal(ours.target, ref.target)
    for m in methods:
        assert torch.allclose(ours.channels[m], ref.channels[m], rtol=1e-4, atol=1e-6), m
