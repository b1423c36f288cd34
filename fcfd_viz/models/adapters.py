"""Other networks as :class:`StagedNet`: :func:`from_stages` for your own ``nn.Sequential``
stages and an ImageNet MobileNet (v1). torchvision's models: :mod:`fcfd_viz.models.torchvision_zoo`
(``stage_torchvision_resnet`` is re-exported here); any traceable network cut at module
names: :func:`fcfd_viz.models.stage.stage`.
"""

from __future__ import annotations

from collections.abc import Sequence

from torch import nn

from fcfd_viz.errors import UserError
from fcfd_viz.models.base import Head, StagedNet
from fcfd_viz.models.cifar_resnet import init_weights
from fcfd_viz.models.registry import register
from fcfd_viz.models.torchvision_zoo import stage_torchvision_resnet  # noqa: F401 (its old home)


def from_stages(
    stages: Sequence[nn.Module],
    num_classes: int,
    feature_channels: int,
    arch: str = "custom",
    post_relu: bool = True,
) -> StagedNet:
    """Wrap your own stages (stem first) in a :class:`StagedNet`; no ``forward`` to write.

    Each stage takes the previous stage's output; the head is ``relu -> global average
    pool -> linear(feature_channels, num_classes)`` on the last stage's output. Set
    ``post_relu=False`` when stage outputs are linear (no ReLU at their end)::

        stages = [
            nn.Sequential(nn.Conv2d(3, 16, 3, padding=1), nn.BatchNorm2d(16), nn.ReLU()),
            nn.Sequential(nn.Conv2d(16, 32, 3, stride=2, padding=1), nn.BatchNorm2d(32), nn.ReLU()),
        ]
        net = from_stages(stages, num_classes=10, feature_channels=32, arch="tiny")
        net.feature_shapes((3, 32, 32))  # [(16, 32, 32), (32, 16, 16)]

    A net built this way is not in the registry, so a checkpoint of it cannot be rebuilt by
    name. To make checkpoints load, register a builder under the same ``arch``::

        @models.register("tiny")
        def tiny(num_classes=10):
            return from_stages(make_tiny_stages(), num_classes, 32, arch="tiny")
    """
    stages = list(stages)
    if not stages:
        raise UserError("from_stages needs at least one stage (the stem).")
    bad = [type(s).__name__ for s in stages if not isinstance(s, nn.Module)]
    if bad:
        raise UserError(f"from_stages: every stage must be an nn.Module, got {', '.join(bad)}.")
    return StagedNet(
        stages,
        Head(feature_channels, num_classes),
        arch=arch,
        num_classes=num_classes,
        post_relu=post_relu,
    )


def _conv_bn_relu(cin: int, cout: int, k: int, stride: int = 1, groups: int = 1) -> list[nn.Module]:
    return [
        nn.Conv2d(cin, cout, k, stride, k // 2, groups=groups, bias=False),
        nn.BatchNorm2d(cout),
        nn.ReLU(inplace=True),
    ]


def _separable(cin: int, cout: int, stride: int) -> nn.Sequential:
    """Depthwise 3x3 (stride) + BN + ReLU, then pointwise 1x1 + BN + ReLU."""
    return nn.Sequential(
        *_conv_bn_relu(cin, cin, 3, stride, groups=cin), *_conv_bn_relu(cin, cout, 1)
    )


# (output channels, stride) of the 13 depthwise-separable layers, grouped into stages 1..4
# as in the FCFD authors' ImageNet MobileNet; stage 0 is the stride-2 3x3 stem conv alone.
_MOBILENET_V1 = [
    [],  # the stem: (N, 32, H/2, W/2)
    [(64, 1), (128, 2), (128, 1)],  # (N, 128, H/4, W/4)
    [(256, 2), (256, 1)],  # (N, 256, H/8, W/8)
    [(512, 2)] + [(512, 1)] * 5,  # (N, 512, H/16, W/16)
    [(1024, 2), (1024, 1)],  # (N, 1024, H/32, W/32)
]


def mobilenet_v1(num_classes: int = 1000, arch: str = "mobilenet_v1") -> StagedNet:
    """ImageNet MobileNet (Howard et al. 2017), width 1.0, as 5 stages cut where the FCFD
    authors cut it (H/2, H/4, H/8, H/16, H/32: each equal to or twice tv_resnet50's
    H/4, H/4, H/8, H/16, H/32). Stage outputs are post-ReLU."""
    stages, cin = [], 32
    for i, group in enumerate(_MOBILENET_V1):
        layers: list[nn.Module] = _conv_bn_relu(3, 32, 3, 2) if i == 0 else []
        for cout, stride in group:
            layers.append(_separable(cin, cout, stride))
            cin = cout
        stages.append(nn.Sequential(*layers))
    net = StagedNet(
        stages, Head(cin, num_classes), arch=arch, num_classes=num_classes, arch_kwargs={}
    )
    init_weights(net)
    return net


register("mobilenet_v1")(lambda num_classes=1000: mobilenet_v1(num_classes))
