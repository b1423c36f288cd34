"""Captum's layer attributions computed at the cut, from one clean pass.

captum's ``LayerGradientXActivation``, ``LayerIntegratedGradients`` and
``LayerFeatureAblation`` run the whole network from the image for every evaluation: the
ablation of ``C`` channels costs ``C / perturbations_per_eval`` full forward passes of
``perturbations_per_eval * N`` images, and integrated gradients ``n_steps * N`` full forward
and backward passes. At a cut only the rest of the network depends on the feature, so these
functions evaluate the same quantities through the cut's ``rest`` (the layers before the cut
ran once): the numbers are captum's (the tests compare them) at a fraction of the cost, and
the cost does not depend on the number of classes (one target logit per image).

Each returns an attribution of the feature's shape, like captum's layer methods.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import Tensor

from fcfd_viz.analysis.cuts import Rest, channel_axis


def _target_logit(rest: Rest, x: Tensor, target: Tensor) -> Tensor:
    """(B,) logit of ``target`` (tiled over the B = m * N rows) for features x (B, *feature)."""
    t = target.repeat(x.shape[0] // target.shape[0])
    return rest(x).gather(1, t[:, None]).squeeze(1)


def _grad(rest: Rest, x: Tensor, target: Tensor) -> Tensor:
    """Gradient of the target logits' sum with respect to x (N, *feature)."""
    x = x.detach().requires_grad_(True)
    with torch.enable_grad():
        (g,) = torch.autograd.grad(_target_logit(rest, x, target).sum(), x)
    return g


def grad_x_act(rest: Rest, f: Tensor, target: Tensor) -> Tensor:
    """``LayerGradientXActivation``: ``f * d logit_target / d f``, (N, *feature)."""
    return f.detach() * _grad(rest, f, target)


def integrated_gradients(
    rest: Rest, f: Tensor, baseline: Tensor, target: Tensor, n_steps: int = 16
) -> Tensor:
    """``LayerIntegratedGradients`` with captum's default Gauss-Legendre rule: the layer
    baseline ``baseline`` (N, *feature) is the cut's feature of the baseline images, and the
    path ``baseline + a (f - baseline)`` is evaluated through ``rest``, one step at a time."""
    nodes, weights = np.polynomial.legendre.leggauss(n_steps)
    alphas, weights = 0.5 * (1 + nodes), 0.5 * weights  # on [0, 1]
    f, baseline = f.detach(), baseline.detach().to(f)
    delta = f - baseline  # (N, *feature)
    total = torch.zeros_like(f)
    for a, w in zip(alphas.tolist(), weights.tolist()):
        total += w * _grad(rest, baseline + a * delta, target)
    return total * delta


def ablation(rest: Rest, f: Tensor, target: Tensor, maps_per_pass: int = 128) -> Tensor:
    """``LayerFeatureAblation`` with one group per channel and baseline 0: the drop of the
    target logit when the channel is zeroed, broadcast over the channel's positions.

    Channels are stacked along the batch, ``maps_per_pass`` feature maps per forward pass.
    """
    f = f.detach()
    n, axis = f.shape[0], 2 + channel_axis(f.shape[1:])  # channel axis of (m, N, *feature)
    c = f.shape[axis - 1]
    per_pass = max(1, maps_per_pass // n)
    drops = []
    with torch.no_grad():
        clean = _target_logit(rest, f, target)  # (N,)
        for a in range(0, c, per_pass):
            m = min(per_pass, c - a)
            x = f.unsqueeze(0).repeat(m, *[1] * f.dim())  # (m, N, *feature)
            idx = torch.arange(m, device=f.device)
            x.movedim(axis, 2)[idx, :, idx + a] = 0
            z = _target_logit(rest, x.reshape(m * n, *f.shape[1:]), target).view(m, n)
            drops.append(clean[None] - z)  # (m, N)
    drop = torch.cat(drops).T  # (N, C)
    shape = [n] + [1] * (f.dim() - 1)
    shape[axis - 1] = c  # (N, C, 1, 1) or (N, 1, D)
    return drop.reshape(shape).expand_as(f)
