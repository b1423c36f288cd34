"""VGG with BatchNorm for CIFAR, as in the CRD benchmark (Tian et al. 2020).

Five blocks of ``conv3x3 (with bias) + BN + ReLU`` with 64, 128, 256, 512, 512 channels.
Stage 0 is block 0 at full resolution; stages 1-3 are ``maxpool 2x2 -> block``. As in CRD at
32x32 input, there is no pool before block 4 (CRD pools there only for 64x64 inputs), so
the last two stages share a resolution: 32, 16, 8, 4, 4. The final pool and linear classifier
are the :class:`Head`.

Stages are cut where the FCFD authors cut them: every stage output is taken *before* its
final ReLU (the BN output), and the next stage or the head applies that ReLU. So stage inputs
are pre-activation (``post_relu=False``): bridges into a VGG end without a LeakyReLU.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import cast

from torch import nn

from fcfd_viz.models.base import Head, StagedNet
from fcfd_viz.models.cifar_resnet import init_weights
from fcfd_viz.models.registry import register

# Channels of the convs in each of the five blocks.
CONFIGS: dict[str, list[list[int]]] = {
    "vgg8": [[64], [128], [256], [512], [512]],
    "vgg11": [[64], [128], [256, 256], [512, 512], [512, 512]],
    "vgg13": [[64, 64], [128, 128], [256, 256], [512, 512], [512, 512]],
    "vgg16": [[64, 64], [128, 128], [256, 256, 256], [512, 512, 512], [512, 512, 512]],
    "vgg19": [[64, 64], [128, 128], [256] * 4, [512] * 4, [512] * 4],
}


def vgg_stage(cin: int, widths: Sequence[int], relu_in: bool, pool: bool) -> nn.Sequential:
    """``[ReLU] [maxpool 2x2]``, then ``conv3x3 + BN + ReLU`` for each width, without the
    last ReLU: the stage ends at its final BN."""
    # not in place: the ReLU must not overwrite the previous stage's output (a feature the
    # losses and probes still read)
    layers: list[nn.Module] = [nn.ReLU()] if relu_in else []
    if pool:
        layers.append(nn.MaxPool2d(2, 2))
    for w in widths:
        layers += [nn.Conv2d(cin, w, 3, padding=1), nn.BatchNorm2d(w), nn.ReLU(inplace=True)]
        cin = w
    return nn.Sequential(*layers[:-1])


def vgg(cfg: Sequence[Sequence[int]], num_classes: int, arch: str) -> StagedNet:
    """A five-stage VGG-BN whose block ``i`` has convs of widths ``cfg[i]``."""
    stages, cin = [], 3
    for i, widths in enumerate(cfg):
        # (N, 64, H, W), (N, 128, H/2, W/2), (N, 256, H/4, W/4), then 512 at H/8 twice
        stages.append(vgg_stage(cin, widths, relu_in=i > 0, pool=i in (1, 2, 3)))
        cin = widths[-1]
    net = StagedNet(
        stages,
        Head(cin, num_classes),
        arch=arch,
        num_classes=num_classes,
        post_relu=False,
        arch_kwargs={},
    )
    init_weights(net)
    for m in net.modules():
        if isinstance(m, (nn.Conv2d, nn.Linear)) and m.bias is not None:
            nn.init.zeros_(m.bias)
    nn.init.normal_(cast(nn.Linear, net.head.fc).weight, std=0.01)
    return net


def _add(name: str) -> None:
    register(name)(lambda num_classes=100: vgg(CONFIGS[name], num_classes, name))


for _name in CONFIGS:
    _add(_name)
