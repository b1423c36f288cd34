"""Detection methods by name (``ce``, ``kd``, ``fcfd``): the registry ``--task detection``
uses, shaped like :mod:`fcfd_viz.distill`'s (``knobs``, ``make_config``, ``create``)."""

from __future__ import annotations

from dataclasses import replace

from fcfd_viz.detection.base import DetectionCE, DetectionDistiller
from fcfd_viz.detection.fcfd import DetectionFCFD
from fcfd_viz.detection.kd import DetectionKD
from fcfd_viz.distill.knob import Knob, config_knobs
from fcfd_viz.errors import UserError

METHODS: dict[str, type[DetectionDistiller]] = {
    c.method: c for c in (DetectionCE, DetectionKD, DetectionFCFD)
}


def method_names() -> list[str]:
    return list(METHODS)


def method_class(method: str) -> type[DetectionDistiller]:
    """The class of ``method``; a :class:`UserError` naming the detection methods if none."""
    if method not in METHODS:
        raise UserError(
            f"method {method!r} has no detection version; with --task detection choose one "
            f"of {', '.join(METHODS)}"
        )
    return METHODS[method]


def knobs(method: str | None = None) -> list[Knob]:
    """The knobs of ``method`` (of every detection method when None), ``methods`` filled."""
    takers: dict[str, list[str]] = {}
    for m, cls in METHODS.items():
        for k in config_knobs(cls.Config):
            takers.setdefault(k.name, []).append(m)
    out: dict[str, Knob] = {}
    for m in [method_class(method).method] if method else METHODS:
        for k in config_knobs(METHODS[m].Config):
            out.setdefault(k.name, replace(k, methods=tuple(takers[k.name])))
    return list(out.values())


def make_config(method: str, **values):
    """The method's config from ``values``, validated (unknown knobs: a UserError)."""
    cls = method_class(method).Config
    fields = [k.name for k in config_knobs(cls)]
    unknown = sorted(set(values) - set(fields))
    if unknown:
        raise UserError(
            f"detection method {method!r} has no option(s) {', '.join(unknown)}; it takes "
            f"{', '.join(sorted(fields)) or 'none'}"
        )
    cfg = cls(**values)
    cfg.validate()
    return cfg


def create(method: str, student, teacher=None, **values) -> DetectionDistiller:
    """The detection distiller ``method`` with its knobs from ``values``."""
    cls = method_class(method)
    return cls(student, teacher, make_config(method, **values))
