"""Method knobs, declared once on each method's config dataclass.

A knob is a config field made with :func:`knob`: its default, a help line and the values it
takes. :func:`config_knobs` reads them back as :class:`Knob` descriptions, from which the CLI
builds its flags, the app its inputs and :meth:`MethodConfig.validate
<fcfd_viz.distill.base.MethodConfig.validate>` its checks; no list of knob names is kept
anywhere else.
"""

from __future__ import annotations

import dataclasses
import typing
from dataclasses import dataclass, field
from typing import Any

from fcfd_viz.errors import UserError
from fcfd_viz.io import checks

TYPES = (float, int, str, bool)  # what a flag, a form input and config.json can all carry


def knob(
    default: Any,
    help: str,
    *,
    low: float | None = None,
    strict: bool = False,
    choices: tuple | None = None,
) -> Any:
    """A config field that is a method knob.

    Args:
        default: the value when nobody sets it.
        help: one line saying what the knob does (shown by ``fcfd distill --help`` and the app).
        low: the least allowed value (numbers); ``strict`` excludes it (``> low``).
        choices: the allowed values (strings).
    """
    meta = {"help": help, "low": low, "strict": strict, "choices": choices}
    return field(default=default, metadata=meta)


@dataclass(frozen=True)
class Knob:
    """One knob as the CLI, the app and the checks see it.

    ``methods`` lists the registered methods whose config has the knob (filled by
    :func:`fcfd_viz.distill.knobs`; empty when read from a single config class).
    """

    name: str
    type: type
    default: Any
    help: str
    low: float | None = None
    strict: bool = False
    choices: tuple | None = None
    methods: tuple[str, ...] = ()

    @property
    def flag(self) -> str:
        """The command-line flag: ``--feat-weight`` for ``feat_weight``."""
        return "--" + self.name.replace("_", "-")

    def describe(self) -> str:
        """Type and allowed values in a few words: ``float > 0``, ``int >= 1``, ``bi|s2t``."""
        if self.choices:
            return "|".join(map(str, self.choices))
        if self.low is None:
            return self.type.__name__
        return f"{self.type.__name__} {'>' if self.strict else '>='} {self.low:g}"

    def argv(self, value: Any) -> list[str]:
        """The flag (and value) that sets this knob to ``value`` on the command line."""
        if self.type is bool:
            return [self.flag if value else "--no-" + self.flag[2:]]
        return [self.flag, str(value)]

    def check(self, value: Any, label: str | None = None) -> None:
        """A one-line :class:`UserError` naming ``label`` (default: the knob's name) unless
        ``value`` is of the knob's type and within its bounds or choices."""
        label = label or self.name
        if self.choices:
            checks.choice(label, value, self.choices)
        elif self.type is float:
            checks.number(label, value, self.low, strict=self.strict)
        elif self.type is int:
            low = None if self.low is None else int(self.low) + (1 if self.strict else 0)
            checks.integer(label, value, low)
        elif not isinstance(value, self.type):
            raise UserError(f"{label} must be a {self.type.__name__}, got {value!r}")


def config_knobs(cls: type) -> list[Knob]:
    """The knobs of a config dataclass, in field order. Every field must be declared with
    :func:`knob` and annotated with one of :data:`TYPES` (a ``TypeError`` says which is not:
    that is a bug in the method, not a user's mistake)."""
    hints = typing.get_type_hints(cls)
    out = []
    for f in dataclasses.fields(cls):
        typ, meta = hints[f.name], f.metadata
        if typ not in TYPES or "help" not in meta or f.default is dataclasses.MISSING:
            raise TypeError(
                f"{cls.__name__}.{f.name}: a method knob is a float, int, str or bool field "
                "declared with fcfd_viz.distill.knob.knob(default, help, ...)"
            )
        choices = tuple(meta["choices"]) if meta["choices"] else None
        out.append(Knob(f.name, typ, f.default, meta["help"], meta["low"], meta["strict"], choices))
    return out
