"""The reduced output space of the probe (top-m classes plus a merged "rest"): identity for
m >= K, a lower bound of the KL and of the Fisher metric, a faithful channel ranking."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from fcfd_viz.analysis import Anisotropy, AnisotropyResult, spearman
from fcfd_viz.analysis.probe.anisotropy import divergence_fn
from fcfd_viz.analysis.probe.classes import (
    AUTO_TOP,
    OutputReduction,
    parse_top_classes,
    resolve_top_classes,
)
from fcfd_viz.errors import UserError
from fcfd_viz.models.base import Head, StagedNet

# tiny tensors: one thread avoids OpenMP spin-waits when the CPU is shared
pytestmark = pytest.mark.usefixtures("one_thread_module")


def many_class_net(classes: int = 200, seed: int = 0) -> StagedNet:
    """A tiny smooth conv net with a ``classes``-way head (random weights)."""
    torch.manual_seed(seed)
    stages = [
        nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.Tanh()),
        nn.Sequential(nn.Conv2d(8, 16, 3, padding=1), nn.Softplus()),
        nn.Sequential(nn.Conv2d(16, 24, 3, padding=1, stride=2), nn.Tanh()),
    ]
    net = StagedNet(stages, Head(24, classes, relu=False), arch="toy", num_classes=classes)
    with torch.no_grad():
        net.head.fc.weight.mul_(4)  # a softmax that is neither uniform nor one-hot
    return net.eval()


def images(n: int = 3, seed: int = 1) -> torch.Tensor:
    return torch.randn(n, 3, 8, 8, generator=torch.Generator().manual_seed(seed))


def test_parse_and_resolve():
    assert parse_top_classes("auto") == "auto" and parse_top_classes("all") is None
    assert parse_top_classes("7") == 7 and parse_top_classes(None) is None
    for bad in (0, -2, "x", "1.5", True):
        with pytest.raises(UserError, match="classes"):
            parse_top_classes(bad)
    assert resolve_top_classes("auto", 100) is None  # small heads: exact
    assert resolve_top_classes("auto", 1000) == AUTO_TOP
    assert resolve_top_classes(10, 10) is None and resolve_top_classes(3, 10) == 3


def test_merged_distribution_and_kl_lower_bound():
    g = torch.Generator().manual_seed(0)
    z0 = torch.randn(6, 50, generator=g, dtype=torch.float64) * 2
    z = z0 + torch.randn(6, 50, generator=g, dtype=torch.float64)
    red = OutputReduction(z0, 5, "kl")
    p0, q0 = torch.softmax(z0, 1), torch.softmax(red(z0), 1)  # (6, 50), (6, 6)
    assert torch.allclose(q0[:, :5], p0.gather(1, red.top))
    assert torch.allclose(q0[:, 5], red.neglected_mass)  # "rest" holds the neglected mass
    full, merged = divergence_fn(z, z0, "kl"), divergence_fn(red(z), red(z0), "kl")
    assert (merged <= full + 1e-12).all() and (merged > 0.2 * full).all()
    l2 = OutputReduction(z0, 5, "l2")
    assert (divergence_fn(l2(z), l2(z0), "l2") <= divergence_fn(z, z0, "l2")).all()


@pytest.mark.parametrize("mode", ["exact", "fisher"])
def test_all_classes_kept_is_the_full_computation(mode):
    net, x = many_class_net(12), images()
    kw = dict(mode=mode, n_random=4, k_jacobian=2)
    full = Anisotropy(net, 1).compute(x, top_classes="all", **kw)
    for m in (12, 40, "auto"):
        res = Anisotropy(net, 1).compute(x, top_classes=m, **kw)
        assert res.top_classes is None and float(res.neglected_mass.abs().max()) == 0
        for name, t in full.families.items():
            assert torch.equal(res.families[name], t), name
        assert torch.equal(res.jacobian_top_values, full.jacobian_top_values)


def test_fisher_metric_lower_bound_and_ranking_on_200_classes():
    net, x = many_class_net(200), images(4)
    probe = Anisotropy(net, 1)
    full = probe.compute(x, mode="fisher", directions="channel", top_classes="all")
    red = probe.compute(x, mode="fisher", directions="channel", top_classes=AUTO_TOP)
    assert red.top_classes == AUTO_TOP and red.num_classes == 200
    assert (red.channel_per_image <= full.channel_per_image * (1 + 1e-6) + 1e-12).all()
    rho = spearman(red.channel_sensitivity, full.channel_sensitivity)
    assert rho >= 0.9, rho
    d = red.to_dict()
    assert d["top_classes"] == AUTO_TOP and 0 < d["neglected_mass"] < 1
    back = AnisotropyResult.from_dict(d)
    assert back.top_classes == AUTO_TOP and torch.allclose(back.neglected_mass, red.neglected_mass)


def test_reduced_jacobian_takes_m_steps():
    net, x = many_class_net(200), images(2)
    res = Anisotropy(net, 1).compute(x, mode="fisher", directions="jacobian", top_classes=6)
    assert res.jacobian_rank == 6 and res.jacobian_steps <= 6
    assert res.top_singular_values is not None
