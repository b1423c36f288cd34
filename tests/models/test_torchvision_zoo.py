"""torchvision families as staged nets: the same logits as the torchvision model, bit for bit,
and stages where the resolution halves."""

from __future__ import annotations

from functools import cache

import pytest
import torch
from torch import nn

from fcfd_viz import models
from fcfd_viz.models.torchvision_zoo import TORCHVISION

pytestmark = pytest.mark.usefixtures("one_thread_module")

# every family beyond ResNet the issue names, at least one model each
FAMILIES = [
    "tv_mobilenet_v2",
    "tv_mobilenet_v3_small",
    "tv_mobilenet_v3_large",
    "tv_efficientnet_b0",
    "tv_convnext_tiny",
    "tv_regnet_y_400mf",
    "tv_vgg11_bn",
]


@cache
def tv_model(arch: str, num_classes: int) -> nn.Module:
    """One seeded eval-mode torchvision model per (arch, classes), shared by the tests."""
    from torchvision import models as tvm

    torch.manual_seed(0)
    return tvm.get_model(TORCHVISION[arch][0], weights=None, num_classes=num_classes).eval()


@pytest.mark.parametrize("arch", [*FAMILIES, "tv_resnet18"])
def test_staged_logits_equal_the_torchvision_model(arch: str) -> None:
    model, stager = tv_model(arch, 7), TORCHVISION[arch][1]
    g = torch.Generator().manual_seed(1)
    x = torch.randn(2, 3, 64, 64, generator=g)
    with torch.no_grad():
        want = model(x)  # (2, 7), before staging: the staged net shares these very modules
        net = stager(model, arch, 7).eval()
        got = net(x)
        feats = net.forward_features(x)
    assert torch.equal(got, want)
    assert torch.equal(net.head(feats[-1]), want)
    assert net.num_stages == 5
    # every stage but a ResNet / ConvNeXt stem halves the resolution: H/2|H/4, ..., H/32
    sides = [f.shape[-1] for f in feats]
    assert sides[-3:] == [8, 4, 2] and sides[0] in (32, 16), sides


def test_registered_builders_take_weights_and_record_none() -> None:
    assert all(models.takes_weights(arch) for arch in TORCHVISION)
    assert not models.takes_weights("resnet8")
    net = models.create("tv_mobilenet_v3_small", num_classes=5)
    assert net.arch == "tv_mobilenet_v3_small" and net.num_classes == 5 and net.weights is None
    assert net.spec() == {"arch": "tv_mobilenet_v3_small", "num_classes": 5, "arch_kwargs": {}}


def test_head_keeps_pretrained_classifier_or_replaces_its_last_layer() -> None:
    model = tv_model("tv_vgg11_bn", 7)
    mlp = model.classifier
    net = TORCHVISION["tv_vgg11_bn"][1](model, "tv_vgg11_bn", 7)
    assert net.head.fc is mlp and net.head.pooled(torch.zeros(1, 512, 2, 2)).shape == (1, 25088)
    model = tv_model("tv_regnet_y_400mf", 10)
    old = model.fc
    net = TORCHVISION["tv_regnet_y_400mf"][1](model, "tv_regnet_y_400mf", 3)
    assert net.head.fc is not old and net.head.fc.out_features == 3
    assert net.head.fc.in_features == old.in_features == 440
    model = tv_model("tv_convnext_tiny", 10)
    old = model.classifier[2]
    net = TORCHVISION["tv_convnext_tiny"][1](model, "tv_convnext_tiny", 3)
    assert net.head.fc is not old and net.head.fc.out_features == 3
    assert net.head.fc.in_features == old.in_features == 768
