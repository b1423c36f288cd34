"""The model zoo: parameter counts, the StagedNet contract for every registered net, and
stage alignment of the teacher/student pairs from the FCFD paper."""

from __future__ import annotations

from functools import cache

import pytest
import torch
from torch import nn

from fcfd_viz import models
from fcfd_viz.errors import UserError

IMAGENET = {"mobilenet_v1", *(n for n in models.names() if n.startswith("tv_"))}


# tiny tensors: one thread avoids OpenMP spin-waits when the CPU is shared
pytestmark = pytest.mark.usefixtures("one_thread_module")


@cache
def net(name: str) -> models.StagedNet:
    """One eval-mode instance per architecture (100 classes), shared by the tests."""
    torch.manual_seed(0)
    return models.create(name, num_classes=100).eval()


def n_params(m: nn.Module) -> int:
    return sum(p.numel() for p in m.parameters())


# Exact counts at 100 classes; each equals the FCFD authors' (and CRD's) model of that name,
# counted side by side by benchmarks/fidelity.py.
PARAMS = {
    "resnet20": 278_324,
    "resnet32": 472_756,
    "resnet56": 861_620,
    "resnet110": 1_736_564,
    "resnet8x4": 1_233_540,
    "resnet32x4": 7_433_860,
    "wrn_16_2": 703_284,
    "wrn_40_1": 569_780,
    "wrn_40_2": 2_255_156,
    "vgg8": 3_965_028,
    "vgg13": 9_462_180,
    "shufflev1": 949_258,
    "shufflev2": 1_355_528,  # 1x1 stem; the 3x3 stem of fcfd-viz < 0.2 had 576 more
    "mobilenetv2": 812_836,
    "resnet50": 23_705_252,
}


@pytest.mark.parametrize("name", PARAMS)
def test_param_count(name: str) -> None:
    assert n_params(net(name)) == PARAMS[name]


@pytest.mark.parametrize("name", models.names())
def test_staged_contract(name: str) -> None:
    m = net(name)
    size = 32 if name in IMAGENET else 16
    x = torch.randn(2, 3, size, size)
    with torch.no_grad():
        logits = m(x)
        feats = m.forward_features(x)
        assert logits.shape == (2, 100)
        assert len(feats) == m.num_stages
        assert torch.allclose(m.head(feats[-1]), logits, atol=1e-5)
        # cutting after stage k: run_stages up to the cut, then forward_from the cut
        mid = m.num_stages // 2
        assert torch.allclose(m.run_stages(x, 0, mid), feats[mid - 1], atol=1e-5)
        for cut in range(m.num_stages + 1):
            f = x if cut == 0 else feats[cut - 1]
            assert torch.allclose(m.forward_from(f, cut), logits, atol=1e-5), cut
            if 0 < cut < m.num_stages:
                assert torch.allclose(m.run_stages(f, cut), feats[-1], atol=1e-5), cut
    shapes = m.feature_shapes((3, size, size))
    assert shapes == [tuple(f.shape[1:]) for f in feats]


PAIRS = [
    ("resnet56", "resnet20"),
    ("resnet110", "resnet32"),
    ("resnet32x4", "resnet8x4"),
    ("wrn_40_2", "wrn_16_2"),
    ("wrn_40_2", "wrn_40_1"),
    ("vgg13", "vgg8"),
    ("resnet32x4", "shufflev1"),
    ("resnet32x4", "shufflev2"),
    ("wrn_40_2", "shufflev1"),
    ("vgg13", "mobilenetv2"),
    ("resnet50", "mobilenetv2"),
    ("tv_resnet34", "tv_resnet18"),
    ("tv_resnet50", "mobilenet_v1"),
    ("tv_convnext_tiny", "tv_mobilenet_v3_small"),  # heads of their own (LayerNorm, MLP)
]


@pytest.mark.parametrize("teacher, student", PAIRS)
def test_pair_stages_align(teacher: str, student: str) -> None:
    size = 64 if teacher in IMAGENET else 32
    t = net(teacher).feature_shapes((3, size, size))
    s = net(student).feature_shapes((3, size, size))
    assert len(t) == len(s)
    for (_, th, tw), (_, sh, sw) in zip(t, s):
        for a, b in ((th, sh), (tw, sw)):
            assert a in (b, 2 * b) or b == 2 * a, (t, s)


def test_unknown_name_suggests_close_match() -> None:
    with pytest.raises(UserError, match="resnet20"):
        models.create("resnet2O")


