"""FCFD correctness: identity bridges, gradient routing, BN statistics, prefix sharing,
path plan, shape checks, feature-weight warm-up and the FCFD+DKD variant.

Every network is a CIFAR resnet8 at 16x16 (4 stages: stem, layer1, layer2, layer3), with
randomised BatchNorm parameters and running statistics so that eval-mode features are not
the trivial ones of a fresh net.
"""

from __future__ import annotations

import copy
import itertools
from collections import Counter

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from fcfd_viz import distill, models
from fcfd_viz.distill import fcfd as fcfd_mod
from fcfd_viz.distill.base import kd_loss
from fcfd_viz.distill.dkd import DKDConfig, dkd_loss
from fcfd_viz.distill.paths import MixedPath, candidates, sample_paths
from fcfd_viz.errors import UserError
from fcfd_viz.models.base import Head, StagedNet

pytestmark = pytest.mark.usefixtures("one_thread")

IN = (3, 16, 16)
ALL_PATHS = ["SSTT", "SSST", "TTSS", "TTTS"]


def randomise_bn(net: nn.Module, seed: int) -> nn.Module:
    """Random affine parameters and running statistics in every BatchNorm of ``net``."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for m in net.modules():
            if isinstance(m, nn.BatchNorm2d):
                c = m.num_features
                m.weight.copy_(1 + 0.3 * torch.randn(c, generator=g))
                m.bias.copy_(0.2 * torch.randn(c, generator=g))
                m.running_mean.copy_(0.3 * torch.randn(c, generator=g))
                m.running_var.copy_(0.5 + torch.rand(c, generator=g))
    return net


def resnet8(seed: int) -> StagedNet:
    torch.manual_seed(seed)
    return randomise_bn(models.create("resnet8", num_classes=10), seed + 1000)


def batch(n: int = 8, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return torch.randn(n, *IN, generator=g), torch.randint(0, 10, (n,), generator=g)


def fcfd(student, teacher, **knobs):
    knobs = {"feat_weight": 1.0, "feat_warmup_epochs": 0, **knobs}
    d = distill.create("fcfd", student, teacher, input_shape=IN, **knobs)
    d.start_epoch(0, 1)
    return d


def conv_net(strides: list[int], widths: list[int], arch: str = "test_plain") -> StagedNet:
    """A BN-free staged net: each stage is conv3x3(stride) + ReLU."""
    stages, cin = [], 3
    for s, w in zip(strides, widths):
        stages.append(nn.Sequential(nn.Conv2d(cin, w, 3, stride=s, padding=1), nn.ReLU()))
        cin = w
    return StagedNet(stages, Head(cin, 10), arch=arch, num_classes=10)


def record_samples(d) -> list[list[MixedPath]]:
    """Wrap ``d.sample`` so every step's sampled paths are recorded."""
    seen: list[list[MixedPath]] = []
    orig = d.sample

    def sample():
        paths = orig()
        seen.append(paths)
        return paths

    d.sample = sample
    return seen


