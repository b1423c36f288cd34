"""The error spectrum (fcfd_viz.analysis.gap.spectrum): closed forms on a linear tail, the
second-order limit on a real one, and the energy shares' known cases."""

from __future__ import annotations

import pytest
import torch

from fcfd_viz import models
from fcfd_viz.analysis.gap.spectrum import channel_share, error_spectrum, top_k_share
from fcfd_viz.errors import UserError

N, C, H, K = 6, 3, 2, 5
D = C * H * H


def linear_tail(seed: int = 0):
    gen = torch.Generator().manual_seed(seed)
    w = torch.randn(K, D, generator=gen, dtype=torch.float64)
    return w, (lambda f: f.flatten(1) @ w.T)


def test_fisher_equals_the_closed_form_on_a_linear_tail():
    w, rest = linear_tail()
    gen = torch.Generator().manual_seed(1)
    t = torch.randn(N, C, H, H, generator=gen, dtype=torch.float64)
    e = 0.3 * torch.randn(N, C, H, H, generator=gen, dtype=torch.float64)
    s = error_spectrum(rest, t, t + e)
    for i in range(N):
        p = torch.softmax(w @ t[i].flatten(), 0)
        fisher = w.T @ (torch.diag(p) - torch.outer(p, p)) @ w  # (D, D)
        expected = 0.5 * e[i].flatten() @ fisher @ e[i].flatten()
        assert float(s.fisher[i]) == pytest.approx(float(expected), rel=1e-9)
    assert torch.allclose(s.l2, e.flatten(1).pow(2).sum(1))


def test_shares_inside_and_outside_the_sensitive_directions():
    """An error in the row space of the (linear) tail lies wholly in its r = K - 1 sensitive
    directions (share 1 at k = r); one in the null space of W has share 0 and no KL."""
    w, rest = linear_tail()
    t = torch.zeros(N, C, H, H, dtype=torch.float64)
    # p uniform at t = 0: A J's row space is W's rows minus their mean
    rows = w - w.mean(0, keepdim=True)  # (K, D), rank K - 1
    gen = torch.Generator().manual_seed(2)
    inside = (torch.randn(N, K, generator=gen, dtype=torch.float64) @ rows).view(N, C, H, H)
    s = error_spectrum(rest, t, inside)
    assert s.share.shape[1] == K - 1
    assert torch.allclose(s.share[:, -1], torch.ones(N, dtype=torch.float64), atol=1e-8)
    assert bool((s.share[:, 1:] >= s.share[:, :-1] - 1e-12).all())  # cumulative
    basis = torch.linalg.svd(w, full_matrices=True)[2][K:]  # (D - K, D): null space of W
    outside = (torch.randn(N, D - K, generator=gen, dtype=torch.float64) @ basis).view(N, C, H, H)
    s = error_spectrum(rest, t, outside)
    assert float(s.share[:, -1].abs().max()) < 1e-8
    assert float(s.kl.abs().max()) < 1e-10 and float(s.fisher.abs().max()) < 1e-10
    assert torch.allclose(s.isotropic, torch.arange(1, K, dtype=torch.float64) / D)


def test_an_isotropic_error_has_the_isotropic_share_on_average():
    _, rest = linear_tail()
    gen = torch.Generator().manual_seed(3)
    n = 400
    t = torch.randn(n, C, H, H, generator=gen, dtype=torch.float64)
    e = torch.randn(n, C, H, H, generator=gen, dtype=torch.float64)
    s = error_spectrum(rest, t, t + e)
    # E ||P_k e||^2 / ||e||^2 = k / D for a rotation-invariant e (Beta(k/2, (D-k)/2) mean)
    assert torch.allclose(s.share.mean(0), s.isotropic, atol=0.03)


def test_fisher_is_the_small_error_limit_of_the_kl_on_a_real_tail():
    torch.manual_seed(0)
    net = models.create("resnet8", num_classes=10).eval()
    x = torch.randn(4, 3, 16, 16)
    with torch.no_grad():
        t = net.forward_features(x)[1]  # (4, 16, 16, 16) after stage 1

    def rest(f):
        return net.forward_from(f, 2)

    d = torch.randn_like(t)
    d = d / d.flatten(1).norm(dim=1).view(-1, 1, 1, 1)
    gaps = []
    for eps in (1.0, 0.1, 0.01):
        s = error_spectrum(rest, t, t + eps * d, k=3, steps=3)
        gaps.append(float((s.fisher / s.kl - 1).abs().max()))
    assert gaps[2] < gaps[0] and gaps[2] < 0.02, gaps


def test_channel_share_ranks_channels_by_sensitivity():
    e = torch.zeros(2, 4, 2, 2)
    e[:, 2] = 1.0  # all the energy in channel 2
    e[1, 0] = 1.0  # image 1: half in channel 0 too
    share = channel_share(e, torch.tensor([0.1, 0.2, 0.9, 0.3]))  # channel 2 most sensitive
    assert torch.allclose(share[0], torch.ones(4, dtype=torch.float64))
    assert torch.allclose(share[1], torch.tensor([0.5, 0.5, 0.5, 1.0], dtype=torch.float64))
    with pytest.raises(UserError, match="channels"):
        channel_share(e, torch.ones(3))


def test_top_k_share_with_an_orthonormal_basis_is_exact():
    basis = torch.eye(D, dtype=torch.float64)[:3].expand(N, 3, D)  # the first 3 coordinates
    e = torch.zeros(N, D, dtype=torch.float64)
    e[:, 0], e[:, 1], e[:, 5] = 1.0, 1.0, 2.0  # energy 1, 1, (outside) 4
    share = top_k_share(basis, e)
    assert torch.allclose(share[0], torch.tensor([1 / 6, 2 / 6, 2 / 6], dtype=torch.float64))


def test_mismatched_shapes_are_one_line():
    _, rest = linear_tail()
    with pytest.raises(UserError, match="differ"):
        error_spectrum(rest, torch.zeros(2, C, H, H), torch.zeros(2, C, H, 3))
