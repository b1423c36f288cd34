"""Your own model modules: imported so their ``@models.register`` builders reach the CLI,
the app, background runs and checkpoint loading.

Three ways to name them, all loaded by :func:`load_plugins`:

- ``fcfd --import MODULE ...`` (before the sub-command, repeatable);
- the environment variable ``FCFD_IMPORT=mod_a,mod_b`` (``fcfd app`` passes its
  ``--import`` modules on this way, and background runs inherit it);
- an entry point of the group ``fcfd_viz.models`` in an installed package
  (``[project.entry-points."fcfd_viz.models"] mynets = "mypkg.nets"``).

A module that fails to import is one :class:`~fcfd_viz.errors.UserError` line naming it.
"""

from __future__ import annotations

import importlib
import os
from collections.abc import Iterable

from fcfd_viz.errors import UserError

ENV = "FCFD_IMPORT"
ENTRY_POINT_GROUP = "fcfd_viz.models"


def env_modules(value: str | None = None) -> list[str]:
    """Module names in ``value`` (default: ``$FCFD_IMPORT``), comma-separated."""
    value = os.environ.get(ENV, "") if value is None else value
    return [m.strip() for m in value.split(",") if m.strip()]


def _first_line(e: BaseException) -> str:
    text = str(e).strip()
    return f"{type(e).__name__}: {text.splitlines()[0]}" if text else type(e).__name__


def import_module(name: str) -> None:
    """Import ``name`` (a no-op when already imported), or a one-line :class:`UserError`."""
    try:
        importlib.import_module(name)
    except Exception as e:  # a missing module, a syntax error, a builder registered twice
        raise UserError(f"cannot import model module {name!r}: {_first_line(e)}") from None


def _load_entry_points() -> list[str]:
    """Load every entry point of :data:`ENTRY_POINT_GROUP`; the names loaded."""
    from importlib.metadata import entry_points

    loaded = []
    for ep in entry_points(group=ENTRY_POINT_GROUP):
        try:
            ep.load()
        except Exception as e:
            raise UserError(
                f"cannot import model module {ep.value!r} (entry point {ep.name!r} of "
                f"{ENTRY_POINT_GROUP}): {_first_line(e)}"
            ) from None
        loaded.append(ep.value)
    return loaded


def load_plugins(modules: Iterable[str] = ()) -> list[str]:
    """Import ``modules``, then those of ``$FCFD_IMPORT``, then the ``fcfd_viz.models``
    entry points. Returns what was imported (modules already imported are no-ops)."""
    names = list(dict.fromkeys([*modules, *env_modules()]))
    for name in names:
        import_module(name)
    return names + _load_entry_points()
