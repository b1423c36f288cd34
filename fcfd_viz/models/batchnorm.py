"""BatchNorm and freezing: every way fcfd-viz runs a network without changing it, in one place.

* :func:`freeze` stops gradients into a network (the teacher, fitted connectors);
* :func:`keep_running_stats` makes its BN layers keep their running statistics for good
  (the frozen teacher: momentum 0, so even a train-mode pass leaves them as they are);
* :func:`running_stats_frozen` does the same for one block of code (FCFD's mixed paths);
* :func:`frozen` runs a network for analysis and restores every mode and buffer afterwards;
* :func:`bn_regime` runs networks on running (``"eval"``) or batch (``"batch"``) statistics;
* :func:`cumulative_running_stats` re-estimates running statistics from the passes made
  inside it (the average over those passes, not an exponential one).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterable, Iterator, Sequence

import torch
from torch import nn


def batchnorms(nets: nn.Module | Iterable[nn.Module], training_only: bool = False) -> list:
    """Every BatchNorm layer of ``nets`` (those in train mode only, when asked)."""
    nets = [nets] if isinstance(nets, nn.Module) else list(nets)
    return [
        m
        for net in nets
        for m in net.modules()
        if isinstance(m, nn.modules.batchnorm._BatchNorm) and (m.training or not training_only)
    ]


def freeze(net: nn.Module) -> nn.Module:
    """Stop gradients into ``net``'s parameters; returns ``net``."""
    for p in net.parameters():
        p.requires_grad_(False)
    return net


def keep_running_stats(net: nn.Module) -> None:
    """BN layers of ``net`` keep their running statistics even in train mode, for good.

    With momentum 0 a BN layer in train mode normalises with batch statistics but its running
    estimate stays ``(1 - 0) * running + 0 * batch``, i.e. unchanged.
    """
    for m in batchnorms(net):
        m.momentum = 0.0


@contextlib.contextmanager
def running_stats_frozen(net: nn.Module) -> Iterator[None]:
    """Inside the block, train-mode BN layers of ``net`` use batch statistics but leave their
    running statistics (and batch counters) alone; momenta are restored afterwards.

    FCFD's mixed-path passes run inside this, so the running statistics used at evaluation
    come only from the network's own pure path.
    """
    bns = batchnorms(net, training_only=True)
    saved = [
        (m.momentum, m.num_batches_tracked.clone() if m.num_batches_tracked is not None else None)
        for m in bns
    ]
    for m in bns:
        m.momentum = 0.0  # running = (1 - 0) * running + 0 * batch
    try:
        yield
    finally:
        for m, (mom, nbt) in zip(bns, saved):
            m.momentum = mom
            if nbt is not None:
                m.num_batches_tracked.copy_(nbt)


@contextlib.contextmanager
def frozen(model: nn.Module, eval_mode: bool = True) -> Iterator[None]:
    """Freeze ``model`` for analysis; every module's mode and every buffer are restored after.

    ``eval_mode=True`` switches to eval mode. Otherwise modules keep their modes, and
    BatchNorm layers in training mode normalise with batch statistics *without* updating
    their running statistics (``track_running_stats`` is lifted for the duration).
    """
    modes = [(m, m.training) for m in model.modules()]
    tracking = [(m, m.track_running_stats) for m in batchnorms(model)]
    buffers = {k: v.detach().clone() for k, v in model.named_buffers()}
    if eval_mode:
        model.eval()
    else:
        for m, _ in tracking:
            if m.training:
                m.track_running_stats = False
    try:
        yield
    finally:
        for m, was in modes:
            m.training = was
        for m, was in tracking:
            m.track_running_stats = was
        with torch.no_grad():
            for k, v in model.named_buffers():
                if k in buffers and not torch.equal(v, buffers[k]):
                    v.copy_(buffers[k])


@contextlib.contextmanager
def bn_regime(nets: Sequence[nn.Module], bn: str) -> Iterator[None]:
    """Run ``nets`` with eval-mode BN (``"eval"``) or batch statistics (``"batch"``) without
    changing their running statistics; every module's mode is restored afterwards."""
    modes = [(m, m.training) for net in nets for m in net.modules()]
    for net in nets:
        net.train(bn == "batch")
    try:
        with contextlib.ExitStack() as stack:
            if bn == "batch":
                for net in nets:
                    stack.enter_context(running_stats_frozen(net))
            yield
    finally:
        for m, was in modes:
            m.training = was


@contextlib.contextmanager
def cumulative_running_stats(nets: nn.Module | Iterable[nn.Module]) -> Iterator[None]:
    """Re-estimate the BN running statistics of ``nets`` from the passes run inside the block.

    The statistics are reset, the nets put in train mode and momentum set to None (PyTorch's
    cumulative average); momenta are restored afterwards and the nets left in eval mode.
    """
    nets = [nets] if isinstance(nets, nn.Module) else list(nets)
    bns = batchnorms(nets)
    saved = [m.momentum for m in bns]
    for m in bns:
        m.reset_running_stats()
        m.momentum = None
    for net in nets:
        net.train()
    try:
        with torch.no_grad():
            yield
    finally:
        for m, mom in zip(bns, saved):
            m.momentum = mom
        for net in nets:
            net.eval()
