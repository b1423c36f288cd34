"""Distillation methods, one file each, all on :class:`Distiller`.

``create(method, student, teacher, **knobs)`` builds one by name. A method is a
:class:`Distiller` subclass added with :func:`register` to :data:`REGISTRY` (a
:class:`~fcfd_viz.distill.registry.MethodRegistry`; detection's methods have their own); its
knobs are the fields of its ``Config`` dataclass (declared with
:func:`~fcfd_viz.distill.knob.knob`), and :func:`knobs` is the one place the CLI flags, the
app's inputs and the presets read them from.

Modules: ``base`` (the Distiller contract: ``forward_train(x, y) -> (logits, {named
losses})``), ``knob`` (a method's knobs), ``registry`` (methods by name: the one registry
class of both tasks), one file per method (``ce``, ``kd``, ``fitnet``, ``dkd``, ``fcfd``,
``fcfd_dkd``), ``bridges`` (s2t / t2s connectors) and ``paths`` (FCFD's mixed-path plan).

May import: errors, io, models.
"""

from __future__ import annotations

from fcfd_viz.distill.base import Distiller, MethodConfig, kd_loss
from fcfd_viz.distill.ce import CE
from fcfd_viz.distill.dkd import DKD
from fcfd_viz.distill.fcfd import FCFD
from fcfd_viz.distill.fcfd_dkd import FCFDDKD
from fcfd_viz.distill.fitnet import FitNet
from fcfd_viz.distill.kd import KD
from fcfd_viz.distill.knob import Knob
from fcfd_viz.distill.registry import MethodRegistry

REGISTRY = MethodRegistry(
    Distiller,
    unknown="unknown method {method!r}; choose one of {choices}",
    methods=(CE, KD, FitNet, DKD, FCFD, FCFDDKD),
)
METHODS: dict[str, type[Distiller]] = REGISTRY.methods


def register(cls: type[Distiller]) -> type[Distiller]:
    """Add the method ``cls`` (a :class:`Distiller` subclass setting ``method``, ``Config``
    and ``needs_teacher``) under ``cls.method``; usable as a class decorator. Its knobs then
    appear in ``fcfd distill --help``, the app and the presets with no other edit
    (:meth:`MethodRegistry.register`, which says what it raises)."""
    return REGISTRY.register(cls)


def unregister(method: str) -> None:
    """Remove a method added with :func:`register` (tests add throwaway methods)."""
    REGISTRY.unregister(method)


def method_names() -> list[str]:
    """The classification methods' names."""
    return REGISTRY.names()


def method_class(method: str) -> type[Distiller]:
    """The registered class of ``method``; a :class:`UserError` naming the choices if none."""
    return REGISTRY.method_class(method)


def knobs(method: str | None = None) -> list[Knob]:
    """The knobs of ``method`` (of every registered method when None):
    :meth:`MethodRegistry.knobs`."""
    return REGISTRY.knobs(method)


def make_config(method: str, **knobs) -> MethodConfig:
    """The method's config filled from ``knobs`` and validated: unknown knobs and values of
    the wrong type or out of bounds are a :class:`UserError` naming the knob."""
    return REGISTRY.make_config(method, **knobs)


def create(method: str, student, teacher=None, input_shape=(3, 32, 32), **knobs) -> Distiller:
    """Build the distiller for ``method`` with its config filled from ``knobs``.

    ``input_shape`` (C, H, W) lets methods with bridges size them from the feature shapes.
    """
    return REGISTRY.create(method, student, teacher, input_shape, **knobs)


__all__ = [
    "CE",
    "DKD",
    "FCFD",
    "FCFDDKD",
    "FitNet",
    "KD",
    "Distiller",
    "MethodConfig",
    "METHODS",
    "REGISTRY",
    "MethodRegistry",
    "create",
    "kd_loss",
    "knobs",
    "make_config",
    "method_class",
    "method_names",
    "register",
    "unregister",
]
