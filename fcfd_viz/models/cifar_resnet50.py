"""Bottleneck ResNet-50 for CIFAR, as in the CRD benchmark (``resnet50`` of its resnetv2).

Like the ImageNet ResNet-50 (blocks 3, 4, 6, 3; expansion 4) but with a stride-1 3x3 stem
and no max pool. Stages, with spatial sizes at 32x32 input: stem (64 ch, 32), layer1 (256,
32), layer2 (512, 16), layer3 (1024, 8), layer4 (2048, 4). Stage outputs are post-ReLU.
"""

from __future__ import annotations

from torch import Tensor, nn

from fcfd_viz.models.base import Head, StagedNet
from fcfd_viz.models.cifar_resnet import conv_bn, init_weights
from fcfd_viz.models.registry import register


class Bottleneck(nn.Module):
    """``1x1 -> 3x3 (stride) -> 1x1 (4x wider)`` with a projection shortcut when the shape
    changes; ReLU after the sum."""

    expansion = 4

    def __init__(self, cin: int, planes: int, stride: int = 1) -> None:
        super().__init__()
        cout = planes * self.expansion
        self.body = nn.Sequential(
            conv_bn(cin, planes, 1),
            nn.ReLU(inplace=True),
            conv_bn(planes, planes, 3, stride),
            nn.ReLU(inplace=True),
            conv_bn(planes, cout, 1),
        )
        self.shortcut = (
            conv_bn(cin, cout, 1, stride) if stride != 1 or cin != cout else nn.Identity()
        )
        self.relu = nn.ReLU(inplace=True)

    def forward(self, x: Tensor) -> Tensor:
        return self.relu(self.body(x) + self.shortcut(x))


def bottleneck_layer(cin: int, planes: int, blocks: int, stride: int) -> nn.Sequential:
    layers = [Bottleneck(cin, planes, stride)]
    layers += [Bottleneck(planes * 4, planes) for _ in range(blocks - 1)]
    return nn.Sequential(*layers)


def cifar_resnet50(
    num_classes: int, arch: str, blocks: tuple[int, ...] = (3, 4, 6, 3)
) -> StagedNet:
    stem = nn.Sequential(conv_bn(3, 64), nn.ReLU(inplace=True))  # (N, 64, H, W)
    stages, cin = [stem], 64
    for i, (planes, n) in enumerate(zip((64, 128, 256, 512), blocks)):
        # (N, 256, H, W), (N, 512, H/2, W/2), (N, 1024, H/4, W/4), (N, 2048, H/8, W/8)
        stages.append(bottleneck_layer(cin, planes, n, 1 if i == 0 else 2))
        cin = planes * 4
    net = StagedNet(
        stages, Head(cin, num_classes), arch=arch, num_classes=num_classes, arch_kwargs={}
    )
    init_weights(net)
    return net


register("resnet50")(lambda num_classes=100: cifar_resnet50(num_classes, "resnet50"))
