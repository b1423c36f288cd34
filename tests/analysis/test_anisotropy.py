"""Perturbation-anisotropy probe: exactness on linear cuts, Fisher limit, invariances, errors."""

from __future__ import annotations

import json
import math

import pytest
import torch
from torch import nn

from fcfd_viz import models
from fcfd_viz.analysis import Anisotropy, AnisotropyResult
from fcfd_viz.analysis.probe.anisotropy import pass_plan
from fcfd_viz.analysis.probe.jacobian import jacobian_svd
from fcfd_viz.errors import UserError
from fcfd_viz.models.base import Head, StagedNet

# tiny tensors: one thread avoids OpenMP spin-waits when the CPU is shared
pytestmark = pytest.mark.usefixtures("one_thread_module")


def linear_net(s, channels=6, hw=2, seed=0):
    """stem = identity, stage 1 = 1x1 conv ``diag(s) V^T``, head = fc ``U`` (no ReLU).

    The logits are ``U diag(s) V^T mean_hw(f) + b``: the Jacobian with respect to the whole
    (C, hw, hw) feature has singular values ``s / hw`` and a channel direction (value
    ``1/hw`` on one channel) moves the logits by ``U diag(s) V^T e_c / hw``.
    """
    g = torch.Generator().manual_seed(seed)
    s = torch.as_tensor(s, dtype=torch.float32)
    k = len(s)
    u = torch.linalg.qr(torch.randn(k, k, generator=g))[0]
    v = torch.linalg.qr(torch.randn(channels, k, generator=g))[0]
    conv = nn.Conv2d(channels, k, 1)
    head = Head(k, k, relu=False)
    with torch.no_grad():
        conv.weight.copy_((torch.diag(s) @ v.T).view(k, channels, 1, 1))
        conv.bias.normal_(generator=g)
        head.fc.weight.copy_(u)
        head.fc.bias.normal_(generator=g)
    net = StagedNet([nn.Identity(), conv], head, arch="toy", num_classes=k).eval()
    jac = u @ torch.diag(s) @ v.T / (hw * hw)  # d logits / d (per-position) feature, (K, C)
    return net, jac.double(), hw


def smooth_net(seed=0):
    torch.manual_seed(seed)
    stages = [
        nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.Tanh()),
        nn.Sequential(nn.Conv2d(8, 8, 3, padding=1), nn.Softplus()),
        nn.Sequential(nn.Conv2d(8, 12, 3, padding=1, stride=2), nn.Tanh()),
    ]
    return StagedNet(stages, Head(12, 5, relu=False), arch="toy", num_classes=5).eval()


S = [5.0, 3.0, 1.5, 0.5]


def test_linear_rest_recovers_singular_values_and_channel_sensitivities():
    net, jac, hw = linear_net(S)
    x = torch.randn(5, 6, hw, hw, generator=torch.Generator().manual_seed(1))
    eps = 0.1
    res = Anisotropy(net, 0).compute(
        x, eps=eps, relative=False, divergence="l2", n_random=8, k_jacobian=2
    )
    sv = torch.tensor(S, dtype=torch.float64) / hw
    torch.testing.assert_close(res.top_singular_values, sv[:2], rtol=1e-4, atol=1e-6)
    torch.testing.assert_close(res.bottom_singular_values, sv.flip(0)[:2], rtol=1e-4, atol=1e-6)
    # channel c: d = 1/hw on channel c -> logit change eps * jac[:, c] * hw*hw / hw
    expect = eps * (jac * hw).norm(dim=0)
    torch.testing.assert_close(res.channel_sensitivity, expect, rtol=1e-4, atol=1e-7)
    torch.testing.assert_close(res.jacobian_top_sensitivity, eps * sv[:2], rtol=1e-4, atol=1e-7)
    assert res.anisotropy_ratio == pytest.approx(float(expect.max() / expect.min()), rel=1e-4)
    assert res.jacobian_rank == 4 and res.jacobian_steps == 4


