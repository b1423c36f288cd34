"""Wide ResNets for CIFAR (Zagoruyko & Komodakis 2016), pre-activation blocks, no dropout.

``wrn_{depth}_{k}`` has ``n = (depth - 4) / 6`` blocks per group and widths 16k, 32k, 64k.
Stages: stem (a bare 3x3 conv, 16 channels), block1, block2 (stride 2), block3 (stride 2).
Blocks start with BN + ReLU, so stage outputs are pre-activation sums (``post_relu=False``).
As in the FCFD authors' code, the network's final BN closes the last stage and the head
applies its ReLU: the last stage ends at that BN, before the ReLU.
"""

from __future__ import annotations

from torch import Tensor, nn

from fcfd_viz.models.base import Head, StagedNet
from fcfd_viz.models.cifar_resnet import init_weights
from fcfd_viz.models.registry import register


def bn_relu(c: int) -> nn.Sequential:
    return nn.Sequential(nn.BatchNorm2d(c), nn.ReLU(inplace=True))


class PreActBlock(nn.Module):
    """``BN-ReLU-conv3x3-BN-ReLU-conv3x3`` plus a shortcut (1x1 conv on the activated input
    when the shape changes, identity on the raw input otherwise)."""

    def __init__(self, cin: int, cout: int, stride: int = 1) -> None:
        super().__init__()
        self.pre = bn_relu(cin)
        self.body = nn.Sequential(
            nn.Conv2d(cin, cout, 3, stride=stride, padding=1, bias=False),
            bn_relu(cout),
            nn.Conv2d(cout, cout, 3, padding=1, bias=False),
        )
        self.equal = stride == 1 and cin == cout
        self.shortcut = None if self.equal else nn.Conv2d(cin, cout, 1, stride=stride, bias=False)

    def forward(self, x: Tensor) -> Tensor:
        a = self.pre(x)
        return self.body(a) + (x if self.shortcut is None else self.shortcut(a))


def wide_group(cin: int, cout: int, blocks: int, stride: int) -> nn.Sequential:
    layers = [PreActBlock(cin, cout, stride)]
    layers += [PreActBlock(cout, cout) for _ in range(blocks - 1)]
    return nn.Sequential(*layers)


def wide_resnet(depth: int, k: int, num_classes: int, arch: str) -> StagedNet:
    """A ``depth``-layer Wide ResNet with widening factor ``k`` (depth must be 6n+4)."""
    if (depth - 4) % 6:
        raise ValueError(f"Wide ResNet depth must be 6n+4, got {depth}")
    n = (depth - 4) // 6
    w1, w2, w3 = 16 * k, 32 * k, 64 * k
    stem = nn.Conv2d(3, 16, 3, padding=1, bias=False)  # (N, 16, H, W), no BN: blocks pre-activate
    stages = [
        stem,
        wide_group(16, w1, n, 1),  # (N, 16k, H, W)
        wide_group(w1, w2, n, 2),  # (N, 32k, H/2, W/2)
        nn.Sequential(wide_group(w2, w3, n, 2), nn.BatchNorm2d(w3)),  # (N, 64k, H/4, W/4), pre-ReLU
    ]
    net = StagedNet(
        stages,
        Head(w3, num_classes),
        arch=arch,
        num_classes=num_classes,
        post_relu=False,
        arch_kwargs={},
    )
    init_weights(net)
    return net


def _add(name: str, depth: int, k: int) -> None:
    register(name)(lambda num_classes=100: wide_resnet(depth, k, num_classes, name))


for _d, _k in ((16, 1), (16, 2), (40, 1), (40, 2)):
    _add(f"wrn_{_d}_{_k}", _d, _k)
