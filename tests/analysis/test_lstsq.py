"""The closed-form bridge fit: im2col of every bridge conv, recovery of a known linear map,
agreement with a dense least-squares solve, a dead channel, and the BN fold (the eval-mode
bridge computes the solution exactly; on batch statistics of the fit data, too)."""

from __future__ import annotations

import pytest
import torch

from fcfd_viz.analysis.gap.lstsq import (
    NormalEquations,
    design,
    load_affine,
    target_rows,
    weight_matrix,
)
from fcfd_viz.distill.bridges import Bridge

pytestmark = pytest.mark.usefixtures("one_thread_module")

# (source shape, target shape): 3x3 stride 1, 3x3 stride 2, 4x4 stride-2 transposed conv
KINDS = [((3, 6, 6), (5, 6, 6)), ((3, 6, 6), (5, 3, 3)), ((3, 3, 3), (5, 6, 6))]


def _solve(bridge, x, y, ridge, chunk_rows=50):
    eq = NormalEquations(chunk_rows)
    for i in range(0, len(x), 7):  # several batches, each in several chunks
        eq.add(design(bridge[0], x[i : i + 7]), target_rows(y[i : i + 7]))
    return eq.solve(ridge)


@pytest.mark.parametrize("src, dst", KINDS)
def test_design_times_weight_is_the_conv(src, dst):
    torch.manual_seed(0)
    conv = Bridge(src, dst, leaky=False)[0]
    x = torch.randn(4, *src)
    got = design(conv, x) @ weight_matrix(conv)  # (N * L, C_dst)
    torch.testing.assert_close(got, target_rows(conv(x)), atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("src, dst", KINDS)
def test_recovers_a_known_linear_map_from_noisy_features(src, dst):
    torch.manual_seed(1)
    true = Bridge(src, dst, leaky=False)[0]
    bias = torch.randn(dst[0])
    x = torch.randn(60, *src) * 2 + 1  # not centred: the intercept must come out right
    with torch.no_grad():
        y = true(x) + bias[:, None, None] + 0.01 * torch.randn(60, *dst)
    sol = _solve(Bridge(src, dst, leaky=False), x, y, ridge=1e-8)
    torch.testing.assert_close(sol.w.float(), weight_matrix(true).detach(), atol=3e-3, rtol=0)
    torch.testing.assert_close(sol.b.float(), bias, atol=3e-3, rtol=0)
    assert sol.mse == pytest.approx(1e-4, rel=0.2)  # what is left is the noise


def test_matches_dense_lstsq():
    torch.manual_seed(2)
    src, dst = (2, 4, 4), (3, 4, 4)
    bridge = Bridge(src, dst, leaky=False)
    x, y = torch.randn(10, *src), torch.randn(10, *dst)  # no exact map: a real residual
    sol = _solve(bridge, x, y, ridge=0.0)
    a = design(bridge[0], x).double()
    a = torch.cat([a, torch.ones(len(a), 1, dtype=a.dtype)], 1)  # (R, D + 1): the bias column
    dense = torch.linalg.lstsq(a, target_rows(y).double()).solution
    torch.testing.assert_close(sol.w, dense[:-1], atol=1e-4, rtol=0)
    torch.testing.assert_close(sol.b, dense[-1], atol=1e-4, rtol=0)
    residual = (a @ dense - target_rows(y).double()).pow(2).mean()
    assert sol.mse == pytest.approx(float(residual), rel=1e-4)


def test_dead_channel_gets_zero_weight_and_the_rest_is_fitted():
    torch.manual_seed(3)
    src, dst = (3, 5, 5), (4, 5, 5)
    true = Bridge(src, dst, leaky=False)[0]
    x = torch.randn(40, *src)
    x[:, 1] = 0  # a dead channel: Cov(X) is singular
    with torch.no_grad():
        y = true(x)
    sol = _solve(Bridge(src, dst, leaky=False), x, y, ridge=1e-5)
    assert torch.isfinite(sol.w).all() and torch.isfinite(sol.b).all()
    w = sol.w.view(3, 9, 4)  # (C_src, taps, C_dst)
    assert w[1].abs().max() < 1e-9
    want = weight_matrix(true).detach().view(3, 9, 4)
    torch.testing.assert_close(w[[0, 2]].float(), want[[0, 2]], atol=2e-3, rtol=0)
    assert sol.mse < 1e-4
    # all-zero features: nothing to regress on, the map is the targets' mean
    zero = _solve(Bridge(src, dst, leaky=False), torch.zeros_like(x), y, ridge=1e-5)
    assert zero.w.abs().max() == 0
    torch.testing.assert_close(zero.b.float(), target_rows(y).mean(0), atol=1e-5, rtol=0)


@pytest.mark.parametrize("src, dst", KINDS)
@pytest.mark.parametrize("leaky", [False, True])
def test_fitted_bridge_computes_the_solution(src, dst, leaky):
    torch.manual_seed(4)
    x, y = torch.randn(30, *src) + 0.5, torch.randn(30, *dst)
    bridge = Bridge(src, dst, leaky=leaky)
    sol = _solve(bridge, x, y, ridge=1e-5)
    load_affine(bridge, sol)
    want = (design(bridge[0], x).double() @ sol.w + sol.b).float()  # (N * L, C_dst)
    if leaky:
        want = torch.nn.functional.leaky_relu(want, 0.1)
    with torch.no_grad():
        got = target_rows(bridge.eval()(x))
        torch.testing.assert_close(got, want, atol=1e-4, rtol=1e-4)
        # on batch statistics of the very rows it was solved on, BN is the same map
        batch = target_rows(bridge.train()(x))
        torch.testing.assert_close(batch, want, atol=1e-3, rtol=1e-3)
        mse = (target_rows(bridge.eval()(x)) - target_rows(y)).double().pow(2).mean()
    if not leaky:
        assert sol.mse == pytest.approx(float(mse), rel=1e-3)
