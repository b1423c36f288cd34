"""Functional gap: zero for an identical student, a KL that grows with perturbation, the
post-hoc connector fit and its plateau rule, the two BN regimes, checkpoints and errors."""

from __future__ import annotations

import copy
import json
import math

import pytest
import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader, TensorDataset

from fcfd_viz import distill, models
from fcfd_viz.analysis import (
    FitConfig,
    FitInfo,
    FunctionalGap,
    GapResult,
    gap_reading,
    load_students,
)
from fcfd_viz.analysis.gap.connectors import _Plateau, fit_connectors, new_bridges
from fcfd_viz.errors import UserError
from fcfd_viz.models.base import StagedNet
from fcfd_viz.runs.checkpoints import save_checkpoint

SHAPE = (3, 16, 16)


# tiny tensors: one thread avoids OpenMP spin-waits when the CPU is shared
pytestmark = pytest.mark.usefixtures("one_thread_module")


@pytest.fixture(scope="module")
def teacher(bn_resnet8):
    """A resnet8 with BN running statistics estimated on data (so eval != batch BN)."""
    return bn_resnet8


@pytest.fixture(scope="module")
def data(teacher):
    """40 images labelled by the teacher, 10 labels flipped: teacher top-1 is 75%."""
    g = torch.Generator().manual_seed(1)
    x = torch.randn(40, *SHAPE, generator=g) * 1.5 + 0.3
    with torch.no_grad():
        y = teacher(x).argmax(1)
    y[:10] = (y[:10] + 1) % 10
    return x, y


def loader(data, batch_size=20):
    return DataLoader(TensorDataset(*data), batch_size=batch_size)


def identity_bridges(teacher, student):
    s2t, t2s = new_bridges(teacher, student, SHAPE)
    for b in [*s2t.values(), *t2s.values()]:
        b.set_identity()
    return s2t.eval(), t2s.eval()


def buffers(net):
    return {k: v.clone() for k, v in net.named_buffers()}


def test_identical_student_with_identity_bridges_has_no_gap(teacher, data):
    student = copy.deepcopy(teacher)
    gap = FunctionalGap(
        teacher, {"fcfd": student}, {"fcfd": identity_bridges(teacher, student)}, SHAPE
    )
    res = gap.compute(loader(data), bn="eval", fit=False)
    assert isinstance(res, GapResult) and res.stages == [1, 2, 3] and res.num_images == 40
    assert res.teacher_accuracy == pytest.approx(75.0)
    e_name = "fcfd (own bridges)"
    e = res.entries[e_name]
    assert e.bridges == "own bridges" and e.fit is None
    assert float(e.appearance.max()) < 1e-8
    assert float(e.functional.max()) < 1e-8
    assert float(e.reverse[:2].max()) < 1e-8 and math.isnan(float(e.reverse[2]))
    assert set(e.path_accuracy) == {"SSSS", "SSTT", "SSST", "TTSS", "TTTS", "TTTT"}
    assert all(a == pytest.approx(res.teacher_accuracy) for a in e.path_accuracy.values())
    d = json.loads(json.dumps(res.to_dict()))
    s = d["students"]["fcfd (own bridges)"]
    assert set(s["appearance"]) == set(s["functional"]) == {"1", "2", "3"}
    assert s["reverse"]["3"] is None and d["bn"] == "eval" and "running" in d["bn_label"]
    back = GapResult.from_dict(d)  # reverse comes back NaN where no t2s bridge exists
    assert back.to_dict() == res.to_dict() and math.isnan(float(back.entries[e_name].reverse[2]))
    assert back.entries[e_name].method is None  # no methods given


