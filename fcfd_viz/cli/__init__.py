"""The ``fcfd`` command line. Each sub-module adds its sub-commands through ``register``.

Every sub-command handler returns an exit code; a :class:`~fcfd_viz.errors.UserError`
anywhere becomes one line on stderr and exit status 2, never a traceback.

Modules: ``common`` (argument groups shared by sub-commands and a training command's result
line), ``tables`` (``--json`` and the text tables: the one place results are printed as
either), ``config_file`` (``--config FILE``: defaults < preset < file < flags), and one per
command group: ``train_cmds``, ``eval_cmds``, ``runs_cmds``, ``models_cmds``,
``distill_cmds``, ``probe_cmds``, ``gap_cmds``, ``report_cmds``, ``weights_cmds``, ``app_cmds``;
``reference`` renders the command reference of docs/cli.md from the parser.

May import: every layer above (it is the top).
"""

from __future__ import annotations

import argparse
import contextlib
import os
import signal
import sys
from collections.abc import Sequence

from fcfd_viz import __version__
from fcfd_viz.errors import Interrupted, UserError


def build_parser() -> argparse.ArgumentParser:
    from fcfd_viz.cli import (
        app_cmds,
        distill_cmds,
        eval_cmds,
        gap_cmds,
        models_cmds,
        probe_cmds,
        report_cmds,
        runs_cmds,
        train_cmds,
        weights_cmds,
    )

    parser = argparse.ArgumentParser(
        prog="fcfd", description="Function-Consistent Feature Distillation toolkit"
    )
    parser.add_argument("--version", action="version", version=f"fcfd-viz {__version__}")
    parser.add_argument(
        "--import",
        dest="imports",
        action="append",
        default=[],
        metavar="MODULE",
        help="import MODULE first, so the architectures it registers (@models.register) work "
        "in every command (repeatable; also $FCFD_IMPORT=a,b and entry points of the group "
        "fcfd_viz.models)",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True
    cmds = (train_cmds, eval_cmds, runs_cmds, models_cmds, distill_cmds, probe_cmds, gap_cmds,
            report_cmds, weights_cmds, app_cmds)  # fmt: skip
    for mod in cmds:
        mod.register(sub)
    return parser


@contextlib.contextmanager
def _terminate_as_interrupt():
    """SIGTERM (``kill``, the app's Stop of a starting job, a scheduler) ends a command as
    Ctrl-C does: the run records ``interrupted`` and keeps its last checkpoint."""

    def handler(signum, frame):
        raise Interrupted(signum)

    try:
        previous = signal.signal(signal.SIGTERM, handler)
    except ValueError:  # not the main thread: leave signals alone
        yield
        return
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def _quiet_stdout() -> None:
    """After a closed pipe (``fcfd presets | head -1``): send what is left to /dev/null, so
    the flush at exit raises nothing (https://docs.python.org/3/library/signal.html#note-on-sigpipe)."""
    with contextlib.suppress(OSError, ValueError, AttributeError):
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())


def _say(line: str) -> None:
    with contextlib.suppress(OSError, ValueError):
        print(" ".join(line.split("\n")), file=sys.stderr)


def _closed_streams_to_devnull() -> None:
    """A stream closed by the shell (``fcfd runs >&-``) is None in Python: print() skips it,
    but a flush or a write to it raises. Send it to /dev/null instead: the command still
    does its work and exits with its own status."""
    for name in ("stdout", "stderr"):
        if getattr(sys, name) is None:
            setattr(sys, name, open(os.devnull, "w"))  # noqa: SIM115 (for the process' life)


def main(argv: Sequence[str] | None = None) -> int:
    _closed_streams_to_devnull()
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        with _terminate_as_interrupt():
            from fcfd_viz.io.plugins import load_plugins

            load_plugins(args.imports)
            code = int(args.func(args) or 0)
            sys.stdout.flush()  # a closed pipe shows here, inside the handlers below
        return code
    except UserError as e:
        _say(f"fcfd {args.command}: error: {e}")
        return 2
    except KeyboardInterrupt as e:
        _say(f"fcfd {args.command}: interrupted")
        return 128 + getattr(e, "signum", signal.SIGINT)
    except BrokenPipeError:
        _quiet_stdout()
        return 1
    except OSError as e:  # the environment (a file, a disk), not the program: one line
        where = f"{e.filename}: " if e.filename else ""
        _say(f"fcfd {args.command}: error: {where}{e.strerror or e}")
        return 2