# ------------------------------------------------------------------ (1) identity bridges
def test_identity_student_gives_zero_feature_and_function_terms():
    # float64: in float32 the KL of two equal logit vectors is ~1e-6 of rounding noise (x T^2)
    teacher = resnet8(0).double()
    student = copy.deepcopy(teacher)
    d = fcfd(student, teacher, num_paths=4)
    assert sorted(d.s2t) == ["1", "2", "3"] and sorted(d.t2s) == ["1", "2"]
    for b in [*d.s2t.values(), *d.t2s.values()]:
        b.set_identity()
    d.double().eval()
    assert not d.teacher.training and not d.student.training
    x, y = batch()
    x = x.double()
    with torch.no_grad():
        logits, losses = d.forward_train(x, y)
        t_feats = teacher.forward_features(x)
        t_logits = teacher.head(t_feats[-1])
        s_feats = student.forward_features(x)
    assert t_logits.std() > 0.1  # a non-trivial teacher output
    feature_terms = {k for k in losses if k.startswith(("app/", "func_l2/", "func_l2_pooled/"))}
    assert feature_terms == {
        "app/stage1",
        "app/stage2",
        "app/stage3",
        "app/pooled",
        "func_l2/SSTT/stage2",
        "func_l2/SSTT/stage3",
        "func_l2/SSST/stage3",
        "func_l2_pooled/SSTT",
        "func_l2_pooled/SSST",
    }
    assert {k for k in losses if k.startswith("func_kl/")} == {f"func_kl/{p}" for p in ALL_PATHS}
    for k in feature_terms | {f"func_kl/{p}" for p in ALL_PATHS}:
        assert losses[k].item() < 1e-6, (k, losses[k].item())
    torch.testing.assert_close(logits, t_logits)
    # each mixed path's output, composed by hand, is the teacher's output
    with torch.no_grad():
        outs = {
            "SSTT": teacher.forward_from(d.s2t["1"](s_feats[1]), 2),
            "SSST": teacher.forward_from(d.s2t["2"](s_feats[2]), 3),
            "TTSS": student.forward_from(d.t2s["1"](t_feats[1]), 2),
            "TTTS": student.forward_from(d.t2s["2"](t_feats[2]), 3),
        }
    for name, out in outs.items():
        torch.testing.assert_close(out, t_logits, rtol=1e-4, atol=1e-4, msg=name)

    # control: the same check fails once one bridge is no longer the identity
    with torch.no_grad():
        d.s2t["2"][0].weight.mul_(1.5)
        _, losses = d.forward_train(x, y)
    assert losses["app/stage2"].item() > 1e-3
    assert losses["func_kl/SSST"].item() > 1e-4
    assert losses["app/stage1"].item() < 1e-6


def test_path_terms_equal_explicit_composition():
    """With ordinary (random) bridges, every func_* term is the loss of the path built by hand."""
    teacher, student = resnet8(0), resnet8(1)
    d = fcfd(student, teacher, num_paths=4, mix_weight=0.7, temperature=3.0)
    for b in [*d.s2t.values(), *d.t2s.values()]:
        randomise_bn(b, 7)
    d.eval()
    x, y = batch()
    with torch.no_grad():
        _, losses = d.forward_train(x, y)
        t_feats = teacher.forward_features(x)
        t_logits = teacher.head(t_feats[-1])
        s_feats = student.forward_features(x)
        for k in (1, 2):
            f = d.s2t[str(k)](s_feats[k])
            for j in range(k + 1, 4):
                f = teacher.stages[j](f)
                ref = F.mse_loss(f, t_feats[j])
                name = "SS" + "S" * (k - 1) + "T" * (3 - k)
                torch.testing.assert_close(losses[f"func_l2/{name}/stage{j}"], ref)
            pooled = F.mse_loss(torch.relu(f).mean((2, 3)), torch.relu(t_feats[3]).mean((2, 3)))
            torch.testing.assert_close(losses[f"func_l2_pooled/{name}"], pooled)
            assert pooled.item() > 0
            out = teacher.head(f)
            torch.testing.assert_close(losses[f"func_kl/{name}"], 0.7 * kd_loss(out, t_logits, 3.0))
            out = student.forward_from(d.t2s[str(k)](t_feats[k]), k + 1)
            name = "T" * (k + 1) + "S" * (3 - k)
            torch.testing.assert_close(losses[f"func_kl/{name}"], 0.7 * kd_loss(out, t_logits, 3.0))
        for k in (1, 2, 3):
            ref = F.mse_loss(d.s2t[str(k)](s_feats[k]), t_feats[k])
            torch.testing.assert_close(losses[f"app/stage{k}"], ref)
        pooled = F.mse_loss(
            torch.relu(d.s2t["3"](s_feats[3])).mean((2, 3)), torch.relu(t_feats[3]).mean((2, 3))
        )
        torch.testing.assert_close(losses["app/pooled"], pooled)
        assert losses["app/pooled"].item() > 0


