"""Every preset YAML is usable: it loads, names registered archs, its knobs fit the method, its
schedule is valid, and the authors' values of the method note are the ones shipped."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest
import torch

from fcfd_viz import distill, models
from fcfd_viz.data.datasets import DataConfig, data_info
from fcfd_viz.errors import UserError
from fcfd_viz.experiments import presets
from fcfd_viz.training.config import TrainConfig

pytestmark = pytest.mark.usefixtures("one_thread")

NAMES = presets.names()
FCFD_ONLY = {"feat_weight", "feat_warmup_epochs", "mix_weight", "paths", "num_paths", "teacher_bn"}


def test_the_expected_presets_ship():
    expected = {
        "digits",
        "digits-hard",
        "resnet56-resnet20",
        "resnet110-resnet32",
        "resnet32x4-resnet8x4",
        "wrn_40_2-wrn_16_2",
        "wrn_40_2-wrn_40_1",
        "vgg13-vgg8",
        "resnet32x4-shufflev1",
        "resnet32x4-shufflev2",
        "imagenet-resnet34-resnet18",
        "imagenet-resnet50-mobilenet",
    }
    assert expected <= set(NAMES)
    with pytest.raises(UserError, match="unknown preset"):
        presets.load("resnet56-resnet21")


@pytest.mark.parametrize("name", NAMES)
def test_preset_is_usable(name: str):
    p = presets.load(name)
    assert p.name == name and p.description
    registered = models.names()
    for role, arch in (("teacher", p.teacher), ("student", p.student)):
        assert arch in registered, f"{name}: {role} arch {arch!r} is not registered"
    assert p.method in distill.METHODS
    # every knob is one FCFD takes (make_config rejects unknown ones)
    cfg = distill.make_config("fcfd", **p.method_kwargs)
    for k, v in p.method_kwargs.items():
        assert getattr(cfg, k) == v
    kd = p.knobs_for("kd")
    assert not set(kd) & FCFD_ONLY
    assert set(kd) == set(p.method_kwargs) - FCFD_ONLY
    distill.make_config("kd", **kd)
    assert p.knobs_for("fcfd") == p.method_kwargs
    TrainConfig(**p.train).validate()
    data = DataConfig(**{"dataset": p.dataset, **p.data})
    assert data.batch_size > 0


# the small pairs only: stage alignment of every pair is tests/models' job; this checks that a
# preset's knobs build a working distiller end to end
@pytest.mark.parametrize("name", ["digits", "digits-hard", "resnet56-resnet20"])
def test_preset_pair_builds_fcfd(name: str):
    """The preset's pair and knobs build the FCFD distiller (all bridges)."""
    p = presets.load(name)
    shape = data_info(DataConfig(**{"dataset": p.dataset, **p.data})).input_shape
    torch.manual_seed(0)
    teacher = models.create(p.teacher, num_classes=10)
    student = models.create(p.student, num_classes=10)
    d = distill.create("fcfd", student, teacher, input_shape=shape, **p.method_kwargs)
    assert len(d.s2t) == teacher.num_stages - 1 and len(d.t2s) == teacher.num_stages - 2


def test_knobs_for_drops_what_a_method_lacks():
    p = presets.load("resnet56-resnet20")
    assert p.knobs_for("kd") == {"temperature": 4}
    assert p.knobs_for("ce") == {}
    fields = {f.name for f in dataclasses.fields(distill.METHODS["fcfd+dkd"].Config)}
    assert set(p.knobs_for("fcfd+dkd")) == set(p.method_kwargs) & fields


# preset -> (T, feat_weight, mix_weight): every config of the authors (the method note's list
# of their CIFAR values; their ImageNet configs)
AUTHORS = {
    "resnet56-resnet20": (4, 0.02, 1.0),
    "resnet32x4-resnet8x4": (4, 5.0, 1.0),
    "vgg13-vgg8": (4, 5.0, 1.0),
    "wrn_40_2-wrn_16_2": (4, 5.0, 0.2),
    "wrn_40_2-wrn_40_1": (4, 5.0, 1.0),
    "wrn_40_2-shufflev1": (4, 5.0, 1.0),
    "vgg13-mobilenetv2": (4, 5.0, 1.0),
    "resnet32x4-shufflev1": (8, 5.0, 1.0),
    "resnet32x4-shufflev2": (8, 5.0, 1.0),
    "resnet50-mobilenetv2": (8, 5.0, 1.0),
    "imagenet-resnet34-resnet18": (1, 0.02, 1.0),
    "imagenet-resnet50-mobilenet": (1, 5.0, 1.0),
}


