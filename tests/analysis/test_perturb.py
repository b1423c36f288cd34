"""Perturbation explorer: same norms, known answers on a linear tail, caching, errors."""

from __future__ import annotations

import json

import pytest
import torch
from torch import nn

from fcfd_viz.analysis.probe.anisotropy import Anisotropy
from fcfd_viz.analysis.probe.perturb import DIRECTIONS, PerturbationExplorer, channel_direction
from fcfd_viz.analysis.probe.perturb_result import PerturbationResult
from fcfd_viz.errors import UserError
from fcfd_viz.models.base import Head, StagedNet

pytestmark = pytest.mark.usefixtures("one_thread_module")

C, HW, K = 6, 3, 5


def linear_tail_net(seed: int = 0) -> tuple[StagedNet, torch.Tensor]:
    """stem = identity, stage 1 = 1x1 conv ``W`` (K x C, channel c scaled by 2**c), head = fc
    = identity after average pooling (no ReLU): ``logits = W mean_hw(f) + b``.

    Channel c's direction moves the logits by ``W[:, c] / HW`` (times its size), so the
    channels' sensitivities are ordered by the column norms of ``W``: channel C-1 most,
    channel 0 least, by a wide margin.
    """
    g = torch.Generator().manual_seed(seed)
    w = torch.randn(K, C, generator=g)
    w = w / w.norm(dim=0) * (2.0 ** torch.arange(C))  # column norms 1, 2, 4, ..., 32
    conv = nn.Conv2d(C, K, 1)
    head = Head(K, K, relu=False)
    with torch.no_grad():
        conv.weight.copy_(w.view(K, C, 1, 1) * 0.05)
        conv.bias.normal_(generator=g)
        head.fc.weight.copy_(torch.eye(K))
        head.fc.bias.zero_()
    net = StagedNet([nn.Identity(), conv], head, arch="toy", num_classes=K).eval()
    return net, w.double() * 0.05


def image(seed: int = 1) -> torch.Tensor:
    return torch.randn(C, HW, HW, generator=torch.Generator().manual_seed(seed))


@pytest.fixture(scope="module")
def explorer() -> PerturbationExplorer:
    return PerturbationExplorer(linear_tail_net()[0], stage=0).prepare(image())


def test_every_direction_has_the_same_norm_eps_times_the_feature_norm(explorer):
    res = explorer(0.3)
    f = image().double()
    assert res.names == DIRECTIONS and res.deltas.shape == (4, C, HW, HW)
    torch.testing.assert_close(res.feature.double(), f)
    expect = torch.full((4,), 0.3 * float(f.norm()), dtype=torch.float64)
    torch.testing.assert_close(res.delta_norms, expect, rtol=1e-5, atol=1e-6)
    assert res.size == pytest.approx(0.3 * float(f.norm()), rel=1e-6)
    torch.testing.assert_close(res.perturbed.double(), f[None] + res.deltas.double())
    absolute = explorer(0.5, relative=False)
    torch.testing.assert_close(absolute.delta_norms, torch.full((4,), 0.5, dtype=torch.float64))


def test_channels_ranked_by_the_linear_tail_and_their_directions_touch_one_channel(explorer):
    res = explorer(0.2)
    assert res.channels == (C - 1, 0)  # column norms of W grow with the channel
    assert res.labels[0] == f"channel {C - 1} (most sensitive)"
    touched = res.deltas.abs().sum(dim=(2, 3)) > 0  # (D, C)
    assert touched[0].tolist() == [c == C - 1 for c in range(C)]
    assert touched[1].tolist() == [c == 0 for c in range(C)]
    assert bool(touched[2].all()) and float(res.deltas[0, C - 1].std()) == 0  # uniform on the map
    assert res.kl[0] > 100 * res.kl[1]  # the same norm, very different effect
    assert float(res.kl.min()) > 0 and bool((res.probs.sum(-1) - 1).abs().max() < 1e-9)


def test_kl_is_clean_against_perturbed_and_matches_the_linear_logits(explorer):
    net, w = linear_tail_net()
    res = explorer(0.4)
    f = image().double()
    z0 = w @ f.mean(dim=(1, 2)) + net.stages[1].bias.double()  # (K,)
    z = z0[None] + res.deltas.double().mean(dim=(2, 3)) @ w.T  # (D, K): linear tail
    p0, p = torch.softmax(z0, -1), torch.softmax(z, -1)
    kl = (p0[None] * (p0.log()[None] - p.log())).sum(-1)
    torch.testing.assert_close(res.clean_probs, p0, rtol=1e-4, atol=1e-6)
    torch.testing.assert_close(res.probs, p, rtol=1e-4, atol=1e-6)
    torch.testing.assert_close(res.kl, kl, rtol=1e-3, atol=1e-8)


def tanh_net() -> StagedNet:
    torch.manual_seed(0)
    stages = [nn.Identity(), nn.Sequential(nn.Conv2d(C, 8, 3, padding=1), nn.Tanh())]
    return StagedNet(stages, Head(8, K, relu=False), arch="toy", num_classes=K).eval()


