"""CIFAR ResNets (He et al. 2016, the 6n+2 family) as staged nets.

Stages: stem (conv3x3 + BN + ReLU), layer1, layer2 (stride 2), layer3 (stride 2). The
``x4`` variants widen every stage 4x (32, 64, 128, 256 channels), as in the CRD benchmark.
Stage outputs are post-ReLU.
"""

from __future__ import annotations

from collections.abc import Sequence

from torch import Tensor, nn

from fcfd_viz.models.base import Head, StagedNet
from fcfd_viz.models.registry import register


def conv_bn(cin: int, cout: int, k: int = 3, stride: int = 1) -> nn.Sequential:
    """``conv (no bias) -> BatchNorm``; padding keeps the size at stride 1."""
    return nn.Sequential(
        nn.Conv2d(cin, cout, k, stride=stride, padding=k // 2, bias=False), nn.BatchNorm2d(cout)
    )


class BasicBlock(nn.Module):
    """Two 3x3 convs with an identity (or 1x1 conv) shortcut, ReLU after the sum."""

    def __init__(self, cin: int, cout: int, stride: int = 1) -> None:
        super().__init__()
        self.body = nn.Sequential(
            conv_bn(cin, cout, 3, stride), nn.ReLU(inplace=True), conv_bn(cout, cout)
        )
        self.shortcut = (
            conv_bn(cin, cout, 1, stride) if stride != 1 or cin != cout else nn.Identity()
        )
        self.relu = nn.ReLU(inplace=True)

    def forward(self, x: Tensor) -> Tensor:
        return self.relu(self.body(x) + self.shortcut(x))


def make_layer(cin: int, cout: int, blocks: int, stride: int) -> nn.Sequential:
    layers = [BasicBlock(cin, cout, stride)]
    layers += [BasicBlock(cout, cout) for _ in range(blocks - 1)]
    return nn.Sequential(*layers)


def cifar_resnet(depth: int, widths: Sequence[int], num_classes: int, arch: str) -> StagedNet:
    """A (6n+2)-layer CIFAR ResNet with stem width ``widths[0]`` and stage widths ``widths[1:]``."""
    if (depth - 2) % 6:
        raise ValueError(f"CIFAR ResNet depth must be 6n+2, got {depth}")
    n = (depth - 2) // 6
    w0, w1, w2, w3 = widths
    stem = nn.Sequential(
        nn.Conv2d(3, w0, 3, padding=1, bias=False), nn.BatchNorm2d(w0), nn.ReLU(inplace=True)
    )
    stages = [stem, make_layer(w0, w1, n, 1), make_layer(w1, w2, n, 2), make_layer(w2, w3, n, 2)]
    net = StagedNet(
        stages, Head(w3, num_classes), arch=arch, num_classes=num_classes, arch_kwargs={}
    )
    init_weights(net)
    return net


def init_weights(net: nn.Module) -> None:
    """Kaiming-normal convs, unit BN, the standard init for these nets."""
    for m in net.modules():
        if isinstance(m, nn.Conv2d):
            nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
        elif isinstance(m, nn.BatchNorm2d):
            nn.init.ones_(m.weight)
            nn.init.zeros_(m.bias)


def _add(name: str, depth: int, widths: tuple[int, int, int, int]) -> None:
    register(name)(lambda num_classes=100: cifar_resnet(depth, widths, num_classes, name))


for _d in (8, 14, 20, 32, 44, 56, 110):
    _add(f"resnet{_d}", _d, (16, 16, 32, 64))
_add("resnet8x4", 8, (32, 64, 128, 256))
_add("resnet32x4", 32, (32, 64, 128, 256))
# A quarter-width resnet8 (channels 4, 4, 8, 16): a weak student for which distillation matters.
_add("resnet8_w025", 8, (4, 4, 8, 16))