@pytest.mark.parametrize("name", sorted(AUTHORS))
def test_authors_values(name: str):
    p = presets.load(name)
    kw = p.method_kwargs
    assert (kw["temperature"], kw["feat_weight"], kw["mix_weight"]) == AUTHORS[name]
    assert kw["teacher_bn"] == "batch"  # their teacher normalises with batch statistics
    assert kw["feat_warmup_epochs"] == (5 if p.dataset == "imagenet" else 20)
    assert p.source.startswith("authors: experiments/")


def test_presets_without_an_authors_config_say_so():
    for name in set(NAMES) - set(AUTHORS):
        assert presets.load(name).source.startswith("fcfd-viz"), name


def fidelity_table() -> dict[str, dict[str, str]]:
    """The preset table of docs/fidelity.md, by preset name."""
    doc = (Path(__file__).resolve().parents[2] / "docs" / "fidelity.md").read_text()
    block = doc.split("<!-- presets:start -->")[1].split("<!-- presets:end -->")[0]
    lines = [ln for ln in block.strip().splitlines() if not ln.startswith("|---")]
    split = lambda ln: [c.strip() for c in ln.strip().strip("|").split("|")]  # noqa: E731
    header = split(lines[0])
    return {row[0]: dict(zip(header, row)) for row in map(split, lines[1:])}


def test_docs_fidelity_table_matches_every_preset():
    """docs/fidelity.md says which preset reproduces which config: it must stay true."""
    rows = fidelity_table()
    assert set(rows) == set(NAMES)
    for name in NAMES:
        p, row = presets.load(name), rows[name]
        cfg = distill.make_config("fcfd", **p.method_kwargs)
        t = p.train
        schedule = (
            f"step {'/'.join(map(str, t['milestones']))}, {t['epochs']} epochs"
            if t["schedule"] == "step"
            else f"{t['schedule']}, {t['epochs']} epochs"
        )
        expected = {
            "source": p.source,
            "T": cfg.temperature,
            "feat_weight": cfg.feat_weight,
            "mix_weight": cfg.mix_weight,
            "teacher_bn": cfg.teacher_bn,
            "lr": t["lr"],
            "schedule": schedule,
        }
        for col, value in expected.items():
            cell = row[col]
            if isinstance(value, str):
                assert cell == value, (name, col, cell, value)
            else:
                assert float(cell) == pytest.approx(float(value)), (name, col, cell, value)


@pytest.mark.parametrize(
    "name", [n for n in NAMES if not n.startswith(("digits", "imagenet", "pairs-"))]
)
def test_cifar_schedule(name: str):
    p = presets.load(name)
    small = p.student.startswith(("shuffle", "mobilenet"))
    assert p.dataset in ("cifar100", "cifar10")
    assert p.train["epochs"] == 240 and p.train["schedule"] == "step"
    assert p.train["milestones"] == [150, 180, 210]
    assert p.train["weight_decay"] == pytest.approx(5e-4)
    assert p.train["lr"] == pytest.approx(0.01 if small else 0.05)
    assert p.data["batch_size"] == 64


@pytest.mark.parametrize("name", [n for n in NAMES if n.startswith("pairs-")])
def test_digit_pairs_presets_keep_the_cifar_pairs_knobs(name: str):
    """A ``pairs-X`` preset is the CIFAR preset X on digit-pairs: the same pair and FCFD
    knobs, the feature ramp kept at the authors' share of the run (20 of 240 epochs)."""
    p, cifar = presets.load(name), presets.load(name.removeprefix("pairs-"))
    assert p.dataset == "digit-pairs" and (p.teacher, p.student) == (cifar.teacher, cifar.student)
    ramp = p.method_kwargs["feat_warmup_epochs"]
    assert ramp == round(20 / 240 * p.train["epochs"])
    assert {**p.method_kwargs, "feat_warmup_epochs": 20} == cifar.method_kwargs
    assert p.train["lr"] == cifar.train["lr"] and p.data["batch_size"] == 64


@pytest.mark.parametrize("name", [n for n in NAMES if n.startswith("imagenet")])
def test_imagenet_schedule(name: str):
    p = presets.load(name)
    assert p.dataset == "imagenet" and p.data["batch_size"] == 256
    assert p.train["epochs"] == 100 and p.train["lr"] == pytest.approx(0.1)
    assert p.train["milestones"] == [30, 60, 90] and p.train["weight_decay"] == pytest.approx(1e-4)
