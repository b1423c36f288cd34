"""The closed-form connector fit end to end (``FitConfig(method="lstsq")``, the default):
an identical student's connectors come out as the identity, the LeakyReLU refinement never
makes a bridge worse, the record round-trips, and bad settings are refused."""

from __future__ import annotations

import copy
import json

import pytest
import torch
from torch.utils.data import DataLoader, TensorDataset

from fcfd_viz import models
from fcfd_viz.analysis import FitConfig, FitInfo
from fcfd_viz.analysis.gap.connectors import fit_connectors
from fcfd_viz.errors import UserError

SHAPE = (3, 16, 16)
pytestmark = pytest.mark.usefixtures("one_thread_module")


@pytest.fixture(scope="module")
def teacher(bn_resnet8):
    """A resnet8 with BN running statistics estimated on data (so eval != batch BN)."""
    return bn_resnet8


@pytest.fixture(scope="module")
def loader():
    g = torch.Generator().manual_seed(1)
    x = torch.randn(48, *SHAPE, generator=g) * 1.5 + 0.3
    return DataLoader(TensorDataset(x, torch.zeros(48, dtype=torch.long)), batch_size=16)


def test_identical_student_gets_identity_connectors_in_one_solve(teacher, loader):
    student = copy.deepcopy(teacher)  # each stage feature maps onto itself: MSE 0 is reachable
    cfg = FitConfig(refine_steps=0)  # the solve alone
    s2t, t2s, info = fit_connectors(teacher, student, loader, SHAPE, cfg)
    assert set(info.bridges) == {"s2t/1", "s2t/2", "s2t/3", "t2s/1", "t2s/2"}
    assert info.converged and info.epochs == 1 and info.config.method == "lstsq"
    x = loader.dataset.tensors[0]
    with torch.no_grad():
        feats = teacher.forward_features(x)
        for k, b in s2t.items():
            f = feats[int(k)]
            scale = float(f.pow(2).mean())
            assert not b.training and float((b(f) - f).pow(2).mean()) < 1e-6 * scale
            assert info.bridges[f"s2t/{k}"].final_loss < 1e-6 * scale
            w = b[0].weight  # (C, C, 3, 3): the centre tap is the identity, the rest ~0
            centre = torch.eye(len(w))
            assert torch.allclose(w[:, :, 1, 1], centre, atol=1e-2)
    assert all(not p.requires_grad for p in [*s2t.parameters(), *t2s.parameters()])


def test_refinement_lowers_the_leaky_bridges_mse_and_keeps_the_best(teacher, loader):
    student = models.create("resnet8_w025", num_classes=10).eval()  # a real gap to bridge
    cfg = FitConfig(refine_steps=4, refine_epochs=2, min_epochs=1)
    s2t, t2s, info = fit_connectors(teacher, student, loader, SHAPE, cfg)
    x = loader.dataset.tensors[0]
    with torch.no_grad():
        t_feats, s_feats = teacher.forward_features(x), student.forward_features(x)
    for name, b in info.bridges.items():
        # the solution, <= 4 refinement steps' iterates + the last one, 2 Adam epochs
        assert 3 + 2 <= len(b.curve) <= 1 + 4 + 2
        assert b.kept_mse is not None and b.final_loss == b.kept_mse
        assert b.kept_mse < b.curve[0]  # the LeakyReLU bridges gained on the linear start
        kind, k = name.split("/")
        bridge = (s2t if kind == "s2t" else t2s)[k]
        src, dst = (s_feats, t_feats) if kind == "s2t" else (t_feats, s_feats)
        with torch.no_grad():  # the record is the kept bridge's eval-mode MSE
            mse = float((bridge(src[int(k)]) - dst[int(k)]).double().pow(2).mean())
        assert mse == pytest.approx(b.kept_mse, rel=1e-4)


def test_recovers_a_known_leaky_bridge():
    """Targets made by a LeakyReLU bridge: the refinement goes far below the linear start."""
    from fcfd_viz.analysis.gap.closed_form import fit_closed_form
    from fcfd_viz.analysis.gap.connectors import _fit_adam
    from fcfd_viz.analysis.gap.feature_pairs import FeaturePairs
    from fcfd_viz.distill.bridges import Bridge

    torch.manual_seed(5)
    true = Bridge((4, 6, 6), (5, 6, 6), leaky=True).eval()
    with torch.no_grad():
        true[1].bias.normal_()
        x = torch.randn(64, 4, 6, 6)
        y = true(x)
    cfg = FitConfig(refine_steps=30, batch_size=16)
    feats = FeaturePairs(lambda b: ([b[1]], [b[0]]), DataLoader(TensorDataset(x, y), 16), 1, cfg)
    fitted = Bridge((4, 6, 6), (5, 6, 6), leaky=True)
    info = fit_closed_form([("s2t/0", fitted, False, 0)], feats, cfg, _fit_adam)
    b = info.bridges["s2t/0"]
    assert b.kept_mse < 0.1 * b.curve[0]

    back = FitInfo.from_dict(json.loads(json.dumps(info.to_dict())))
    assert back == info
    old = info.to_dict()  # a record written before the closed form: no method, no kept_mse
    old["config"].pop("method")
    for b in old["bridges"].values():
        b.pop("kept_mse")
    assert FitInfo.from_dict(old).config.method == "adam"


@pytest.mark.parametrize(
    "change, match",
    [
        ({"method": "sgd"}, "fit method"),
        ({"ridge": -1.0}, "ridge"),
        ({"refine_epochs": -1}, "refine"),
    ],
)
def test_bad_fit_settings_are_refused(change, match):
    with pytest.raises(UserError, match=match):
        FitConfig(**change).validate()


@pytest.mark.parametrize(
    "src, dst", [((3, 6, 6), (5, 6, 6)), ((3, 6, 6), (5, 3, 3)), ((3, 3, 3), (5, 6, 6))]
)
def test_refinement_pass_by_hand_equals_autograd(src, dst):
    from fcfd_viz.analysis.gap.closed_form import _refine_batch
    from fcfd_viz.distill.bridges import Bridge

    torch.manual_seed(4)
    bridge = Bridge(src, dst, leaky=True)
    x, y = torch.randn(6, *src).relu(), torch.randn(6, *dst).relu()
    bias = torch.randn(dst[0]) * 0.1
    j = {"task": ("b", bridge, False, 0), "slope": 0.1, "bias": bias, "sse": 0.0, "count": 0}
    j.update(gw=None, gb=0.0)
    _refine_batch(j, x, y)
    w = bridge[0].weight.detach().clone().requires_grad_(True)
    b = bias.clone().requires_grad_(True)
    conv = copy.deepcopy(bridge[0])
    z = torch.func.functional_call(conv, {"weight": w}, (x,)) + b[:, None, None]
    sse = (torch.nn.functional.leaky_relu(z, 0.1) - y).pow(2).sum()
    (0.5 * sse).backward()
    assert j["sse"] == pytest.approx(float(sse.detach()), rel=1e-5) and j["count"] == y.numel()
    torch.testing.assert_close(j["gw"], w.grad, rtol=1e-4, atol=1e-5)
    torch.testing.assert_close(j["gb"], b.grad, rtol=1e-4, atol=1e-5)
