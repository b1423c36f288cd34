"""Distillation methods, one file each, all on :class:`Distiller`.

``create(method, student, teacher, **knobs)`` builds one by name. A method is a
:class:`Distiller` subclass added with :func:`register`; its knobs are the fields of its
``Config`` dataclass (declared with :func:`~fcfd_viz.distill.knob.knob`), and
:func:`knobs` is the one place the CLI flags, the app's inputs and the presets read them from.

Modules: ``base`` (the Distiller contract: ``forward_train(x, y) -> (logits, {named
losses})``), ``knob`` (a method's knobs), one file per method (``ce``, ``kd``, ``fitnet``,
``dkd``, ``fcfd``, ``fcfd_dkd``), ``bridges`` (s2t / t2s connectors) and ``paths`` (FCFD's
mixed-path plan).

May import: errors, io, models.
"""

from __future__ import annotations

from dataclasses import replace

from fcfd_viz.distill.base import Distiller, MethodConfig, kd_loss
from fcfd_viz.distill.ce import CE
from fcfd_viz.distill.dkd import DKD
from fcfd_viz.distill.fcfd import FCFD
from fcfd_viz.distill.fcfd_dkd import FCFDDKD
from fcfd_viz.distill.fitnet import FitNet
from fcfd_viz.distill.kd import KD
from fcfd_viz.distill.knob import Knob, config_knobs
from fcfd_viz.errors import UserError

METHODS: dict[str, type[Distiller]] = {}


def register(cls: type[Distiller]) -> type[Distiller]:
    """Add the method ``cls`` (a :class:`Distiller` subclass setting ``method``, ``Config``
    and ``needs_teacher``) under ``cls.method``; usable as a class decorator. Its knobs then
    appear in ``fcfd distill --help``, the app and the presets with no other edit.

    Raises ``TypeError`` for a config field that is not a :func:`~.knobs.knob` or a knob that
    another method has with another type (one flag cannot carry two types), ``ValueError``
    for a name taken by another class.
    """
    if not (isinstance(cls, type) and issubclass(cls, Distiller)):
        raise TypeError(f"{cls!r} is not a Distiller subclass")
    if METHODS.get(cls.method, cls) is not cls:
        raise ValueError(f"method {cls.method!r} is registered already")
    types = {k.name: (k.type, m) for m in METHODS for k in config_knobs(METHODS[m].Config)}
    for k in config_knobs(cls.Config):
        typ, other = types.get(k.name, (k.type, None))
        if typ is not k.type:
            raise TypeError(
                f"{cls.method}: knob {k.name!r} is a {k.type.__name__}, but a {typ.__name__} "
                f"in {other}"
            )
    METHODS[cls.method] = cls
    return cls


def unregister(method: str) -> None:
    """Remove a method added with :func:`register` (tests add throwaway methods)."""
    METHODS.pop(method, None)


for _cls in (CE, KD, FitNet, DKD, FCFD, FCFDDKD):
    register(_cls)


def method_names() -> list[str]:
    return list(METHODS)


def method_class(method: str) -> type[Distiller]:
    """The registered class of ``method``; a :class:`UserError` naming the choices if none."""
    if method not in METHODS:
        raise UserError(f"unknown method {method!r}; choose one of {', '.join(METHODS)}")
    return METHODS[method]


def knobs(method: str | None = None) -> list[Knob]:
    """The knobs of ``method`` (of every registered method when None), read from the config
    dataclasses: name, type, default, help, bounds, choices and the methods that take each.

    With ``method`` the defaults are that method's; without, a knob several methods share
    appears once, with the first method's default.
    """
    per_method = {m: config_knobs(cls.Config) for m, cls in METHODS.items()}
    takers: dict[str, list[str]] = {}
    for m, ks in per_method.items():
        for k in ks:
            takers.setdefault(k.name, []).append(m)
    if method is not None:
        method_class(method)  # an unknown method is a UserError
    out: dict[str, Knob] = {}
    for m in [method] if method else per_method:
        for k in per_method[m]:
            out.setdefault(k.name, replace(k, methods=tuple(takers[k.name])))
    return list(out.values())


def make_config(method: str, **knobs) -> MethodConfig:
    """The method's config filled from ``knobs`` and validated: unknown knobs and values of
    the wrong type or out of bounds are a :class:`UserError` naming the knob."""
    cls = method_class(method).Config
    fields = [k.name for k in config_knobs(cls)]
    unknown = sorted(set(knobs) - set(fields))
    if unknown:
        raise UserError(
            f"method {method!r} has no option(s) {', '.join(unknown)}; it takes {', '.join(sorted(fields))}"
        )
    cfg = cls(**knobs)
    cfg.validate()
    return cfg


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
    "knobs",
    "make_config",
    "method_class",
    "method_names",
    "register",
    "unregister",
]
