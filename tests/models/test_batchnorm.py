"""The BatchNorm and freezing helpers (fcfd_viz.models.batchnorm): what they change, and that they restore
everything else."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from fcfd_viz import models
from fcfd_viz.models.batchnorm import (
    bn_regime,
    cumulative_running_stats,
    freeze,
    frozen,
    keep_running_stats,
    running_stats_frozen,
)

pytestmark = pytest.mark.usefixtures("one_thread")


def resnet8(seed: int) -> nn.Module:
    torch.manual_seed(seed)
    return models.create("resnet8", num_classes=10)


def batch(seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return torch.randn(8, 3, 16, 16, generator=g), torch.randint(0, 10, (8,), generator=g)


def _bn_buffers(net: nn.Module) -> dict[str, torch.Tensor]:
    return {
        k: v.clone() for k, v in net.state_dict().items() if "running" in k or "num_batches" in k
    }


def test_running_stats_frozen_restores_momentum_and_counter():
    net = resnet8(3).train()
    bns = [m for m in net.modules() if isinstance(m, nn.BatchNorm2d)]
    bns[0].momentum, bns[1].momentum = 0.3, None  # None: cumulative average
    moms = [m.momentum for m in bns]
    before = _bn_buffers(net)
    x, _ = batch()
    with torch.no_grad(), running_stats_frozen(net):
        assert all(m.momentum == 0.0 for m in bns)
        net(x)
        net(x)
    assert [m.momentum for m in bns] == moms
    after = _bn_buffers(net)
    for k in before:
        assert torch.equal(before[k], after[k]), k
    # restored even when the body raises
    with pytest.raises(RuntimeError), torch.no_grad(), running_stats_frozen(net):
        net(x)
        raise RuntimeError("boom")
    assert [m.momentum for m in bns] == moms
    assert all(torch.equal(before[k], v) for k, v in _bn_buffers(net).items())
    # control: outside the context a train-mode pass does move them
    with torch.no_grad():
        net(x)
    moved = _bn_buffers(net)
    assert not torch.equal(moved["stages.0.1.running_mean"], before["stages.0.1.running_mean"])
    assert (
        moved["stages.0.1.num_batches_tracked"].item()
        == before["stages.0.1.num_batches_tracked"].item() + 1
    )


def test_keep_running_stats_and_freeze():
    net = resnet8(0).train()
    keep_running_stats(net)
    before = _bn_buffers(net)
    with torch.no_grad():
        out = net(batch()[0])
    after = _bn_buffers(net)
    assert all(torch.equal(before[k], after[k]) for k in before if "running" in k)
    # train mode still normalises with batch statistics: not the eval-mode output
    with torch.no_grad():
        assert not torch.allclose(out, net.eval()(batch()[0]))
    assert freeze(net) is net and not any(p.requires_grad for p in net.parameters())


def test_cumulative_running_stats_is_the_plain_average():
    """Two passes inside the block: running mean = the mean of the two batch means."""
    bn = nn.BatchNorm1d(3)
    a, b = torch.randn(16, 3), torch.randn(16, 3) + 2.0
    bn.momentum = 0.3
    with cumulative_running_stats(bn):
        assert bn.training and bn.momentum is None
        bn(a)
        bn(b)
    torch.testing.assert_close(bn.running_mean, (a.mean(0) + b.mean(0)) / 2)
    assert bn.momentum == 0.3 and not bn.training


def test_frozen_and_bn_regime_restore_modes_and_buffers():
    net = resnet8(1).train()
    before = _bn_buffers(net)
    x, _ = batch()
    with torch.no_grad(), frozen(net):
        assert not net.training
        net(x)
    with torch.no_grad(), frozen(net, eval_mode=False):
        assert net.training
        net(x)  # batch statistics, running statistics untouched
    with torch.no_grad(), bn_regime([net], "batch"):
        net(x)
    with torch.no_grad(), bn_regime([net], "eval"):
        assert not net.training
    assert net.training
    after = _bn_buffers(net)
    assert all(torch.equal(before[k], after[k]) for k in before)