def hand_loss(d, x, y, paths: list[MixedPath]) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """FCFD's whole loss for one step, written out term by term from the method's definition
    (see docs/fidelity.md), and the relu+pooled MSE of each s->t path's final feature."""
    teacher, student, cfg, w = d.teacher, d.student, d.cfg, d.feat_weight()
    T = cfg.temperature

    def pool(f):  # relu -> global average pool
        return torch.relu(f).mean((2, 3))

    t_feats, s_feats = teacher.forward_features(x), student.forward_features(x)
    t_logits, s_logits = teacher.head(t_feats[3]), student.head(s_feats[3])
    total = F.cross_entropy(s_logits, y) + kd_loss(s_logits, t_logits, T)
    for k in (1, 2, 3):
        total = total + w * F.mse_loss(d.s2t[str(k)](s_feats[k]), t_feats[k])
    total = total + w * F.mse_loss(pool(d.s2t["3"](s_feats[3])), pool(t_feats[3]))
    pooled = {}
    for p in paths:
        k = p.switch
        if p.direction == "s2t":
            f = d.s2t[str(k)](s_feats[k])
            for j in range(k + 1, 4):
                f = teacher.stages[j](f)
                total = total + w * F.mse_loss(f, t_feats[j])
            pooled[p.name] = w * F.mse_loss(pool(f), pool(t_feats[3]))
            total = total + pooled[p.name]
            out = teacher.head(f)
        else:
            out = student.forward_from(d.t2s[str(k)](t_feats[k]), k + 1)
        total = total + cfg.mix_weight * kd_loss(out, t_logits, T)
    return total, pooled


def test_whole_loss_by_hand_for_every_draw():
    """Every one of the six 2-path draws: the summed loss equals the hand-written one, and each
    s->t path drawn brings exactly one relu+pooled term of the value computed by hand."""
    teacher, student = resnet8(0).double(), resnet8(1).double()
    d = fcfd(student, teacher, feat_weight=0.3, mix_weight=0.7, temperature=3.0).double()
    for b in [*d.s2t.values(), *d.t2s.values()]:
        randomise_bn(b, 7)
    d.eval()
    x, y = batch()
    x = x.double()
    for pair in itertools.combinations(candidates(4, "bi"), 2):
        d.sample = lambda pair=pair: list(pair)
        with torch.no_grad():
            _, losses = d.forward_train(x, y)
            total, pooled = hand_loss(d, x, y, list(pair))
        names = [p.name for p in pair]
        got = {k.split("/")[1]: v for k, v in losses.items() if k.startswith("func_l2_pooled/")}
        assert sorted(got) == sorted(n for n in names if n.startswith("S")), names
        for name, v in got.items():
            torch.testing.assert_close(v, pooled[name], rtol=1e-12, atol=0)
            assert v.item() > 1e-4
        torch.testing.assert_close(sum(losses.values()), total, rtol=1e-12, atol=0)


# ------------------------------------------------------------------ (2) gradient routing
def _grads(mod: nn.Module) -> list[torch.Tensor | None]:
    return [p.grad for p in mod.parameters()]


def _has_grad(mod: nn.Module) -> bool:
    grads = _grads(mod)
    return all(g is not None for g in grads) and sum(g.abs().sum().item() for g in grads) > 0


def _no_grad(mod: nn.Module) -> bool:
    return all(g is None for g in _grads(mod))


@pytest.mark.parametrize(
    "path", [MixedPath(k, d, 4) for d in ("s2t", "t2s") for k in (1, 2)], ids=lambda p: p.name
)
def test_gradient_routing(path: MixedPath):
    teacher, student = resnet8(0), resnet8(1)
    d = fcfd(student, teacher, ce_weight=0.0, kd_weight=0.0, paths=path.direction, num_paths=1)
    d.paths = [path]
    d.train()
    x, y = batch()
    _, losses = d.forward_train(x, y)
    assert losses["ce"].item() == 0 and losses["kd"].item() == 0
    terms = [k for k in losses if k.startswith("func_")]
    assert f"func_kl/{path.name}" in terms and all(f"/{path.name}" in k for k in terms)
    sum(losses[k] for k in terms).backward()  # the path's own loss terms only

    assert all(not p.requires_grad and p.grad is None for p in teacher.parameters())
    k = path.switch
    if path.direction == "s2t":  # e.g. SSTT: student stages 0..k and the s->t bridge at k
        with_grad = [*student.stages[: k + 1], d.s2t[str(k)]]
        without = [*student.stages[k + 1 :], student.head, *d.t2s.values()]
        without += [b for i, b in d.s2t.items() if i != str(k)]
    else:  # e.g. TTSS: the t->s bridge at k, student stages k+1.. and the head
        with_grad = [d.t2s[str(k)], *student.stages[k + 1 :], student.head]
        without = [*student.stages[: k + 1], *d.s2t.values()]
        without += [b for i, b in d.t2s.items() if i != str(k)]
    for m in with_grad:
        assert _has_grad(m), m
    for m in without:
        assert _no_grad(m), m


