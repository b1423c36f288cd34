"""Distillation methods, one file each, all on :class:`Distiller`.

``create(method, student, teacher, **knobs)`` builds one by name.
"""

from __future__ import annotations

import dataclasses

from fcfd_viz.distill.base import Distiller, MethodConfig, kd_loss
from fcfd_viz.distill.ce import CE
from fcfd_viz.distill.dkd import DKD
from fcfd_viz.distill.fcfd import FCFD
from fcfd_viz.distill.fcfd_dkd import FCFDDKD
from fcfd_viz.distill.fitnet import FitNet
from fcfd_viz.distill.kd import KD
from fcfd_viz.errors import UserError

METHODS: dict[str, type[Distiller]] = {
    cls.method: cls for cls in (CE, KD, FitNet, DKD, FCFD, FCFDDKD)
}


def method_names() -> list[str]:
    return list(METHODS)


def make_config(method: str, **knobs) -> MethodConfig:
    """The method's config dataclass filled from ``knobs``; unknown knobs are an error."""
    if method not in METHODS:
        raise UserError(f"unknown method {method!r}; choose one of {', '.join(METHODS)}")
    cls = METHODS[method].Config
    fields = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(knobs) - fields)
    if unknown:
        raise UserError(
            f"method {method!r} has no option(s) {', '.join(unknown)}; it takes {', '.join(sorted(fields))}"
        )
    return cls(**knobs)


def create(method: str, student, teacher=None, input_shape=(3, 32, 32), **knobs) -> Distiller:
    """Build the distiller for ``method`` with its config filled from ``knobs``.

    ``input_shape`` (C, H, W) lets methods with bridges size them from the feature shapes.
    """
    cfg = make_config(method, **knobs)
    return METHODS[method](student, teacher, cfg, input_shape=input_shape)


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
    "create",
    "kd_loss",
    "make_config",
    "method_names",
]
