"""Name -> constructor registry for staged networks."""

from __future__ import annotations

import difflib
import inspect
from collections.abc import Callable

from fcfd_viz.errors import UserError
from fcfd_viz.models.base import StagedNet

_REGISTRY: dict[str, Callable[..., StagedNet]] = {}


def register(name: str) -> Callable[[Callable[..., StagedNet]], Callable[..., StagedNet]]:
    """Decorator: ``@register("resnet8")`` makes ``create("resnet8")`` call the function.

    The function takes ``num_classes`` (and optional keyword arguments) and returns a
    :class:`StagedNet` whose ``arch`` is ``name``. Register your own nets the same way so
    their checkpoints load by name; a function with a ``weights`` parameter takes
    pretrained weights (``create(name, weights=...)``, ``fcfd train-teacher --weights``).
    Modules of yours reach the CLI and the app through ``fcfd --import MODULE``,
    ``FCFD_IMPORT`` or an entry point (:mod:`fcfd_viz.io.plugins`).
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


def user_names() -> list[str]:
    """Registered names whose builder is not fcfd-viz's own (added by the user's modules)."""
    return [n for n in names() if not _module_of(_REGISTRY[n]).startswith("fcfd_viz.")]


def _module_of(fn: Callable) -> str:
    return getattr(getattr(fn, "func", fn), "__module__", None) or ""  # a partial: its func


def takes_weights(name: str) -> bool:
    """Whether the builder of ``name`` takes pretrained ``weights``."""
    check_name(name)
    return "weights" in inspect.signature(_REGISTRY[name]).parameters


def no_weights(name: str) -> UserError:
    """The error for pretrained weights asked of an architecture that takes none."""
    return UserError(
        f"{name} takes no pretrained weights: weights apply to the tv_* architectures "
        "(`fcfd models` lists which take them)"
    )


def check_name(name: str) -> None:
    """Raise a :class:`UserError` listing close matches when ``name`` is unknown (after
    importing the modules ``FCFD_IMPORT`` and the ``fcfd_viz.models`` entry points name)."""
    if name not in _REGISTRY:
        from fcfd_viz.io.plugins import load_plugins

        load_plugins()
    if name not in _REGISTRY:
        close = difflib.get_close_matches(name, names(), n=4, cutoff=0.5)
        hint = f" Did you mean: {', '.join(close)}?" if close else ""
        raise UserError(
            f"unknown architecture {name!r}.{hint} See `fcfd models` for all names; "
            "a model of yours needs `fcfd --import MODULE` (or FCFD_IMPORT)."
        )


def create(name: str, num_classes: int = 100, weights: str | None = None, **kwargs) -> StagedNet:
    """Build a registered staged network by name; ``weights`` names pretrained weights for
    the architectures that take them (``tv_*``: torchvision's names, e.g. ``IMAGENET1K_V1``,
    read from the torch hub cache, never downloaded)."""
    check_name(name)
    if weights is not None:
        if not takes_weights(name):
            raise no_weights(name)
        kwargs["weights"] = weights
    net = _REGISTRY[name](num_classes=num_classes, **kwargs)
    net.arch = name
    if weights is not None and net.weights is None:
        net.weights = weights
    return net
