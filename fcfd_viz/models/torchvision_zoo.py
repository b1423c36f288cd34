"""torchvision classifiers as :class:`StagedNet`, registered as ``tv_<torchvision name>``.

Each family is cut where its resolution halves, so every net has 5 stages ending at
H/2 or H/4, H/4, H/8, H/16, H/32 (ResNet: stem, layer1..layer4; ConvNeXt: stem, then its 4
stages). The stages and the head reuse the torchvision model's own modules, so a staged net
computes exactly the logits of the model it came from. The ``tv_*`` builders take
``weights`` (torchvision's names, read from the hub cache: :mod:`fcfd_viz.models.pretrained`).

torchvision is imported inside the functions that need it (it is slow to import).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from functools import partial

from torch import nn

from fcfd_viz.errors import UserError
from fcfd_viz.models import pretrained
from fcfd_viz.models.base import Head, StagedNet
from fcfd_viz.models.registry import no_weights, register


def fit_classes(fc: nn.Linear, num_classes: int) -> nn.Linear:
    """``fc`` when it has ``num_classes`` outputs (keeping its weights), else a fresh
    ``Linear(fc.in_features, num_classes)``."""
    if fc.out_features == num_classes:
        return fc
    return nn.Linear(fc.in_features, num_classes)


def _net(stages, head: Head, arch: str, num_classes: int, post_relu: bool) -> StagedNet:
    return StagedNet(
        stages, head, arch=arch, num_classes=num_classes, post_relu=post_relu, arch_kwargs={}
    )


def _cut(seq: nn.Sequential, ends: Sequence[int]) -> list[nn.Sequential]:
    """``seq`` cut after each index of ``ends`` (the last one is ``len(seq) - 1``)."""
    if ends[-1] != len(seq) - 1:
        raise ValueError(f"cuts {list(ends)} do not end at the last of {len(seq)} layers")
    starts = [0, *(e + 1 for e in ends[:-1])]
    return [seq[a : b + 1] for a, b in zip(starts, ends)]


def stage_torchvision_resnet(model: nn.Module, arch: str, num_classes: int) -> StagedNet:
    """Stage a torchvision ResNet: ``conv1+bn1+relu+maxpool``, layer1..layer4 (5 stages).

    The modules are shared with ``model``, not copied. Its ``fc`` becomes the head's linear
    layer when it already has ``num_classes`` outputs (keeping pretrained weights); otherwise
    a fresh ``Linear(fc.in_features, num_classes)`` replaces it.
    """
    stem = nn.Sequential(model.conv1, model.bn1, model.relu, model.maxpool)  # (N, 64, H/4, W/4)
    # layer1..4: H/4, H/8, H/16, H/32 with 64..512 channels (x4 for bottleneck ResNets)
    stages = [stem, model.layer1, model.layer2, model.layer3, model.layer4]
    head = Head(model.fc.in_features, num_classes, fc=fit_classes(model.fc, num_classes))
    return _net(stages, head, arch, num_classes, post_relu=True)


def stage_features_classifier(
    model: nn.Module, arch: str, num_classes: int, ends: Sequence[int], post_relu: bool
) -> StagedNet:
    """MobileNetV2/V3, EfficientNet: ``features`` cut after each index of ``ends``; the head
    is ``avgpool -> flatten`` then ``classifier`` (dropout + linear, or an MLP)."""
    model.classifier[-1] = fit_classes(model.classifier[-1], num_classes)
    pool = nn.Sequential(getattr(model, "avgpool", nn.AdaptiveAvgPool2d(1)), nn.Flatten(1))
    head = Head(0, num_classes, relu=False, pool=pool, fc=model.classifier)  # (N, D) -> (N, K)
    return _net(_cut(model.features, ends), head, arch, num_classes, post_relu)


def stage_vgg(model: nn.Module, arch: str, num_classes: int) -> StagedNet:
    """VGG: ``features`` cut after each max-pool (H/2 .. H/32, post-ReLU); the head is
    ``avgpool (7x7) -> flatten -> classifier`` (its 3-layer MLP)."""
    ends = [i for i, m in enumerate(model.features) if isinstance(m, nn.MaxPool2d)]
    model.classifier[-1] = fit_classes(model.classifier[-1], num_classes)
    pool = nn.Sequential(model.avgpool, nn.Flatten(1))  # (N, 512 * 7 * 7)
    head = Head(0, num_classes, relu=False, pool=pool, fc=model.classifier)
    return _net(_cut(model.features, ends), head, arch, num_classes, post_relu=True)


def stage_convnext(model: nn.Module, arch: str, num_classes: int) -> StagedNet:
    """ConvNeXt: the patchify stem (H/4), then its 4 stages with their down-sampling
    (H/4 .. H/32); the head is ``avgpool -> LayerNorm2d -> flatten -> linear``."""
    norm, flatten, fc = model.classifier
    pool = nn.Sequential(model.avgpool, norm, flatten)  # (N, C)
    head = Head(0, num_classes, relu=False, pool=pool, fc=fit_classes(fc, num_classes))
    stages = _cut(model.features, [0, 1, 3, 5, 7])
    return _net(stages, head, arch, num_classes, post_relu=False)


def stage_regnet(model: nn.Module, arch: str, num_classes: int) -> StagedNet:
    """RegNet: the stem (H/2), then block1..block4 of the trunk (H/4 .. H/32, post-ReLU);
    the head is ``avgpool -> flatten -> fc``."""
    pool = nn.Sequential(model.avgpool, nn.Flatten(1))
    head = Head(0, num_classes, relu=False, pool=pool, fc=fit_classes(model.fc, num_classes))
    stages = [model.stem, *model.trunk_output.children()]
    return _net(stages, head, arch, num_classes, post_relu=True)


Stager = Callable[[nn.Module, str, int], StagedNet]
_EFFICIENTNET = partial(stage_features_classifier, ends=(1, 2, 3, 5, 8), post_relu=False)

# registry name -> (torchvision builder, how to stage it). Stage outputs at 224x224 input:
# mobilenet_v2 16@112 24@56 32@28 96@14 1280@7; mobilenet_v3_small 16@112 16@56 24@28 48@14
# 576@7; efficientnet_b0 16@112 24@56 40@28 112@14 1280@7; convnext_tiny 96@56 96@56
# 192@28 384@14 768@7; regnet_y_400mf 32@112 48@56 104@28 208@14 440@7; vgg11_bn
# 64@112 128@56 256@28 512@14 512@7.
TORCHVISION: dict[str, tuple[str, Stager]] = {
    **{f"tv_resnet{d}": (f"resnet{d}", stage_torchvision_resnet) for d in (18, 34, 50)},
    "tv_mobilenet_v2": (
        "mobilenet_v2",
        partial(stage_features_classifier, ends=(1, 3, 6, 13, 18), post_relu=False),
    ),
    "tv_mobilenet_v3_small": (
        "mobilenet_v3_small",
        partial(stage_features_classifier, ends=(0, 1, 3, 8, 12), post_relu=False),
    ),
    "tv_mobilenet_v3_large": (
        "mobilenet_v3_large",
        partial(stage_features_classifier, ends=(1, 3, 6, 12, 16), post_relu=False),
    ),
    "tv_efficientnet_b0": ("efficientnet_b0", _EFFICIENTNET),
    "tv_convnext_tiny": ("convnext_tiny", stage_convnext),
    "tv_regnet_y_400mf": ("regnet_y_400mf", stage_regnet),
    "tv_vgg11_bn": ("vgg11_bn", stage_vgg),
}


def builder_of(arch: str) -> str:
    """The torchvision builder behind ``arch``, or a :class:`UserError` when ``arch`` takes
    no pretrained weights."""
    if arch not in TORCHVISION:
        raise no_weights(arch)
    return TORCHVISION[arch][0]


def torchvision_model(arch: str, num_classes: int | None = None, weights: str | None = None):
    """The unstaged torchvision model behind ``arch`` (its own module names, e.g.
    ``layer3.1``): random init, or the pretrained ``weights``. ``num_classes`` None: the
    weights' class count (1000 without weights); another count than the weights' gets a
    new last classifier layer, with a :class:`~fcfd_viz.models.pretrained.NewClassifierWarning`."""
    from torchvision import models as tvm

    builder = builder_of(arch)
    if weights is None:
        return tvm.get_model(builder, weights=None, num_classes=num_classes or 1000), None
    w = pretrained.resolve_weights(arch, builder, weights)
    model = tvm.get_model(builder, weights=None, num_classes=pretrained.weights_classes(w))
    pretrained.load_weights(model, w, arch)
    if num_classes is not None and pretrained.weights_classes(w) != num_classes:
        pretrained.say_new_classifier(w, arch, num_classes)
    return model, w


def build_torchvision(arch: str, num_classes: int = 1000, weights: str | None = None) -> StagedNet:
    """The staged ``arch`` (a key of :data:`TORCHVISION`) built on :func:`torchvision_model`."""
    model, w = torchvision_model(arch, num_classes, weights)
    net = TORCHVISION[arch][1](model, arch, num_classes)
    if w is not None:
        net.weights = str(w)  # e.g. "ResNet18_Weights.IMAGENET1K_V1"
    return net


for _arch in TORCHVISION:
    register(_arch)(partial(build_torchvision, _arch))


def imagenet_arch(name: str) -> bool:
    """Whether ``name`` is an ImageNet architecture whose preprocessing
    :func:`image_transform` knows (``tv_*`` and ``mobilenet_v1``)."""
    return name in TORCHVISION or name == "mobilenet_v1"


def image_transform(name: str, weights: str | None = None) -> Callable:
    """What a ``name`` network expects of an image: a callable PIL.Image -> float tensor
    (C, H, W). With ``weights``: the weights' own transforms (``weights.transforms()``);
    without: resize 256, center-crop 224 and ImageNet normalisation (tv_* archs and
    mobilenet_v1). Other architectures raise a :class:`UserError`."""
    from torchvision import transforms

    from fcfd_viz.data.datasets import IMAGENET_STATS
    from fcfd_viz.models import registry

    registry.check_name(name)
    if weights is not None:
        builder = builder_of(name)
        return pretrained.resolve_weights(name, builder, weights).transforms()
    if not imagenet_arch(name):
        raise UserError(
            f"image_transform knows ImageNet architectures (tv_*, mobilenet_v1), not {name}: "
            "transform images as the data it was trained on (fcfd_viz.data.datasets)"
        )
    mean, std = IMAGENET_STATS
    return transforms.Compose(
        [
            transforms.Resize(256),
            transforms.CenterCrop(224),
            transforms.ToTensor(),  # (3, 224, 224) in [0, 1]
            transforms.Normalize(mean, std),
        ]
    )