# ------------------------------------------------------------------ (3) BatchNorm statistics
def _bn_buffers(net: nn.Module) -> dict[str, torch.Tensor]:
    return {
        k: v.clone() for k, v in net.state_dict().items() if "running" in k or "num_batches" in k
    }


@pytest.mark.parametrize("teacher_bn", ["frozen", "batch"])
def test_mixed_paths_leave_running_stats_alone(teacher_bn: str, monkeypatch):
    x, y = batch()

    def run(student, teacher):
        d = fcfd(student, teacher, num_paths=4, teacher_bn=teacher_bn)
        d.train()
        assert d.teacher.training == (teacher_bn == "batch")
        d.forward_train(x, y)

    teacher, student = resnet8(0), resnet8(1)
    reference = copy.deepcopy(student).train()
    t_before, s_before = _bn_buffers(teacher), _bn_buffers(student)
    run(student, teacher)
    # teacher: running mean/var untouched in either BN mode
    t_after = _bn_buffers(teacher)
    for k, v in t_before.items():
        if "running" in k:
            assert torch.equal(v, t_after[k]), k
    # student: exactly what one pure forward of the batch does (the t->s suffixes ran in train
    # mode on the student's later stages, but did not move the statistics)
    with torch.no_grad():
        reference(x)
    s_after, s_ref = _bn_buffers(student), _bn_buffers(reference)
    assert any(not torch.equal(s_before[k], s_after[k]) for k in s_before if "running_mean" in k)
    for k in s_ref:
        assert torch.equal(s_after[k], s_ref[k]), k

    # control: without running_stats_frozen, the t->s suffixes would move them
    monkeypatch.setattr(
        fcfd_mod, "running_stats_frozen", lambda net: __import__("contextlib").nullcontext()
    )
    teacher, student = resnet8(0), resnet8(1)
    run(student, teacher)
    s_bad = _bn_buffers(student)
    assert any(not torch.equal(s_bad[k], s_ref[k]) for k in s_ref)


# ------------------------------------------------------------------ (4) prefix sharing
def _count_calls(mods: dict[str, nn.Module], counts: Counter) -> None:
    for name, m in mods.items():
        m.register_forward_hook(lambda *_, name=name: counts.update([name]))


def test_each_stage_runs_once_plus_mixed_suffixes():
    teacher, student = resnet8(0), resnet8(1)
    d = fcfd(student, teacher, num_paths=2)
    counts: Counter = Counter()
    mods = {f"T{i}": s for i, s in enumerate(teacher.stages)}
    mods |= {f"S{i}": s for i, s in enumerate(student.stages)}
    mods |= {f"s2t{k}": b for k, b in d.s2t.items()} | {f"t2s{k}": b for k, b in d.t2s.items()}
    _count_calls(mods, counts)
    sampled = record_samples(d)
    d.train()
    x, y = batch()
    combos = set()
    for _ in range(10):
        counts.clear()
        d.forward_train(x, y)
        paths = sampled[-1]
        assert len(paths) == 2
        combos.add(frozenset(p.name for p in paths))
        for i in range(4):
            s2t = sum(p.direction == "s2t" and i > p.switch for p in paths)
            t2s = sum(p.direction == "t2s" and i > p.switch for p in paths)
            assert counts[f"T{i}"] == 1 + s2t, (i, [p.name for p in paths], counts)
            assert counts[f"S{i}"] == 1 + t2s, (i, [p.name for p in paths], counts)
        for k in ("1", "2", "3"):  # the appearance term's bridged feature is reused by s2t paths
            assert counts[f"s2t{k}"] == 1
        for k in ("1", "2"):
            assert counts[f"t2s{k}"] == sum(
                p.direction == "t2s" and p.switch == int(k) for p in paths
            )
    assert len(combos) >= 3  # the check ran over several different path choices

    # all four paths at once: a literal count
    d = fcfd(resnet8(0), resnet8(1), num_paths=4)
    counts.clear()
    _count_calls({f"T{i}": s for i, s in enumerate(d.teacher.stages)}, counts)
    _count_calls({f"S{i}": s for i, s in enumerate(d.student.stages)}, counts)
    d.train().forward_train(x, y)
    assert [counts[f"T{i}"] for i in range(4)] == [1, 1, 2, 3]
    assert [counts[f"S{i}"] for i in range(4)] == [1, 1, 2, 3]


