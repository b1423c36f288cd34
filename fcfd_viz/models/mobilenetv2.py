"""CIFAR MobileNetV2 (Sandler et al. 2018) as in the CRD benchmark: width 0.5, expansion 6.

As in CRD, the stem is a stride-2 3x3 conv, every inverted residual has its 1x1 expansion
(also at t = 1) and uses ReLU, and the head widens to 1280 channels. Stages, with spatial
sizes at 32x32 input: stem (16), settings 1-2 (16), setting 3 (8), settings 4-5 (4),
settings 6-7 + the 1x1 conv to 1280 (2). These line up (equal or 2x) with vgg13 (32, 16, 8,
4, 4) and resnet50 (32, 32, 16, 8, 4).

Stages are cut where the FCFD authors cut them: the stem and the last stage end at their BN,
before the ReLU (stage 1 and the head apply it); stages 1-3 end at linear bottlenecks. Stage
inputs are pre-activation (``post_relu=False``): bridges into it end without a LeakyReLU.
"""

from __future__ import annotations

from torch import Tensor, nn

from fcfd_viz.models.base import Head, StagedNet
from fcfd_viz.models.cifar_resnet import init_weights
from fcfd_viz.models.registry import register

# (expansion t, output channels c, repeats n, first stride s) at width 1.0, from the paper.
SETTINGS = [
    (1, 16, 1, 1),
    (6, 24, 2, 1),
    (6, 32, 3, 2),
    (6, 64, 4, 2),
    (6, 96, 3, 1),
    (6, 160, 3, 2),
    (6, 320, 1, 1),
]
# Which settings form stages 1..4 (the stem is stage 0).
STAGE_SETTINGS = [(0, 1), (2,), (3, 4), (5, 6)]


def conv_bn(cin: int, cout: int, k: int, stride: int = 1, groups: int = 1) -> list[nn.Module]:
    return [
        nn.Conv2d(cin, cout, k, stride, k // 2, groups=groups, bias=False),
        nn.BatchNorm2d(cout),
    ]


def conv_bn_relu(cin: int, cout: int, k: int, stride: int = 1, groups: int = 1) -> list[nn.Module]:
    return [*conv_bn(cin, cout, k, stride, groups), nn.ReLU(inplace=True)]


class InvertedResidual(nn.Module):
    """``1x1 expand -> 3x3 depthwise (stride) -> 1x1 linear projection``, identity shortcut
    when the shape is kept."""

    def __init__(self, cin: int, cout: int, stride: int, t: int) -> None:
        super().__init__()
        mid = cin * t
        self.body = nn.Sequential(
            *conv_bn_relu(cin, mid, 1),
            *conv_bn_relu(mid, mid, 3, stride, groups=mid),
            *conv_bn(mid, cout, 1),
        )
        self.residual = stride == 1 and cin == cout

    def forward(self, x: Tensor) -> Tensor:
        return x + self.body(x) if self.residual else self.body(x)


def mobilenetv2(
    num_classes: int, arch: str, width: float = 0.5, last_channel: int = 1280
) -> StagedNet:
    """CRD's CIFAR MobileNetV2 (``mobile_half``) with width multiplier ``width``."""
    cin = int(32 * width)
    stages: list[nn.Sequential] = [nn.Sequential(*conv_bn(3, cin, 3, 2))]  # (N, 16, H/2, W/2)
    for i, group in enumerate(STAGE_SETTINGS):
        # the stem ends before its ReLU: stage 1 applies it (not in place: the stem's output
        # is a feature the losses still read)
        layers: list[nn.Module] = [nn.ReLU()] if i == 0 else []
        for i in group:
            t, c, n, s = SETTINGS[i]
            cout = int(c * width)
            for j in range(n):
                layers.append(InvertedResidual(cin, cout, s if j == 0 else 1, t))
                cin = cout
        stages.append(nn.Sequential(*layers))
    # (N, 12, H/2), (N, 16, H/4), (N, 48, H/8), then (N, 1280, H/16) after the 1x1 widening,
    # which ends at its BN: the head applies the ReLU
    stages[-1].extend(conv_bn(cin, last_channel, 1))
    net = StagedNet(
        stages,
        Head(last_channel, num_classes),
        arch=arch,
        num_classes=num_classes,
        post_relu=False,
        arch_kwargs={},
    )
    init_weights(net)
    return net


register("mobilenetv2")(lambda num_classes=100: mobilenetv2(num_classes, "mobilenetv2"))
