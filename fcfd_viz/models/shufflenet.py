"""CIFAR ShuffleNetV1 (Zhang et al. 2018) and V2 (Ma et al. 2018) as in the CRD benchmark.

Both are four stages: a stem at full resolution, then three stride-2 stages, so at 32x32
input the sizes are 32, 16, 8, 4 and they pair with resnet32x4 / wrn_40_2 (32, 32, 16, 8).
``shufflev1``: 1x1 stem (24 ch), groups 3, stages of 240, 480, 960 channels (4, 8, 4 units).
``shufflev2``: 1x1 stem (24 ch, as in CRD and the FCFD authors' code), net size 1 (116, 232,
464 channels, 4, 8, 4 units), and the final 1x1 conv to 1024 + BN + ReLU closes the last stage.

Stages are cut where the FCFD authors cut them. ShuffleNetV1: every stage output is taken
*before* its final ReLU (each unit applies ReLU to its input, the head to the last stage's
output), so its stage inputs are pre-activation (``post_relu=False``). ShuffleNetV2: stage
outputs are post-ReLU.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from fcfd_viz.models.base import Head, StagedNet
from fcfd_viz.models.cifar_resnet import init_weights
from fcfd_viz.models.registry import register


def channel_shuffle(x: Tensor, groups: int) -> Tensor:
    """Interleave the channels of ``groups`` groups: (N, g*c, H, W) -> same shape."""
    n, c, h, w = x.shape
    return x.view(n, groups, c // groups, h, w).transpose(1, 2).reshape(n, c, h, w)


def conv_bn(cin: int, cout: int, k: int, stride: int = 1, groups: int = 1) -> list[nn.Module]:
    return [
        nn.Conv2d(cin, cout, k, stride, k // 2, groups=groups, bias=False),
        nn.BatchNorm2d(cout),
    ]


class ShuffleV1Unit(nn.Module):
    """ReLU of the input, then grouped 1x1 -> shuffle -> 3x3 depthwise (stride) -> grouped 1x1.
    Stride 1 adds the (activated) input; stride 2 concatenates its 3x3 average pool. The sum is
    returned before any ReLU: the next unit, or the head, applies it."""

    def __init__(self, cin: int, cout: int, stride: int, groups: int) -> None:
        super().__init__()
        self.stride = stride
        mid = cout // 4
        self.g1 = 1 if cin == 24 else groups  # the first unit's input (the stem) is not grouped
        self.reduce = nn.Sequential(*conv_bn(cin, mid, 1, groups=self.g1), nn.ReLU(inplace=True))
        self.rest = nn.Sequential(
            *conv_bn(mid, mid, 3, stride, groups=mid),
            nn.ReLU(inplace=True),
            *conv_bn(mid, cout, 1, groups=groups),
        )
        self.pool = nn.AvgPool2d(3, stride=2, padding=1) if stride == 2 else None

    def forward(self, x: Tensor) -> Tensor:
        x = torch.relu(x)  # not in place: x is the previous stage's output, a feature
        out = self.rest(channel_shuffle(self.reduce(x), self.g1))
        return out + x if self.pool is None else torch.cat([out, self.pool(x)], 1)


def shufflenet_v1(
    num_classes: int, arch: str, widths=(240, 480, 960), units=(4, 8, 4), groups: int = 3
) -> StagedNet:
    stages: list[nn.Module] = [nn.Sequential(*conv_bn(3, 24, 1))]  # ends before its ReLU
    cin = 24  # stem: (N, 24, H, W)
    for cout, n in zip(widths, units):
        # the stride-2 unit computes cout - cin channels and concatenates its pooled input
        layers = [ShuffleV1Unit(cin, cout - cin, 2, groups)]
        layers += [ShuffleV1Unit(cout, cout, 1, groups) for _ in range(n - 1)]
        stages.append(nn.Sequential(*layers))  # (N, 240, H/2), (N, 480, H/4), (N, 960, H/8)
        cin = cout
    net = StagedNet(
        stages,
        Head(cin, num_classes),
        arch=arch,
        num_classes=num_classes,
        post_relu=False,
        arch_kwargs={},
    )
    init_weights(net)
    return net


class ShuffleV2Unit(nn.Module):
    """Split the channels in half, run ``1x1 -> 3x3 depthwise -> 1x1`` on one half,
    concatenate with the untouched half, shuffle."""

    def __init__(self, c: int) -> None:
        super().__init__()
        h = c // 2
        self.split = h  # (not `half`: that is nn.Module.half())
        self.branch = nn.Sequential(
            *conv_bn(h, h, 1),
            nn.ReLU(inplace=True),
            *conv_bn(h, h, 3, groups=h),
            *conv_bn(h, h, 1),
            nn.ReLU(inplace=True),
        )

    def forward(self, x: Tensor) -> Tensor:
        keep, work = x[:, : self.split], x[:, self.split :]
        return channel_shuffle(torch.cat([keep, self.branch(work)], 1), 2)


class ShuffleV2Down(nn.Module):
    """Stride-2 unit: two branches, each producing half of ``cout``, concatenated, shuffled."""

    def __init__(self, cin: int, cout: int) -> None:
        super().__init__()
        h = cout // 2
        self.left = nn.Sequential(
            *conv_bn(cin, cin, 3, 2, groups=cin),
            *conv_bn(cin, h, 1),
            nn.ReLU(inplace=True),
        )
        self.right = nn.Sequential(
            *conv_bn(cin, h, 1),
            nn.ReLU(inplace=True),
            *conv_bn(h, h, 3, 2, groups=h),
            *conv_bn(h, h, 1),
            nn.ReLU(inplace=True),
        )

    def forward(self, x: Tensor) -> Tensor:
        return channel_shuffle(torch.cat([self.left(x), self.right(x)], 1), 2)


def shufflenet_v2(
    num_classes: int, arch: str, widths=(116, 232, 464), units=(3, 7, 3), last_channel: int = 1024
) -> StagedNet:
    """``units`` counts the stride-1 units after each stage's stride-2 unit (CRD's convention)."""
    stages: list[nn.Sequential] = [nn.Sequential(*conv_bn(3, 24, 1), nn.ReLU(inplace=True))]
    cin = 24  # stem (1x1 conv): (N, 24, H, W)
    for cout, n in zip(widths, units):
        # (N, 116, H/2), (N, 232, H/4), (N, 464, H/8)
        stages.append(
            nn.Sequential(ShuffleV2Down(cin, cout), *[ShuffleV2Unit(cout) for _ in range(n)])
        )
        cin = cout
    stages[-1].extend([*conv_bn(cin, last_channel, 1), nn.ReLU(inplace=True)])  # (N, 1024, H/8)
    net = StagedNet(
        stages, Head(last_channel, num_classes), arch=arch, num_classes=num_classes, arch_kwargs={}
    )
    init_weights(net)
    return net


register("shufflev1")(lambda num_classes=100: shufflenet_v1(num_classes, "shufflev1"))
register("shufflev2")(lambda num_classes=100: shufflenet_v2(num_classes, "shufflev2"))
