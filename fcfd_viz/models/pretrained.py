"""Pretrained torchvision weights, read from the local torch hub cache; nothing is downloaded.

Weights are named as torchvision names them: ``IMAGENET1K_V1`` (or ``DEFAULT``), or in full,
``ResNet18_Weights.IMAGENET1K_V1``. Their file is the one torchvision itself would download:
``torch.hub.get_dir()/checkpoints/<file name of the weights' url>`` (``$TORCH_HOME/hub``,
by default ``~/.cache/torch/hub``). Copy it there from a machine with internet.

torch and torchvision are imported inside the functions (they are slow to import).
"""

from __future__ import annotations

import os
import warnings
from pathlib import Path
from urllib.parse import urlparse

from fcfd_viz.errors import UserError


class NewClassifierWarning(UserWarning):
    """Pretrained weights had another number of classes: the last classifier layer is new."""


def weight_names(builder: str) -> list[str]:
    """The weights torchvision has for its model ``builder`` (``DEFAULT`` included)."""
    from torchvision.models import get_model_weights

    return list(get_model_weights(builder).__members__)


def resolve_weights(arch: str, builder: str, weights: str):
    """The ``WeightsEnum`` member ``weights`` names for torchvision's ``builder`` (the model
    behind ``arch``), or a one-line :class:`UserError` listing the valid names."""
    from torchvision.models import get_model_weights

    enum = get_model_weights(builder)
    valid = ", ".join(enum.__members__)
    cls, dot, name = weights.rpartition(".")
    if dot and cls != enum.__name__:
        raise UserError(
            f"weights {weights!r} are not {arch}'s: its weights are {enum.__name__}.NAME "
            f"with NAME one of {valid}"
        )
    if name not in enum.__members__:
        raise UserError(f"{arch} has no weights {weights!r}; choose one of {valid}")
    return enum[name]


def weights_file(w) -> Path:
    """Where torchvision keeps the file of weights ``w``: the torch hub cache's checkpoints."""
    import torch

    return Path(torch.hub.get_dir()) / "checkpoints" / os.path.basename(urlparse(w.url).path)


def cached_weights(builder: str) -> list[str]:
    """The weights of torchvision's ``builder`` whose file is in the hub cache, found without
    loading them (``DEFAULT`` left out: it is another name of one of them)."""
    from torchvision.models import get_model_weights

    members = get_model_weights(builder).__members__.items()
    return [n for n, w in members if n != "DEFAULT" and weights_file(w).is_file()]


def load_weights(model, w, arch: str) -> None:
    """Load weights ``w`` from the hub cache into the torchvision ``model`` (built without
    weights, with as many classes as ``w`` has). Never downloads: a missing file is a
    one-line :class:`UserError` naming the file and the folder to put it in."""
    import torch

    path = weights_file(w)
    if not path.is_file():
        raise UserError(
            f"pretrained weights {w} of {arch} not found: put {path.name} (from {w.url}) in "
            f"{path.parent}; fcfd-viz never downloads (set TORCH_HOME to use another cache)"
        )
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
        model.load_state_dict(state)
    except Exception as e:  # a truncated file, another model's weights
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise UserError(f"weights file {path} does not load into {arch}: {first}") from None


def weights_classes(w) -> int:
    """How many classes the classifier of weights ``w`` has."""
    return len(w.meta["categories"])


def say_new_classifier(w, arch: str, num_classes: int) -> None:
    """Warn (:class:`NewClassifierWarning`) that ``arch`` keeps ``w``'s features but gets a
    new, randomly initialised last layer of ``num_classes`` outputs."""
    warnings.warn(
        f"{w} has {weights_classes(w)} classes, {arch} is built with {num_classes}: its "
        "last classifier layer is new (random init), the rest is pretrained",
        NewClassifierWarning,
        stacklevel=3,
    )