# ------------------------------------------------------------------ (5) path modes
def test_candidates_per_mode():
    names = {m: [p.name for p in candidates(4, m)] for m in ("bi", "s2t", "t2s", "nomix")}
    assert sorted(names["bi"]) == sorted(ALL_PATHS)
    assert sorted(names["s2t"]) == ["SSST", "SSTT"]
    assert sorted(names["t2s"]) == ["TTSS", "TTTS"]
    assert names["nomix"] == []
    assert sorted(p.name for p in candidates(5, "bi")) == sorted(
        ["SSTTT", "SSSTT", "SSSST", "TTSSS", "TTTSS", "TTTTS"]
    )
    with pytest.raises(UserError, match="path mode"):
        candidates(4, "both")


def test_sampled_paths_are_distinct():
    g = torch.Generator().manual_seed(0)
    paths = candidates(4, "bi")
    drawn = set()
    for _ in range(60):
        s = sample_paths(paths, 2, g)
        assert len(s) == 2 and s[0] != s[1]
        drawn.add(tuple(p.name for p in s))
    assert len(drawn) == 12  # every ordered pair of distinct paths shows up
    assert sample_paths(paths, 4, g) == paths and sample_paths(paths, 9, g) == paths
    assert sample_paths(paths, 0, g) == []


@pytest.mark.parametrize("mode", ["s2t", "t2s", "nomix"])
def test_mode_restricts_forward_terms(mode: str):
    d = fcfd(resnet8(0), resnet8(1), paths=mode, num_paths=4).train()
    _, losses = d.forward_train(*batch())
    kl = sorted(k.split("/")[1] for k in losses if k.startswith("func_kl/"))
    assert kl == sorted(p.name for p in candidates(4, mode))
    if mode != "s2t":
        assert not any(k.startswith("func_l2/") for k in losses)


def test_path_draws_are_reseeded_per_epoch():
    def draws(seed: int, d) -> list[tuple[str, ...]]:
        torch.manual_seed(seed)  # what the trainer does at every epoch start
        d.start_epoch(0, 1)
        return [tuple(p.name for p in d.sample()) for _ in range(12)]

    d1, d2 = fcfd(resnet8(0), resnet8(1)), fcfd(resnet8(5), resnet8(6))
    a = draws(123, d1)
    torch.randn(100)  # unrelated use of the global RNG in between changes nothing
    assert draws(123, d2) == a
    assert draws(123, d1) == a  # the same epoch again (a resumed run) replays it
    assert draws(124, d1) != a


# ------------------------------------------------------------------ (6) shapes
def test_bridges_handle_channel_and_2x_spatial_changes():
    teacher = resnet8(0)  # (16,16,16) (16,16,16) (32,8,8) (64,4,4)
    student = conv_net([1, 1, 4, 1], [8, 12, 24, 40])  # (8,16,16) (12,16,16) (24,4,4) (40,4,4)
    d = fcfd(student, teacher, num_paths=4).train()
    s_shapes, t_shapes = student.feature_shapes(IN), teacher.feature_shapes(IN)
    x, y = batch()
    s_feats, t_feats = student.forward_features(x), teacher.forward_features(x)
    for k, b in d.s2t.items():
        assert tuple(b(s_feats[int(k)]).shape[1:]) == t_shapes[int(k)]
    for k, b in d.t2s.items():
        assert tuple(b(t_feats[int(k)]).shape[1:]) == s_shapes[int(k)]
    assert isinstance(d.s2t["2"][0], nn.ConvTranspose2d)  # 4x4 -> 8x8
    assert d.t2s["2"][0].stride == (2, 2)  # 8x8 -> 4x4
    _, losses = d.forward_train(x, y)
    assert all(torch.isfinite(v) for v in losses.values())


