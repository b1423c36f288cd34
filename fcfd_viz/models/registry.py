"""Name -> constructor registry for staged networks."""

from __future__ import annotations

import difflib
from collections.abc import Callable

from fcfd_viz.errors import UserError
from fcfd_viz.models.base import StagedNet

_REGISTRY: dict[str, Callable[..., StagedNet]] = {}


def register(name: str) -> Callable[[Callable[..., StagedNet]], Callable[..., StagedNet]]:
    """Decorator: ``@register("resnet8")`` makes ``create("resnet8")`` call the function.

    The function takes ``num_classes`` (and optional keyword arguments) and returns a
    :class:`StagedNet` whose ``arch`` is ``name``. Register your own nets the same way so
    their checkpoints load by name.
    """

    def deco(fn: Callable[..., StagedNet]) -> Callable[..., StagedNet]:
        if name in _REGISTRY:
            raise ValueError(f"model {name!r} is registered twice")
        _REGISTRY[name] = fn
        return fn

    return deco


def names() -> list[str]:
    """All registered architecture names, sorted."""
    return sorted(_REGISTRY)


def check_name(name: str) -> None:
    """Raise a :class:`UserError` listing close matches when ``name`` is unknown."""
    if name not in _REGISTRY:
        close = difflib.get_close_matches(name, names(), n=4, cutoff=0.5)
        hint = f" Did you mean: {', '.join(close)}?" if close else ""
        raise UserError(f"unknown architecture {name!r}.{hint} See `fcfd models` for all names.")


def create(name: str, num_classes: int = 100, **kwargs) -> StagedNet:
    """Build a registered staged network by name."""
    check_name(name)
    net = _REGISTRY[name](num_classes=num_classes, **kwargs)
    net.arch = name
    return net
