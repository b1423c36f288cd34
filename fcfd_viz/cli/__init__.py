"""The ``fcfd`` command line. Each sub-module adds its sub-commands through ``register``.

Every sub-command handler returns an exit code; a :class:`~fcfd_viz.errors.UserError`
anywhere becomes one line on stderr and exit status 2, never a traceback.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from fcfd_viz import __version__
from fcfd_viz.errors import UserError


def build_parser() -> argparse.ArgumentParser:
    from fcfd_viz.cli import analysis_cmds, app_cmds, distill_cmds, train_cmds

    parser = argparse.ArgumentParser(
        prog="fcfd", description="Function-Consistent Feature Distillation toolkit"
    )
    parser.add_argument("--version", action="version", version=f"fcfd-viz {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True
    for mod in (train_cmds, distill_cmds, analysis_cmds, app_cmds):
        mod.register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except UserError as e:
        print(f"fcfd {args.command}: error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"fcfd {args.command}: interrupted", file=sys.stderr)
        return 130
