"""Detection methods by name (``ce``, ``kd``, ``fcfd``): the
:class:`~fcfd_viz.distill.registry.MethodRegistry` ``--task detection`` uses, and the
module functions :mod:`fcfd_viz.distill` has (``knobs``, ``make_config``, ``create``)."""

from __future__ import annotations

from fcfd_viz.detection.base import DetectionCE, DetectionDistiller
from fcfd_viz.detection.fcfd import DetectionFCFD
from fcfd_viz.detection.kd import DetectionKD
from fcfd_viz.distill.knob import Knob
from fcfd_viz.distill.registry import MethodRegistry

REGISTRY = MethodRegistry(
    DetectionDistiller,
    unknown="method {method!r} has no detection version; with --task detection choose one "
    "of {choices}",
    what="detection method",
    methods=(DetectionCE, DetectionKD, DetectionFCFD),
)
METHODS = REGISTRY.methods


def method_names() -> list[str]:
    """The detection methods' names."""
    return REGISTRY.names()


def method_class(method: str) -> type[DetectionDistiller]:
    """The class of ``method``; a :class:`UserError` naming the detection methods if none."""
    return REGISTRY.method_class(method)  # type: ignore[return-value]


def knobs(method: str | None = None) -> list[Knob]:
    """The knobs of ``method`` (of every detection method when None), ``methods`` filled."""
    return REGISTRY.knobs(method)


def make_config(method: str, **values):
    """The method's config from ``values``, validated (unknown knobs: a UserError)."""
    return REGISTRY.make_config(method, **values)


def create(method: str, student, teacher=None, **values) -> DetectionDistiller:
    """The detection distiller ``method`` with its knobs from ``values``."""
    return REGISTRY.create(method, student, teacher, **values)  # type: ignore[return-value]