def test_shape_mismatch_names_stage_and_shapes():
    teacher = resnet8(0)
    student = conv_net([1, 1, 8, 1], [16, 16, 32, 64])  # stage 2 is 2x2, the teacher's 8x8
    with pytest.raises(UserError) as e:
        fcfd(student, teacher)
    msg = str(e.value)
    assert "stage 2" in msg and "[32, 2, 2]" in msg and "[32, 8, 8]" in msg
    assert "\n" not in msg


def test_different_stage_counts_are_refused():
    teacher = resnet8(0)
    student = conv_net([1, 2, 2], [16, 32, 64])
    with pytest.raises(UserError, match="same number of stages"):
        fcfd(student, teacher)


def test_bad_knobs_are_user_errors():
    with pytest.raises(UserError, match="teacher_bn"):
        fcfd(resnet8(1), resnet8(0), teacher_bn="train")
    with pytest.raises(UserError, match="num_paths"):
        fcfd(resnet8(1), resnet8(0), num_paths=-1)
    with pytest.raises(UserError, match="no option"):
        fcfd(resnet8(1), resnet8(0), feat_wieght=1.0)
    with pytest.raises(UserError, match="teacher"):
        distill.create("fcfd", resnet8(1), None, input_shape=IN)


# ------------------------------------------------------------------ (7) warm-up
def test_feature_weight_ramps_linearly():
    d = fcfd(resnet8(1), resnet8(0), feat_weight=0.5, feat_warmup_epochs=4).eval()
    x, y = batch()
    weights, app = [], []
    for epoch in range(7):
        d.start_epoch(epoch, 7)
        weights.append(d.feat_weight())
        with torch.no_grad():
            _, losses = d.forward_train(x, y)
        app.append(losses["app/stage2"].item())
    assert weights == pytest.approx([0.125, 0.25, 0.375, 0.5, 0.5, 0.5, 0.5])
    # the terms themselves carry the ramp (eval mode: same features every epoch)
    assert [a / app[-1] for a in app] == pytest.approx([0.25, 0.5, 0.75, 1, 1, 1, 1], rel=1e-5)
    d = fcfd(resnet8(1), resnet8(0), feat_weight=0.5, feat_warmup_epochs=0)
    assert d.feat_weight() == 0.5


# ------------------------------------------------------------------ (8) FCFD + DKD
def test_fcfd_dkd_swaps_kd_for_dkd():
    teacher, student = resnet8(0), resnet8(1)
    d = distill.create(
        "fcfd+dkd",
        student,
        teacher,
        input_shape=IN,
        num_paths=4,
        alpha=2.0,
        beta=3.0,
        warmup_epochs=4,
    )
    d.start_epoch(1, 10)
    d.eval()
    x, y = batch()
    with torch.no_grad():
        logits, losses = d.forward_train(x, y)
        t_logits = teacher(x)
    assert "kd" not in losses and {"ce", "dkd/tckd", "dkd/nckd"} <= set(losses)
    assert {f"func_kl/{p}" for p in ALL_PATHS} <= set(losses) and "app/stage3" in losses
    ref = dkd_loss(
        logits, t_logits, y, DKDConfig(temperature=4.0, alpha=2.0, beta=3.0, warmup_epochs=4), 1
    )
    for k in ("dkd/tckd", "dkd/nckd"):
        torch.testing.assert_close(losses[k], ref[k])
        assert losses[k].item() > 0


def test_extras_are_the_bridges():
    d = fcfd(resnet8(1), resnet8(0))
    assert set(d.extras()) == {"s2t", "t2s"}
    ids = {id(p) for p in d.trainable_parameters()}
    assert not ids & {id(p) for p in d.teacher.parameters()}
    bridge_params = itertools.chain(d.s2t.parameters(), d.t2s.parameters(), d.student.parameters())
    assert ids == {id(p) for p in bridge_params}
