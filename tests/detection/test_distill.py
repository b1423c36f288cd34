"""Detection distillers: every loss term by hand at the same proposals; where gradients go."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from fcfd_viz.detection import data, methods, models
from fcfd_viz.detection.base import run_head
from fcfd_viz.errors import UserError

pytestmark = pytest.mark.usefixtures("one_thread")
LEVELS = ["p2", "p3", "p4", "p5", "p6"]


def tiny_pair():
    torch.manual_seed(0)
    teacher = models.create("det_resnet10", 11, fpn_channels=8)
    student = models.create("det_mobilenetv2", 11, fpn_channels=16)
    return teacher, student


def batch():
    ds = data.DigitBoxes(False, n=2)
    return data.collate([ds[0], ds[1]])


def kl(s, t, T):  # KL(softmax(t/T) || softmax(s/T)) * T^2, mean over ROIs
    pt = torch.softmax(t / T, 1)
    return (pt * (pt.log() - torch.log_softmax(s / T, 1))).sum(1).mean() * T * T


def test_fcfd_terms_by_hand():
    teacher, student = tiny_pair()
    d = methods.create("fcfd", student, teacher, temperature=2.0, roi_l2_weight=0.5)
    d.train()
    images, targets = batch()
    torch.manual_seed(1)
    _, losses = d.forward_train(images, targets)
    expected = {"rpn_cls", "rpn_box", "roi_cls", "roi_box"}
    expected |= {f"app/{p}" for p in LEVELS}
    expected |= {f"roi_{k}/{x}" for k in ("kd", "l2") for x in ("s", "st", "ts")}
    assert set(losses) == expected  # each term exactly once

    torch.manual_seed(1)  # the same proposal sampling
    with torch.no_grad():
        il, tg = student.transform(images, targets)
        sf = student.backbone(il.tensors)
        props, rpn = student.rpn(il, sf, tg)
        props, _, labels, reg = student.roi_heads.select_training_samples(props, tg)
        tf = teacher.backbone(il.tensors)
        t_log, t_del = run_head(teacher, tf, props, il.image_sizes)
        st = {k: d.s2t[k](v) for k, v in sf.items()}
        ts = {k: d.t2s[k](v) for k, v in tf.items()}
        assert all(st[k].shape == tf[k].shape and ts[k].shape == sf[k].shape for k in sf)
        heads = {
            "s": run_head(student, sf, props, il.image_sizes),
            "st": run_head(teacher, st, props, il.image_sizes),
            "ts": run_head(student, ts, props, il.image_sizes),
        }
    assert torch.allclose(losses["rpn_cls"], rpn["loss_objectness"])
    assert torch.allclose(losses["roi_cls"], F.cross_entropy(heads["s"][0], torch.cat(labels)))
    for k, p in zip(sf, LEVELS):
        assert torch.allclose(losses[f"app/{p}"], ((st[k] - tf[k]) ** 2).mean(), atol=1e-6)
    for x, (lg, dl) in heads.items():
        assert torch.allclose(losses[f"roi_kd/{x}"], kl(lg, t_log, 2.0), atol=1e-5)
        assert torch.allclose(losses[f"roi_l2/{x}"], 0.5 * ((dl - t_del) ** 2).mean(), atol=1e-6)
    assert losses["roi_kd/s"] > 0 and losses["app/p2"] > 0


def grads_of(d, term, images, targets):
    d.zero_grad(set_to_none=True)
    torch.manual_seed(1)
    _, losses = d.forward_train(images, targets)
    losses[term].backward()

    def hit(module):
        return any(p.grad is not None and p.grad.abs().sum() > 0 for p in module.parameters())

    s = d.student
    return {
        "s_fpn": hit(s.backbone),
        "s_head": hit(s.roi_heads),
        "s2t": hit(d.s2t),
        "t2s": hit(d.t2s),
        "teacher": any(p.grad is not None for p in d.teacher.parameters()),
    }


def test_fcfd_gradients_reach_what_they_should():
    teacher, student = tiny_pair()
    d = methods.create("fcfd", student, teacher, roi_l2_weight=1.0)
    d.train()
    images, targets = batch()
    want = {
        "app/p3": {"s_fpn", "s2t"},
        "roi_kd/st": {"s_fpn", "s2t"},
        "roi_l2/st": {"s_fpn", "s2t"},
        "roi_kd/ts": {"s_head", "t2s"},
        "roi_l2/ts": {"s_head", "t2s"},
        "roi_kd/s": {"s_fpn", "s_head"},
    }
    for term, reached in want.items():
        got = grads_of(d, term, images, targets)
        assert {k for k, v in got.items() if v} == reached, term
    assert all(not p.requires_grad for p in d.teacher.parameters())
    assert not d.teacher.training  # frozen: BN running statistics


def test_kd_and_ce_terms_and_checkpoint_extras():
    teacher, student = tiny_pair()
    images, targets = batch()
    kd = methods.create("kd", student, teacher)
    kd.train()
    _, losses = kd.forward_train(images, targets)
    assert set(losses) == {"rpn_cls", "rpn_box", "roi_cls", "roi_box", "roi_kd/s", "roi_l2/s"}
    assert float(losses["roi_l2/s"].detach()) == 0.0  # the default weight (paper: 1 only for R18)
    ce = methods.create("ce", student)
    assert set(ce.forward_train(images, targets)[1]) == {"rpn_cls", "rpn_box", "roi_cls", "roi_box"}
    fc = methods.create("fcfd", student, teacher)
    state = fc.checkpoint_state()
    assert set(state["extras"]) == {"s2t", "t2s"} and state["model"]["task"] == "detection"
    assert state["method_config"] == {
        "temperature": 1.0,
        "app_weight": 1.0,
        "kd_weight": 1.0,
        "roi_l2_weight": 0.0,
    }
    with pytest.raises(UserError, match="no detection version"):
        methods.create("fitnet", student, teacher)
    with pytest.raises(UserError, match="needs a teacher"):
        methods.create("fcfd", student)
