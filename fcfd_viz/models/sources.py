"""Networks from outside a run, for the probes (``fcfd probe --model``, the Sensitivity
page): torchvision's models with pretrained weights from the hub cache, and architectures
the user's modules register (built fresh, random init).

>>> pretrained_in_cache()                                         # doctest: +SKIP
[('tv_mobilenet_v3_small', 'IMAGENET1K_V1')]
>>> net = probe_network("tv_resnet18", "IMAGENET1K_V1", staged=False)  # doctest: +SKIP
>>> default_layer(net)                                            # doctest: +SKIP
'layer3.0'
"""

from __future__ import annotations

from torch import nn

from fcfd_viz.models import pretrained, registry, torchvision_zoo


def pretrained_in_cache() -> list[tuple[str, str]]:
    """``(arch, weights)`` of every ``tv_*`` architecture whose weights file is in the torch
    hub cache (nothing is loaded or downloaded)."""
    return [
        (arch, w)
        for arch, (builder, _) in torchvision_zoo.TORCHVISION.items()
        for w in pretrained.cached_weights(builder)
    ]


def probe_network(
    arch: str, weights: str | None = None, num_classes: int | None = None, staged: bool = True
) -> nn.Module:
    """The network ``arch`` with ``weights`` (None: random init), in eval mode.

    ``staged`` False makes a ``tv_*`` architecture the unstaged torchvision model itself (its
    own layer names, e.g. ``layer3.1``: the staged net shares its modules and computes the
    same logits); other architectures are always their registered staged net. ``arch`` and
    ``weights`` are set on the network (the probe report names them). ``num_classes`` None:
    the weights' class count, else 1000 for ``tv_*`` and the builder's default for others.
    """
    if arch in torchvision_zoo.TORCHVISION and not staged:
        model, w = torchvision_zoo.torchvision_model(arch, num_classes, weights)
        model.arch, model.weights = arch, None if w is None else str(w)
        return model.eval()
    kwargs = {"num_classes": num_classes} if num_classes else {}
    if weights is not None and not num_classes and arch in torchvision_zoo.TORCHVISION:
        kwargs["num_classes"] = 1000  # ImageNet weights keep their own classifier
    return registry.create(arch, weights=weights, **kwargs).eval()


def layer_names(model: nn.Module) -> list[str]:
    """The dotted names of every submodule of ``model`` (what a layer cut takes)."""
    return [name for name, _ in model.named_modules() if name]


def default_layer(model: nn.Module) -> str:
    """A mid-depth block: the middle one of the containers one level down (``layer3.0`` of
    a ResNet-18, ``features.6`` of a MobileNetV3), else the middle of all layers."""
    mods = dict(model.named_modules())
    blocks = [n for n, m in mods.items() if n.count(".") == 1 and any(m.children())]
    names = blocks or layer_names(model)
    if not names:
        raise ValueError(f"{type(model).__name__} has no layers to cut at")
    return names[len(names) // 2]
