"""``fcfd models``: the architectures, with the pretrained weights of those that take them."""

from __future__ import annotations

import argparse


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "models", help="list architectures (and the pretrained weights those that take them have)"
    )
    p.set_defaults(func=cmd_models)


def cmd_models(args: argparse.Namespace) -> int:
    from fcfd_viz import models
    from fcfd_viz.models import pretrained, torchvision_zoo

    names = models.names()
    width = max(map(len, names))
    for name in names:
        line = name
        if name in torchvision_zoo.TORCHVISION:
            weights = pretrained.weight_names(torchvision_zoo.builder_of(name))
            line = f"{name:{width}s}  --weights {' | '.join(weights)}"
        elif models.takes_weights(name):
            line = f"{name:{width}s}  --weights NAME"
        print(line.rstrip())
    return 0