def test_from_stages_wraps_sequential_stages() -> None:
    stages = [
        nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU()),
        nn.Sequential(nn.Conv2d(8, 16, 3, stride=2, padding=1), nn.ReLU()),
        nn.Sequential(nn.Conv2d(16, 32, 3, stride=2, padding=1), nn.ReLU()),
    ]
    m = models.from_stages(stages, num_classes=5, feature_channels=32, arch="tiny")
    assert m.arch == "tiny" and m.num_stages == 3 and m.post_relu
    assert m.feature_shapes((3, 16, 16)) == [(8, 16, 16), (16, 8, 8), (32, 4, 4)]
    assert m(torch.randn(2, 3, 16, 16)).shape == (2, 5)
    with pytest.raises(UserError):
        models.from_stages([], num_classes=5, feature_channels=32)


def test_tv_resnet18_forward() -> None:
    m = models.create("tv_resnet18", num_classes=10).eval()
    assert m.num_stages == 5
    with torch.no_grad():
        assert m(torch.randn(2, 3, 64, 64)).shape == (2, 10)
    assert [s[1] for s in m.feature_shapes((3, 64, 64))] == [16, 16, 8, 4, 2]


# Where each family's stages are cut, as in the FCFD authors' CIFAR/ImageNet models: "post"
# = the stage output is post-ReLU, "pre" = taken before its (final) ReLU or a linear output.
CUTS = {
    "resnet": ["post"] * 4,  # resnet8..110, x4, w025
    "resnet50": ["post"] * 5,
    "wrn": ["pre"] * 4,  # residual sums; the last stage ends at the final BN
    "vgg": ["pre"] * 5,  # each stage ends at its last BN
    "mobilenetv2": ["pre"] * 5,  # stem and last stage end at a BN, the rest are linear bottlenecks
    "shufflev1": ["pre"] * 4,
    "shufflev2": ["post"] * 4,
    "tv_resnet": ["post"] * 5,
    "mobilenet_v1": ["post"] * 5,
    # torchvision families: linear bottlenecks, LayerNorm / SiLU / Hardswish outputs are "pre";
    # MobileNetV2's last stage ends at a ReLU6, RegNet's and VGG's stages at ReLUs / max-pools
    "tv_mobilenet_v2": ["pre"] * 4 + ["post"],
    "tv_mobilenet_v3_small": ["pre"] * 5,
    "tv_mobilenet_v3_large": ["pre"] * 5,
    "tv_efficientnet_b0": ["pre"] * 5,
    "tv_convnext_tiny": ["pre"] * 5,
    "tv_regnet_y_400mf": ["post"] * 5,
    "tv_vgg11_bn": ["post"] * 5,
}


def family(name: str) -> str:
    for prefix in ("tv_resnet", "resnet50", "wrn", "vgg"):
        if name.startswith(prefix):
            return prefix
    return "resnet" if name.startswith("resnet") else name


@pytest.mark.parametrize("name", models.names())
def test_stage_outputs_pre_or_post_activation(name: str) -> None:
    cuts = CUTS[family(name)]
    m = net(name)
    size = 64 if name in IMAGENET else 32
    with torch.no_grad():
        feats = m.forward_features(torch.randn(4, 3, size, size))
    assert len(feats) == len(cuts)
    for i, (f, cut) in enumerate(zip(feats, cuts)):
        if cut == "post":
            assert f.min() >= 0, (name, i)
        else:  # a pre-activation feature has plenty of negative entries
            assert (f < 0).float().mean() > 0.05, (name, i)
    # the flag bridges read: a stage's *input* is post-ReLU exactly when the stage before ends so
    assert m.post_relu == (cuts[0] == "post")


@pytest.mark.parametrize("teacher, student", PAIRS)
def test_bridges_end_in_leaky_relu_only_into_post_relu_nets(teacher: str, student: str) -> None:
    from fcfd_viz import distill

    size = 64 if teacher in IMAGENET else 32
    d = distill.create("fcfd", net(student), net(teacher), input_shape=(3, size, size))
    for bridges, target in ((d.s2t, teacher), (d.t2s, student)):
        for b in bridges.values():
            ends_leaky = isinstance(b[-1], nn.LeakyReLU)
            assert ends_leaky == (CUTS[family(target)][0] == "post"), (target, b)


def test_check_stage_names_the_valid_range() -> None:
    m = net("resnet8")
    assert m.check_stage(0) == 0 and m.check_stage(3) == 3
    for bad in (4, -1, True, "1", 1.0):
        with pytest.raises(UserError, match=r"0\.\.3"):
            m.check_stage(bad)