def test_linear_rest_relative_eps_and_fisher_equals_exact():
    net, jac, hw = linear_net(S)
    x = torch.randn(4, 6, hw, hw, generator=torch.Generator().manual_seed(2))
    probe = Anisotropy(net, 0)
    kw = dict(eps=0.05, divergence="l2", n_random=6, k_jacobian=1, seed=3)
    exact = probe.compute(x, mode="exact", **kw)
    fisher = probe.compute(x, mode="fisher", **kw)
    norms = x.reshape(4, -1).norm(dim=1).double()
    expect = 0.05 * norms.mean() * (jac * hw).norm(dim=0)
    torch.testing.assert_close(exact.channel_sensitivity, expect, rtol=1e-4, atol=1e-7)
    torch.testing.assert_close(fisher.channel_sensitivity, expect, rtol=1e-4, atol=1e-7)
    torch.testing.assert_close(
        fisher.random_sensitivity, exact.random_sensitivity, rtol=1e-4, atol=1e-7
    )
    torch.testing.assert_close(exact.eps_abs, 0.05 * norms.float())


def test_lanczos_matches_dense_svd_and_few_steps_get_the_top():
    # K = 10 outputs, D = 8 * 3 * 3 = 72 inputs; the test forms the dense Jacobian itself
    torch.manual_seed(0)
    rest = nn.Sequential(nn.Flatten(), nn.Linear(72, 10))
    f = torch.randn(3, 8, 3, 3)
    dense = rest[1].weight.detach().double()
    ref = torch.linalg.svdvals(dense)
    full = jacobian_svd(rest, f, "l2", k=3)
    assert full.steps == 10 and full.rank == 10
    torch.testing.assert_close(full.top_values[0].double(), ref[:3], rtol=1e-4, atol=1e-6)
    torch.testing.assert_close(
        full.bottom_values[1].double(), ref.flip(0)[:3], rtol=1e-4, atol=1e-6
    )
    # the singular vectors really are: ||J v|| = sigma, unit norm
    v = full.top_vectors[2].reshape(3, -1).double()
    torch.testing.assert_close(
        v.norm(dim=1), torch.ones(3, dtype=torch.float64), rtol=1e-5, atol=1e-5
    )
    torch.testing.assert_close((v @ dense.T).norm(dim=1), ref[:3], rtol=1e-4, atol=1e-6)
    few = jacobian_svd(rest, f, "l2", k=1, steps=6)
    assert few.steps == 6
    assert float(few.top_values[0, 0]) == pytest.approx(float(ref[0]), rel=2e-2)


def test_fisher_matches_exact_kl_in_the_small_eps_limit():
    net = smooth_net()
    x = torch.randn(6, 3, 8, 8, generator=torch.Generator().manual_seed(0))
    probe = Anisotropy(net, 0)
    errors = []
    for eps in (0.2, 0.02, 0.002):
        kw = dict(eps=eps, n_random=12, k_jacobian=2, seed=1)
        ex, fi = probe.compute(x, mode="exact", **kw), probe.compute(x, mode="fisher", **kw)
        err = max(
            float((ex.channel_sensitivity / fi.channel_sensitivity - 1).abs().max()),
            float((ex.random_sensitivity / fi.random_sensitivity - 1).abs().max()),
            float((ex.jacobian_top_sensitivity / fi.jacobian_top_sensitivity - 1).abs().max()),
        )
        errors.append(err)
    assert errors[2] < 0.01 and errors[1] < 0.05
    assert errors[0] > max(1e-3, 3 * errors[2])  # at large eps the approximation visibly differs


def test_kl_jacobian_values_are_fisher_eigenvalues():
    net = smooth_net(1)
    x = torch.randn(2, 3, 8, 8, generator=torch.Generator().manual_seed(4))
    probe = Anisotropy(net, 1)
    res = probe.compute(x, eps=1e-3, directions="jacobian", k_jacobian=2)
    f = probe.features(x)
    jac = (
        torch.autograd.functional.jacobian(lambda t: probe.rest(t[None])[0], f[0])
        .reshape(5, -1)
        .double()
    )
    p = torch.softmax(probe.rest(f[:1]).double(), 1)[0]
    fisher = jac.T @ (torch.diag(p) - torch.outer(p, p)) @ jac
    eig = torch.linalg.eigvalsh(fisher).flip(0)
    assert res.jacobian_rank == 4  # K - 1: a constant logit shift does not change softmax
    torch.testing.assert_close(
        res.jacobian_top_values[0].double() ** 2, eig[:2], rtol=1e-3, atol=1e-9
    )
    torch.testing.assert_close(
        res.jacobian_bottom_values[0].double() ** 2, eig[:4].flip(0)[:2], rtol=1e-3, atol=1e-9
    )


