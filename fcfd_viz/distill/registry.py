"""A registry of distillation methods by name: one class for classification's methods
(:data:`fcfd_viz.distill.REGISTRY`) and detection's (:data:`fcfd_viz.detection.methods.REGISTRY`).

A method is a :class:`~fcfd_viz.distill.base.Distiller` subclass setting ``method``,
``Config`` and ``needs_teacher``; its knobs are the fields of its ``Config`` dataclass, and
:meth:`MethodRegistry.knobs` is where the CLI flags, the app's inputs and the presets read them.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import replace

from fcfd_viz.distill.base import Distiller, MethodConfig
from fcfd_viz.distill.knob import Knob, config_knobs
from fcfd_viz.errors import UserError


class MethodRegistry:
    """Methods of one task by name.

    Args:
        base: the class every method of the task subclasses.
        unknown: the error line for a name not registered, formatted with ``method`` and
            ``choices`` (the registered names, comma-separated).
        what: how an error names one of these methods (``method``, ``detection method``).
        methods: the methods registered at once, in this order.
    """

    def __init__(
        self,
        base: type[Distiller],
        unknown: str,
        what: str = "method",
        methods: Iterable[type[Distiller]] = (),
    ) -> None:
        self.base = base
        self.unknown = unknown
        self.what = what
        # the dict itself is public (``fcfd_viz.distill.METHODS``): edits go through register
        self.methods: dict[str, type[Distiller]] = {}
        for cls in methods:
            self.register(cls)

    def register(self, cls: type[Distiller]) -> type[Distiller]:
        """Add the method ``cls`` under ``cls.method``; usable as a class decorator. Its
        knobs then appear in ``fcfd distill --help``, the app and the presets with no other edit.

        Raises ``TypeError`` for a class that is not a subclass of the task's base or a knob
        that another method has with another type (one flag cannot carry two types),
        ``ValueError`` for a name taken by another class.
        """
        if not (isinstance(cls, type) and issubclass(cls, self.base)):
            raise TypeError(f"{cls!r} is not a {self.base.__name__} subclass")
        if self.methods.get(cls.method, cls) is not cls:
            raise ValueError(f"method {cls.method!r} is registered already")
        types = {
            k.name: (k.type, m) for m, c in self.methods.items() for k in config_knobs(c.Config)
        }
        for k in config_knobs(cls.Config):
            typ, other = types.get(k.name, (k.type, None))
            if typ is not k.type:
                raise TypeError(
                    f"{cls.method}: knob {k.name!r} is a {k.type.__name__}, but a "
                    f"{typ.__name__} in {other}"
                )
        self.methods[cls.method] = cls
        return cls

    def unregister(self, method: str) -> None:
        """Remove a method added with :meth:`register` (tests add throwaway methods)."""
        self.methods.pop(method, None)

    def names(self) -> list[str]:
        """The registered methods' names, in registration order."""
        return list(self.methods)

    def method_class(self, method: str) -> type[Distiller]:
        """The registered class of ``method``; a :class:`UserError` naming the choices if none."""
        if method not in self.methods:
            raise UserError(self.unknown.format(method=method, choices=", ".join(self.methods)))
        return self.methods[method]

    def knobs(self, method: str | None = None) -> list[Knob]:
        """The knobs of ``method`` (of every registered method when None), read from the
        config dataclasses: name, type, default, help, bounds, choices and the methods that
        take each. With ``method`` the defaults are that method's; without, a knob several
        methods share appears once, with the first method's default."""
        per_method = {m: config_knobs(cls.Config) for m, cls in self.methods.items()}
        takers: dict[str, list[str]] = {}
        for m, ks in per_method.items():
            for k in ks:
                takers.setdefault(k.name, []).append(m)
        if method is not None:
            self.method_class(method)  # an unknown method is a UserError
        out: dict[str, Knob] = {}
        for m in [method] if method else per_method:
            for k in per_method[m]:
                out.setdefault(k.name, replace(k, methods=tuple(takers[k.name])))
        return list(out.values())

    def make_config(self, method: str, **knobs) -> MethodConfig:
        """The method's config filled from ``knobs`` and validated: unknown knobs and values
        of the wrong type or out of bounds are a :class:`UserError` naming the knob."""
        cls = self.method_class(method).Config
        fields = [k.name for k in config_knobs(cls)]
        unknown = sorted(set(knobs) - set(fields))
        if unknown:
            raise UserError(
                f"{self.what} {method!r} has no option(s) {', '.join(unknown)}; it takes "
                f"{', '.join(sorted(fields)) or 'none'}"
            )
        cfg = cls(**knobs)
        cfg.validate()
        return cfg

    def create(self, method: str, student, teacher=None, input_shape=None, **knobs) -> Distiller:
        """The distiller ``method`` with its config filled from ``knobs``. ``input_shape``
        (C, H, W) lets methods with bridges size them from the feature shapes (None: the
        method class's default)."""
        cfg = self.make_config(method, **knobs)
        shape = {} if input_shape is None else {"input_shape": input_shape}
        return self.methods[method](student, teacher, cfg, **shape)