def test_functional_gap_is_a_kl_that_grows_with_perturbation(teacher, data):
    student = copy.deepcopy(teacher)
    s2t, t2s = identity_bridges(teacher, student)
    gap = FunctionalGap(teacher, {"s": student}, {"s": (s2t, t2s)}, SHAPE)
    g = torch.Generator().manual_seed(3)
    directions = {k: torch.randn(b[1].bias.shape, generator=g) for k, b in s2t.items()}
    funcs, apps = [], []
    for eps in (0.0, 0.2, 0.6):
        with torch.no_grad():
            for k, b in s2t.items():
                b[1].bias.copy_(eps * directions[k])  # shift the bridged student feature
        e = gap.compute(loader(data), fit=False).entries["s (own bridges)"]
        funcs.append(e.functional)
        apps.append(e.appearance)
    assert bool((funcs[1] > funcs[0]).all() and (funcs[2] > funcs[1]).all())
    assert bool((apps[1] > apps[0]).all() and (apps[2] > apps[1]).all())
    # the number is KL(teacher tail on the bridged feature || teacher output), mean over images
    x, _ = data
    with torch.no_grad():
        f = s2t["2"](student.run_stages(x, 0, 3))
        kl = F.kl_div(
            F.log_softmax(teacher(x), 1),
            F.log_softmax(teacher.forward_from(f, 3), 1),
            log_target=True,
            reduction="batchmean",
        )
    assert float(funcs[2][1]) == pytest.approx(float(kl), rel=1e-4)


def test_plateau_rule():
    cfg = FitConfig(patience=3, min_epochs=1, lr_drops=1, rel_tol=0.01)
    group = {"lr": 1.0}
    rule = _Plateau(cfg, group)
    losses = [1.0, 0.5, 0.499, 0.498, 0.497, 0.3, 0.3, 0.3, 0.3, 0.1]
    for loss in losses:
        rule.update(loss)
        if rule.done:
            break
    # epochs 3-5 improve by < 1%: lr drops after epoch 5; 6 improves; 7-9 do not: stop at 9
    assert rule.drop_epochs == [5] and group["lr"] == pytest.approx(0.1)
    assert rule.done and len(rule.curve) == 9


def test_fit_reaches_the_reachable_optimum_and_stops_on_plateau(teacher, data):
    """The Adam loop (``method="adam"``) and its plateau rule."""
    student = copy.deepcopy(teacher)  # identity bridges are the optimum: the fit must find it
    gap = FunctionalGap(teacher, {"kd": student}, input_shape=SHAPE)
    cfg = FitConfig(lr=3e-2, max_epochs=300, patience=4, rel_tol=1e-2, batch_size=10, method="adam")
    with pytest.raises(UserError, match="no bridges"):
        gap.compute(loader(data))
    res = gap.compute(loader(data), loader(data, 10), fit=cfg)
    e = res.entries["kd (fitted)"]
    assert list(res.entries) == ["kd (fitted)"] and e.bridges == "fitted"
    fit = e.fit
    assert set(fit.bridges) == {"s2t/1", "s2t/2", "s2t/3", "t2s/1", "t2s/2"}
    assert fit.converged and fit.epochs < cfg.max_epochs  # stopped by the plateau rule
    for b in fit.bridges.values():
        assert b.final_loss < 0.05 * b.initial_loss and b.lr_drop_epochs
    x, _ = data
    with torch.no_grad():
        scale = [float(f.pow(2).mean()) for f in teacher.forward_features(x)[1:]]
    assert all(float(a) < 0.05 * s for a, s in zip(e.appearance, scale))
    assert float(e.functional.max()) < 0.05
    assert res.to_dict()["students"]["kd (fitted)"]["fit"]["converged"] is True
    # the result's round trip: per-stage tensors and the fit record come back
    back = GapResult.from_dict(json.loads(json.dumps(res.to_dict(), allow_nan=False)))
    assert back.to_dict() == res.to_dict() and back.entries["kd (fitted)"].fit == fit
    assert torch.equal(back.entries["kd (fitted)"].appearance, e.appearance)
    with pytest.raises(KeyError):  # without the curves a fit cannot be rebuilt
        GapResult.from_dict(res.to_dict(curves=False))
    # a second measurement reuses the fit (same config): no refit, same bridges
    again = gap.compute(loader(data), loader(data, 10), fit=cfg)
    assert again.entries["kd (fitted)"].fit is fit
    # a saved fit (bridges + record) restores into a new analysis without refitting
    s2t, t2s, info = gap.fitted("kd")
    restored = FitInfo.from_dict(json.loads(json.dumps(info.to_dict())))
    assert restored == info
    other = FunctionalGap(teacher, {"kd": student}, input_shape=SHAPE)
    other.set_fitted("kd", s2t, t2s, restored)
    same = other.compute(loader(data), loader(data, 10), fit=cfg).entries["kd (fitted)"]
    assert same.fit is restored and torch.equal(same.functional, e.functional)