def test_eps_zero_changes_nothing(explorer):
    res = explorer(0.0)
    assert float(res.delta_norms.max()) == 0 and float(res.kl.abs().max()) == 0
    assert torch.equal(res.probs, res.clean_probs.expand_as(res.probs))
    # a conv tail whose batch rows round apart (oneDNN on this shape): each perturbed row is
    # compared with its own clean twin, so eps = 0 is still exactly no change
    torch.manual_seed(0)
    stages = [nn.Identity(), nn.Sequential(nn.Conv2d(4, 6, 3, padding=1), nn.Tanh())]
    net = StagedNet(stages, Head(6, 5, relu=False), arch="toy", num_classes=5).eval()
    x = torch.randn(4, 3, 3, generator=torch.Generator().manual_seed(0))
    assert float(PerturbationExplorer(net, stage=0).compute(x, 0.0).kl.abs().max()) == 0


def test_the_jacobian_direction_has_the_largest_first_order_change():
    # a nonlinear tail: for small eps KL ~ eps^2/2 d^T F d, largest along the top direction
    net = tanh_net()
    explorer = PerturbationExplorer(net, stage=0).prepare(image(2))
    small = explorer(1e-3)
    assert int(small.kl.argmax()) == DIRECTIONS.index("jacobian")
    # ... and of 200 random unit directions: none beats it
    f = image(2)
    rand = torch.randn(200, C, HW, HW, generator=torch.Generator().manual_seed(3))
    rand = rand / rand.flatten(1).norm(dim=1).view(-1, 1, 1, 1)
    with torch.no_grad():
        z0 = net.forward_from(f[None], 1)
        z = net.forward_from(f[None] + 1e-3 * float(f.norm()) * rand, 1)
    p0 = torch.softmax(z0.double(), -1)
    kl = (p0 * (p0.log() - torch.log_softmax(z.double(), -1))).sum(-1)
    assert float(kl.max()) < float(small.kl[3])
    # signed against the clean prediction: along it, that class loses probability, and the
    # opposite sign (the same first-order KL) takes it the other way
    c = small.clean_class
    assert float(small.probs[3, c]) < float(small.clean_probs[c])
    with torch.no_grad():
        back = net.forward_from(f[None] - small.deltas[3:4], 1)
    assert float(torch.softmax(back.double(), -1)[0, c]) > float(small.clean_probs[c])
    # the channel ranking is the probe's Fisher channel sensitivity for this image
    fisher = Anisotropy(net, 0).compute(f[None], eps=0.05, directions="channel", mode="fisher")
    ranked = fisher.channel_sensitivity
    assert small.channels == (int(ranked.argmax()), int(ranked.argmin()))


def test_the_dense_top_direction_is_the_lanczos_one(monkeypatch):
    from fcfd_viz.analysis.probe import perturb

    net, f = tanh_net(), image(4)[None]
    dense, value = perturb.top_direction(lambda g: net.forward_from(g, 1), f, K)
    monkeypatch.setattr(perturb, "DENSE_LIMIT", 0)  # many classes: Lanczos
    lanczos, lvalue = perturb.top_direction(lambda g: net.forward_from(g, 1), f, K)
    assert abs(float((dense * lanczos).sum())) == pytest.approx(1, abs=1e-4)
    assert value == pytest.approx(lvalue, rel=1e-4) and value > 0
    res = PerturbationExplorer(net, stage=0).compute(f, 0.1)  # the explorer on that path
    assert res.jacobian_value == pytest.approx(value, rel=1e-4)


def test_a_layer_cut_and_the_round_trip():
    net, _ = linear_tail_net()
    by_stage = PerturbationExplorer(net, stage=0).compute(image(), 0.25)
    by_layer = PerturbationExplorer(net, layer="stages.0").compute(image()[None], 0.25)
    assert by_layer.layer == "stages.0" and by_layer.stage is None
    torch.testing.assert_close(by_layer.kl, by_stage.kl, rtol=1e-4, atol=1e-8)
    d = json.loads(json.dumps(by_stage.to_dict()))
    back = PerturbationResult.from_dict(d)
    assert back.to_dict() == by_stage.to_dict() and back.channels == by_stage.channels


def test_channel_direction_of_a_token_sequence_spans_every_token():
    d = channel_direction((4, 3), 1)  # (T, D): hidden dimension 1 on all 4 tokens
    assert float(d.norm()) == pytest.approx(1.0)
    assert d[:, 1].tolist() == [0.5] * 4 and float(d[:, [0, 2]].abs().sum()) == 0


def test_bad_input_is_refused(explorer):
    with pytest.raises(UserError, match="prepare"):
        PerturbationExplorer(linear_tail_net()[0], stage=0)(0.1)
    with pytest.raises(UserError, match="eps must be a number >= 0"):
        explorer(-0.1)
    with pytest.raises(UserError, match="one image"):
        PerturbationExplorer(linear_tail_net()[0], stage=0).prepare(torch.randn(2, C, HW, HW))
