"""The model zoo: parameter counts, the StagedNet contract for every registered net, and
stage alignment of the teacher/student pairs from the FCFD paper."""

from __future__ import annotations

from functools import cache

import pytest
import torch
from torch import nn

from fcfd_viz import models
from fcfd_viz.errors import UserError

IMAGENET = {"tv_resnet18", "tv_resnet34", "tv_resnet50", "mobilenet_v1"}


# tiny tensors: one thread avoids OpenMP spin-waits when the CPU is shared
pytestmark = pytest.mark.usefixtures("one_thread_module")


@cache
def net(name: str) -> models.StagedNet:
    """One eval-mode instance per architecture (100 classes), shared by the tests."""
    torch.manual_seed(0)
    return models.create(name, num_classes=100).eval()


def n_params(m: nn.Module) -> int:
    return sum(p.numel() for p in m.parameters())


@pytest.mark.parametrize(
    "name, millions",
    [
        ("resnet8x4", 1.23),
        ("resnet32x4", 7.43),
        ("resnet20", 0.28),
        ("resnet56", 0.86),
        ("wrn_40_2", 2.26),
        ("wrn_16_2", 0.70),
        ("vgg13", 9.46),
        ("vgg8", 3.96),
    ],
)
def test_param_count(name: str, millions: float) -> None:
    assert n_params(net(name)) / 1e6 == pytest.approx(millions, rel=0.02)


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