class Jittered(torch.utils.data.Dataset):
    """Images with random noise added on every read: augmentation drawing from torch's global
    generator, as torchvision's random crops and flips do."""

    def __init__(self, x, y):
        self.x, self.y = x, y

    def __len__(self):
        return len(self.x)

    def __getitem__(self, i):
        return self.x[i] + 0.3 * torch.randn(self.x[i].shape), self.y[i]


@pytest.mark.parametrize("cache_mb", [2048.0, 0.0])  # features cached once / recomputed
def test_fit_is_a_function_of_its_seed_under_augmentation(teacher, data, cache_mb):
    student = models.create("resnet8_w025", num_classes=10).eval()
    jittered = DataLoader(Jittered(*data), batch_size=20)
    cfg = FitConfig(max_epochs=3, min_epochs=1, seed=4, cache_mb=cache_mb)
    curves = []
    for global_seed in (0, 1):  # whatever state the caller's generator is in
        torch.manual_seed(global_seed)
        *_, info = fit_connectors(teacher, student, jittered, SHAPE, cfg)
        curves.append({k: b.curve for k, b in info.bridges.items()})
        after = torch.rand(())
        torch.manual_seed(global_seed)
        assert torch.equal(after, torch.rand(())), "the fit consumed the caller's generator"
    assert curves[0] == curves[1]
    *_, other = fit_connectors(
        teacher, student, jittered, SHAPE, FitConfig(**{**cfg.__dict__, "seed": 5})
    )
    assert {k: b.curve for k, b in other.bridges.items()} != curves[0]


def test_bn_regimes_differ_and_teacher_buffers_stay(teacher, data):
    student = copy.deepcopy(teacher)
    s2t, t2s = identity_bridges(teacher, student)
    gap = FunctionalGap(teacher, {"fcfd": student}, {"fcfd": (s2t, t2s)}, SHAPE)
    nets = (teacher, student, s2t, t2s)
    before = [buffers(m) for m in nets]
    ev = gap.compute(loader(data), bn="eval", fit=False)
    ba = gap.compute(loader(data), bn="batch", fit=False)
    for net, old in zip(nets, before):  # no running statistic moved, every mode restored
        new = buffers(net)
        assert all(torch.equal(old[k], new[k]) for k in old)
        assert not any(m.training for m in net.modules())
    assert ev.bn == "eval" and ba.bn == "batch" and ba.batch_size == 20
    e, b = ev.entries["fcfd (own bridges)"], ba.entries["fcfd (own bridges)"]
    assert (
        float(e.functional.max()) < 1e-8 < float(b.functional.min())
    )  # eval student vs batch tail
    with pytest.raises(UserError, match="BN regime"):
        gap.compute(loader(data), bn="train", fit=False)


def test_stage_and_class_mismatch(teacher):
    short = StagedNet(
        list(copy.deepcopy(teacher.stages[:3])), copy.deepcopy(teacher.head), "toy", 10
    )
    with pytest.raises(UserError, match="stages"):
        FunctionalGap(teacher, {"s": short}, input_shape=SHAPE)
    with pytest.raises(UserError, match="classes"):
        FunctionalGap(teacher, {"s": models.create("resnet8", num_classes=5)}, input_shape=SHAPE)


