"""Value checks shared by the configs: each failure is one :class:`UserError` line naming the
flag (or config field) and what it must be. NaN and infinities never pass a number check.
(Method knobs are checked against their own declarations: :mod:`fcfd_viz.distill.knob`.)"""

from __future__ import annotations

import dataclasses
import math
from typing import Any

from fcfd_viz.errors import UserError


def is_number(x: Any) -> bool:
    """An int or float (not a bool): what a metrics or summary value must be."""
    return isinstance(x, (int, float)) and not isinstance(x, bool)


def is_count(x: Any) -> bool:
    """A non-negative int (not a bool)."""
    return isinstance(x, int) and not isinstance(x, bool) and x >= 0


def integer(name: str, x: Any, low: int | None = None) -> None:
    """``x`` is an int (not a bool), ``>= low`` when given."""
    if not (isinstance(x, int) and not isinstance(x, bool)) or (low is not None and x < low):
        need = f"an integer >= {low}" if low is not None else "an integer"
        raise UserError(f"{name} must be {need}, got {x!r}")


# torch.manual_seed takes at most 2**64 - 1 and NumPy no negative seed: one range for both
SEED_MAX = 2**63 - 1


def seed(name: str, x: Any) -> None:
    """``x`` is a seed every generator takes: an int in ``0 .. 2**63 - 1``."""
    if not (isinstance(x, int) and not isinstance(x, bool)) or not 0 <= x <= SEED_MAX:
        raise UserError(f"{name} must be an integer from 0 to 2**63-1, got {x!r}")


def number(name: str, x: Any, low: float | None = None, strict: bool = False) -> None:
    """``x`` is a finite number, ``> low`` (``strict``) or ``>= low`` when ``low`` is given."""
    ok = isinstance(x, (int, float)) and not isinstance(x, bool) and math.isfinite(x)
    if ok and low is not None:
        ok = x > low if strict else x >= low
    if not ok:
        bound = "" if low is None else f" {'>' if strict else '>='} {low:g}"
        raise UserError(f"{name} must be a finite number{bound}, got {x!r}")


def choice(name: str, x: Any, options: tuple) -> None:
    if x not in options:
        raise UserError(f"{name} must be one of {', '.join(map(str, options))}, got {x!r}")


def setting(default, help: str, *, flag: str | None = None, choices: tuple | None = None):
    """A field of a settings dataclass (``TrainConfig``, ``DataConfig``) with the help line of
    its command-line flag (``--name-with-dashes`` unless ``flag`` says otherwise) and the values
    it takes; the CLI generates its flags from these (:mod:`fcfd_viz.cli.config_file`).
    ``default`` may be a factory (``list``) for a mutable default."""
    meta = {"help": help, "flag": flag, "choices": choices}
    if callable(default):
        return dataclasses.field(default_factory=default, metadata=meta)
    return dataclasses.field(default=default, metadata=meta)