def test_chunk_size_does_not_change_results():
    net = models.create("resnet8", num_classes=10).eval()
    x = torch.randn(3, 3, 16, 16, generator=torch.Generator().manual_seed(0))
    probe = Anisotropy(net, 2)
    kw = dict(eps=0.05, n_random=5, k_jacobian=2)
    a = probe.compute(x, chunk_size=1, **kw)
    b = probe.compute(x, chunk_size=10_000, **kw)
    for name in ("channel_per_image", "random_per_image", "jacobian_top_per_image"):
        torch.testing.assert_close(getattr(a, name), getattr(b, name), rtol=2e-3, atol=1e-9)
    fa = probe.compute(x, mode="fisher", chunk_size=3, **kw)
    fb = probe.compute(x, mode="fisher", chunk_size=10_000, **kw)
    torch.testing.assert_close(fa.channel_per_image, fb.channel_per_image, rtol=1e-4, atol=1e-12)


@pytest.mark.parametrize("counts, slots", [([128, 64, 5], 16), ([15, 15], 16), ([7], 2), ([1], 9)])
def test_pass_plan_covers_every_direction_once_with_matching_clean_logits(counts, slots):
    known: set[int] = set()
    plans = pass_plan(counts, slots)
    for count, plan in zip(counts, plans):
        assert sum(m for m, _ in plan) == count
        for m, ride in plan:
            size = m + ride  # blocks of N maps in this forward pass
            assert 1 <= m and size <= slots
            if ride:
                known.add(size)
            else:  # its clean logits came from an earlier pass of exactly this size
                assert size in known
        # the clean maps ride along at most in a job's first and last pass
        assert not any(ride for _, ride in plan[1:-1])


@pytest.mark.parametrize("eval_mode", [True, False])
def test_weights_buffers_and_modes_unchanged(eval_mode):
    net = models.create("resnet8", num_classes=10)
    net.train()
    net.stages[1].eval()  # a mixed state must come back exactly
    before = {k: v.clone() for k, v in net.state_dict().items()}
    modes = {n: m.training for n, m in net.named_modules()}
    x = torch.randn(4, 3, 16, 16)
    for mode in ("exact", "fisher"):
        Anisotropy(net, 1, eval_mode=eval_mode).compute(x, mode=mode, n_random=3, k_jacobian=1)
    after = net.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before)
    assert modes == {n: m.training for n, m in net.named_modules()}
    assert all(p.grad is None for p in net.parameters())


def test_last_stage_cut_is_head_only():
    net = models.create("resnet8", num_classes=10).eval()
    x = torch.randn(2, 3, 16, 16)
    res = Anisotropy(net, net.num_stages - 1).compute(x, n_random=4, k_jacobian=3)
    assert res.feature_shape == (64, 4, 4)
    assert res.channel_sensitivity.shape == (64,) and res.jacobian_rank == 9
    assert torch.all(res.channel_sensitivity >= 0)


@pytest.mark.parametrize("stage", [-1, 4, 1.0, "1", True])
def test_bad_stage_is_a_user_error(stage):
    net = models.create("resnet8", num_classes=10)
    with pytest.raises(UserError, match="stage"):
        Anisotropy(net, stage)


@pytest.mark.parametrize(
    "kwargs, match",
    [
        (dict(eps=0), "eps"),
        (dict(eps=-0.1), "eps"),
        (dict(eps=math.nan), "eps"),
        (dict(mode="taylor"), "mode"),
        (dict(divergence="js"), "divergence"),
        (dict(directions="channel,spiral"), "spiral"),
        (dict(n_random=0), "n_random"),
    ],
)
def test_bad_options_are_user_errors(kwargs, match):
    net, _, hw = linear_net(S)
    with pytest.raises(UserError, match=match):
        Anisotropy(net, 0).compute(torch.randn(2, 6, hw, hw), **kwargs)