@pytest.fixture(scope="module")
def ckpts(teacher, tmp_path_factory):
    root = tmp_path_factory.mktemp("gap")
    t_path = root / "teacher.pt"
    save_checkpoint(
        t_path,
        {
            "model": teacher.spec(),
            "state_dict": teacher.state_dict(),
            "dataset": "digits",
            "input_shape": list(SHAPE),
            "seed": 0,
        },
    )
    out = {"teacher": t_path}
    for method in ("fcfd", "fitnet", "kd"):
        torch.manual_seed(1)
        d = distill.create(
            method, models.create("resnet8", num_classes=10), teacher, input_shape=SHAPE
        )
        out[method] = root / f"{method}.pt"
        save_checkpoint(
            out[method],
            {
                **d.checkpoint_state(),
                "dataset": "digits-hard",
                "input_shape": list(SHAPE),
                "seed": 0,
                "teacher": str(t_path),
            },
        )
    bad = root / "cifar.pt"
    save_checkpoint(
        bad,
        {
            "model": teacher.spec(),
            "state_dict": teacher.state_dict(),
            "dataset": "cifar10",
            "input_shape": [3, 32, 32],
            "method": {"method": "kd"},
            "teacher": str(t_path),
        },
    )
    out["cifar"] = bad
    return out


def test_load_students(ckpts):
    teacher, students, bridges = loaded = load_students(
        [ckpts["fcfd"], ckpts["fitnet"], ckpts["kd"]]
    )
    assert list(students) == ["fcfd", "fitnet", "kd"]
    assert bridges["fitnet"] is None and bridges["kd"] is None  # FitNet's one hint connector: fit
    s2t, t2s = bridges["fcfd"]
    assert sorted(s2t.keys()) == ["1", "2", "3"] and sorted(t2s.keys()) == ["1", "2"]
    assert not s2t.training
    assert loaded.info["input_shape"] == list(SHAPE) and loaded.info["dataset"] == "digits"
    assert loaded.info["students"]["kd"]["method"] == "kd"
    gap = FunctionalGap(teacher, students, bridges, SHAPE)
    assert set(gap.own) == {"fcfd"} and not hasattr(students["kd"], "gap_method")
    methods = {k: v["method"] for k, v in loaded.info["students"].items()}
    assert methods == {"fcfd": "fcfd", "fitnet": "fitnet", "kd": "kd"}
    # duplicates get the seed; explicit labels win
    _, two, _ = load_students([ckpts["kd"], ckpts["kd"]], ckpts["teacher"], labels=["a", "b"])
    assert list(two) == ["a", "b"]
    with pytest.raises(UserError, match="trained on cifar10"):
        load_students([ckpts["kd"], ckpts["cifar"]], ckpts["teacher"])


def test_reading_and_figures(teacher, data):
    from fcfd_viz.viz import figures as viz

    a, b = copy.deepcopy(teacher), copy.deepcopy(teacher)
    ba = identity_bridges(teacher, b)
    with torch.no_grad():
        ba[0]["2"][1].bias.add_(0.5)
    bridges = {"a": identity_bridges(teacher, a), "b": ba}
    methods = {"a": "fcfd", "b": "kd"}  # the entries' methods give the colours
    gap = FunctionalGap(teacher, {"a": a, "b": b}, bridges, SHAPE, methods=methods)
    res = gap.compute(loader(data), fit=False)
    assert [e.method for e in res.entries.values()] == ["fcfd", "kd"]
    line = gap_reading(res)
    assert "a (own bridges) has the smallest functional gap" in line and "\n" not in line
    assert gap_reading(GapResult.from_dict(res.to_dict())) == line
    fig = viz.gap_figure(res)
    assert len(fig.data) == 4 and {t.marker.color for t in fig.data} == {
        viz.METHOD_COLORS["fcfd"],
        viz.METHOD_COLORS["kd"],
    }
    assert [f.layout.title.text.split()[0] for f in viz.gap_figures(res)] == [
        "Appearance",
        "Mixed-path",
    ]
    heat = viz.path_accuracy_figure(res)
    assert list(heat.data[0].x)[0] == "SSSS" and list(heat.data[0].x)[-1] == "TTTT"
    assert list(heat.data[0].y) == ["a (own bridges)", "b (own bridges)"]
