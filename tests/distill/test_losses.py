"""The logit and hint losses against values computed by hand (numpy, float64).

The reference formulas are written out here from their definitions, not from the library:
KD (Hinton et al. 2015) = KL(softmax(t/T) || softmax(s/T)) * T^2, batch mean;
DKD (Zhao et al. 2022): TCKD = KL of the binary (target, non-target) distributions,
NCKD = KL of the distributions over the non-target classes, each * T^2, batch mean.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from fcfd_viz import distill, models
from fcfd_viz.distill.base import kd_loss
from fcfd_viz.distill.dkd import DKDConfig, dkd_loss, dkd_terms

pytestmark = pytest.mark.usefixtures("one_thread")

IN = (3, 16, 16)


def softmax(z: np.ndarray) -> np.ndarray:
    e = np.exp(z - z.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


def kl_rows(p: np.ndarray, q: np.ndarray) -> np.ndarray:
    """KL(p || q) per row."""
    return (p * (np.log(p) - np.log(q))).sum(axis=1)


def np_kd(s: np.ndarray, t: np.ndarray, T: float) -> float:
    return float(kl_rows(softmax(t / T), softmax(s / T)).mean() * T * T)


def np_dkd(s: np.ndarray, t: np.ndarray, y: np.ndarray, T: float) -> tuple[float, float]:
    n, k = s.shape
    ps, pt = softmax(s / T), softmax(t / T)
    rows = np.arange(n)
    bs = np.stack([ps[rows, y], 1 - ps[rows, y]], axis=1)
    bt = np.stack([pt[rows, y], 1 - pt[rows, y]], axis=1)
    tckd = kl_rows(bt, bs).mean() * T * T
    nckd = []
    for i in range(n):
        keep = np.arange(k) != y[i]
        qs = softmax((s[i, keep] / T)[None])
        qt = softmax((t[i, keep] / T)[None])
        nckd.append(kl_rows(qt, qs)[0])
    return float(tckd), float(np.mean(nckd) * T * T)


@pytest.fixture
def logits():
    g = torch.Generator().manual_seed(0)
    s = 3 * torch.randn(5, 7, generator=g, dtype=torch.float64)
    t = 3 * torch.randn(5, 7, generator=g, dtype=torch.float64)
    y = torch.randint(0, 7, (5,), generator=g)
    return s, t, y


def test_kd_by_hand_two_classes():
    # s uniform, t = (3/4, 1/4) at T=1: KL = 3/4 ln(3/2) + 1/4 ln(1/2)
    s = torch.zeros(1, 2, dtype=torch.float64)
    t = torch.tensor([[math.log(3.0), 0.0]], dtype=torch.float64)
    expected = 0.75 * math.log(1.5) + 0.25 * math.log(0.5)
    assert kd_loss(s, t, 1.0).item() == pytest.approx(expected, rel=1e-12)
    # T=2 divides the logits by 2 and multiplies the KL by 4
    p = math.sqrt(3) / (math.sqrt(3) + 1)
    expected = 4 * (p * math.log(2 * p) + (1 - p) * math.log(2 * (1 - p)))
    assert kd_loss(s, t, 2.0).item() == pytest.approx(expected, rel=1e-12)


@pytest.mark.parametrize("T", [1.0, 4.0, 8.0])
def test_kd_matches_numpy(logits, T):
    s, t, _ = logits
    assert kd_loss(s, t, T).item() == pytest.approx(np_kd(s.numpy(), t.numpy(), T), rel=1e-10)
    assert kd_loss(t, t, T).item() == pytest.approx(0.0, abs=1e-12)
    # the direction matters: KL(teacher || student), not the reverse
    assert kd_loss(s, t, T).item() != pytest.approx(np_kd(t.numpy(), s.numpy(), T), rel=1e-3)


@pytest.mark.parametrize("T", [1.0, 4.0])
def test_dkd_terms_match_numpy(logits, T):
    s, t, y = logits
    tckd, nckd = dkd_terms(s, t, y, T)
    ref_t, ref_n = np_dkd(s.numpy(), t.numpy(), y.numpy(), T)
    assert tckd.item() == pytest.approx(ref_t, rel=1e-8)
    assert nckd.item() == pytest.approx(ref_n, rel=1e-8)
    assert tckd.item() > 0 and nckd.item() > 0


def test_dkd_by_hand_three_classes():
    # T=1, target 0; s = (0, 0, 0): p_s = (1/3, 1/3, 1/3); t = (ln 2, ln 1, ln 1): p_t = (1/2, 1/4, 1/4)
    s = torch.zeros(1, 3, dtype=torch.float64)
    t = torch.tensor([[math.log(2.0), 0.0, 0.0]], dtype=torch.float64)
    tckd, nckd = dkd_terms(s, t, torch.tensor([0]), 1.0)
    # binary: teacher (1/2, 1/2) vs student (1/3, 2/3)
    assert tckd.item() == pytest.approx(0.5 * math.log(1.5) + 0.5 * math.log(0.75), rel=1e-10)
    # the non-target classes are uniform for both
    assert nckd.item() == pytest.approx(0.0, abs=1e-12)


def test_dkd_loss_weights_and_warmup(logits):
    s, t, y = logits
    tckd, nckd = dkd_terms(s, t, y, 4.0)
    cfg = DKDConfig(temperature=4.0, alpha=2.0, beta=5.0, warmup_epochs=4)
    for epoch, ramp in [(0, 0.25), (2, 0.75), (3, 1.0), (10, 1.0)]:
        out = dkd_loss(s, t, y, cfg, epoch)
        assert set(out) == {"dkd/tckd", "dkd/nckd"}
        assert out["dkd/tckd"].item() == pytest.approx(ramp * 2.0 * tckd.item(), rel=1e-12)
        assert out["dkd/nckd"].item() == pytest.approx(ramp * 5.0 * nckd.item(), rel=1e-12)


def _nets(seed: int = 0):
    torch.manual_seed(seed)
    teacher = models.create("resnet8", num_classes=10).double()
    student = models.create("resnet8", num_classes=10).double()
    g = torch.Generator().manual_seed(seed + 1)
    x = torch.randn(6, *IN, generator=g, dtype=torch.float64)
    y = torch.randint(0, 10, (6,), generator=g)
    return student, teacher, x, y


def np_ce(logits: np.ndarray, y: np.ndarray) -> float:
    return float(-np.log(softmax(logits)[np.arange(len(y)), y]).mean())


def test_kd_and_dkd_distillers_use_the_losses():
    student, teacher, x, y = _nets()
    d = distill.create(
        "kd", student, teacher, input_shape=IN, temperature=2.0, kd_weight=0.5, ce_weight=0.3
    )
    d.eval()
    with torch.no_grad():
        logits, losses = d.forward_train(x, y)
        s, t = student(x).numpy(), teacher(x).numpy()
    assert set(losses) == {"ce", "kd"}
    assert losses["kd"].item() == pytest.approx(0.5 * np_kd(s, t, 2.0), rel=1e-9)
    assert losses["ce"].item() == pytest.approx(0.3 * np_ce(s, y.numpy()), rel=1e-9)

    d = distill.create(
        "dkd", student, teacher, input_shape=IN, alpha=1.0, beta=8.0, warmup_epochs=2
    )
    d.start_epoch(0, 5)  # half-way through the warm-up
    d.eval()
    with torch.no_grad():
        _, losses = d.forward_train(x, y)
    ref_t, ref_n = np_dkd(s, t, y.numpy(), 4.0)
    assert set(losses) == {"ce", "dkd/tckd", "dkd/nckd"}
    assert losses["dkd/tckd"].item() == pytest.approx(0.5 * 1.0 * ref_t, rel=1e-8)
    assert losses["dkd/nckd"].item() == pytest.approx(0.5 * 8.0 * ref_n, rel=1e-8)


def test_fitnet_hint_by_hand():
    student, teacher, x, y = _nets(1)
    d = distill.create("fitnet", student, teacher, input_shape=IN, hint_weight=2.0).double()
    assert d.hint_stage == 2  # the middle of 4 stages
    conv, bn, act = d.s2t["2"]
    assert isinstance(act, nn.LeakyReLU)  # resnet stages take post-ReLU inputs
    with torch.no_grad():  # non-trivial connector statistics
        bn.running_mean.uniform_(-0.5, 0.5)
        bn.running_var.uniform_(0.5, 2.0)
        bn.weight.uniform_(0.5, 1.5)
        bn.bias.uniform_(-0.5, 0.5)
    d.eval()
    with torch.no_grad():
        logits, losses = d.forward_train(x, y)
        s2 = student.forward_features(x)[2]
        t2 = teacher.forward_features(x)[2]
        z = F.conv2d(s2, conv.weight, stride=1, padding=1).numpy()  # 3x3, same size
    rm, rv = bn.running_mean.numpy(), bn.running_var.numpy()
    w, b = bn.weight.detach().numpy(), bn.bias.detach().numpy()
    z = (z - rm[None, :, None, None]) / np.sqrt(rv[None, :, None, None] + bn.eps)
    z = z * w[None, :, None, None] + b[None, :, None, None]
    z = np.where(z > 0, z, 0.1 * z)
    hint = float(((z - t2.numpy()) ** 2).mean())
    assert set(losses) == {"ce", "hint/stage2"}
    assert losses["hint/stage2"].item() == pytest.approx(2.0 * hint, rel=1e-9)
    assert losses["ce"].item() == pytest.approx(np_ce(logits.numpy(), y.numpy()), rel=1e-9)


def test_ce_ignores_a_teacher():
    student, teacher, x, y = _nets(2)
    calls = []
    teacher.register_forward_hook(lambda *_: calls.append(1))
    for stage in teacher.stages:
        stage.register_forward_hook(lambda *_: calls.append(1))
    with_t = distill.create("ce", student, teacher, input_shape=IN)
    without = distill.create("ce", student, None, input_shape=IN)
    with_t.eval(), without.eval()
    with torch.no_grad():
        a_logits, a = with_t.forward_train(x, y)
        b_logits, b = without.forward_train(x, y)
    assert calls == []
    assert set(a) == set(b) == {"ce"}
    assert torch.equal(a_logits, b_logits) and torch.equal(a["ce"], b["ce"])
    assert a["ce"].item() == pytest.approx(np_ce(a_logits.numpy(), y.numpy()), rel=1e-9)
    assert {id(p) for p in with_t.trainable_parameters()} == {id(p) for p in student.parameters()}