def test_result_summaries_and_json():
    net = models.create("resnet8", num_classes=10).eval()
    x = torch.randn(3, 3, 16, 16)
    res = Anisotropy(net, 1).compute(x, n_random=20, k_jacobian=2, mode="fisher", seed=5)
    assert isinstance(res, AnisotropyResult) and res.num_images == 3
    s = res.channel_sensitivity
    assert res.anisotropy_ratio == pytest.approx(float(s.max() / s.min()))
    assert res.p95_p5_ratio == pytest.approx(
        float(torch.quantile(s, 0.95) / torch.quantile(s, 0.05))
    )
    assert 1 <= res.p95_p5_ratio <= res.anisotropy_ratio
    d = json.loads(json.dumps(res.to_dict(per_image=True), allow_nan=False))
    for key in (
        "stage",
        "eps",
        "mode",
        "channel_sensitivity",
        "anisotropy_ratio",
        "p95_p5_ratio",
        "random_p5",
        "random_p95",
        "jacobian",
    ):
        assert key in d
    assert len(d["channel_sensitivity"]) == 16 and len(d["random_sensitivity"]) == 20
    assert d["random_p5"] <= d["random_median"] <= d["random_p95"]
    assert len(d["per_image"]["channel_per_image"]) == 3
    assert len(d["jacobian"]["top_singular_values"]) == 2
    again = Anisotropy(net, 1).compute(x, n_random=20, directions="random", mode="fisher", seed=5)
    other = Anisotropy(net, 1).compute(x, n_random=20, directions="random", mode="fisher", seed=6)
    torch.testing.assert_close(again.random_sensitivity, res.random_sensitivity)
    assert not torch.allclose(other.random_sensitivity, res.random_sensitivity)
    assert again.channel_sensitivity is None and again.to_dict()["anisotropy_ratio"] is None


def test_result_round_trip():
    net = models.create("resnet8", num_classes=10).eval()
    x = torch.randn(3, 3, 16, 16, generator=torch.Generator().manual_seed(1))
    res = Anisotropy(net, 2).compute(x, n_random=5, k_jacobian=2, mode="exact")
    d = json.loads(json.dumps(res.to_dict(), allow_nan=False))
    again = AnisotropyResult.from_dict(d)
    assert again.to_dict() == res.to_dict()  # summaries recomputed from the rebuilt tensors
    assert (again.stage, again.mode, again.feature_shape) == (2, "exact", res.feature_shape)
    assert again.jacobian_rank == res.jacobian_rank and again.num_images == 3
    for name in ("feature_norm", "eps_abs", "channel_per_image", "jacobian_bottom_values"):
        t = getattr(again, name)
        assert torch.is_tensor(t) and t.shape == getattr(res, name).shape, name
        torch.testing.assert_close(t, getattr(res, name).double(), rtol=0, atol=0)
    assert set(again.families) == {"channel", "random", "jacobian top", "jacobian bottom"}
    summary = res.to_dict(per_image=False)
    assert "per_image" not in summary and summary["anisotropy_ratio"] == d["anisotropy_ratio"]
    with pytest.raises(UserError, match="summary"):
        AnisotropyResult.from_dict(summary)


def test_zero_sensitivity_channel_gives_infinite_ratio_and_null_json():
    net, _, hw = linear_net(S, channels=6)
    with torch.no_grad():
        net.stages[1].weight[:, 0] = 0  # channel 0 is ignored by the rest
    res = Anisotropy(net, 0).compute(
        torch.randn(2, 6, hw, hw), directions="channel", divergence="l2"
    )
    assert float(res.channel_sensitivity[0]) == 0 and math.isinf(res.anisotropy_ratio)
    assert json.loads(json.dumps(res.to_dict(), allow_nan=False))["anisotropy_ratio"] is None


def test_progress_bar(capsys):
    net, _, hw = linear_net(S)
    Anisotropy(net, 0).compute(torch.randn(2, 6, hw, hw), progress=True, n_random=3, chunk_size=2)
    assert "probe stage 0" in capsys.readouterr().err


def test_dead_cut_gives_zero_spectrum():
    net, _, hw = linear_net(S)
    with torch.no_grad():
        net.stages[1].weight.zero_()  # the logits no longer depend on the feature
    res = Anisotropy(net, 0).compute(torch.randn(2, 6, hw, hw), directions="jacobian", k_jacobian=2)
    assert (
        res.jacobian_top_values.shape == (2, 1) and float(res.jacobian_top_values.abs().max()) == 0
    )
    assert float(res.jacobian_top_sensitivity.max()) == 0
