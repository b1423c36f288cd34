"""``fcfd runs``: the table of a folder's run directories (or of their configs' groups)."""

from __future__ import annotations

import argparse
import os

from fcfd_viz.cli.tables import print_groups, print_json, print_runs


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("runs", help="table of run directories")
    p.add_argument(
        "dir", nargs="?", default=None, help="runs folder (default: $FCFD_RUNS_DIR or ./runs)"
    )
    p.add_argument("--json", action="store_true")
    p.add_argument(
        "--group",
        action="store_true",
        help="one line per config (same config.json but for the seed) over its completed runs: "
        "mean ± std over seeds of last and best top-1 and top-5 (mAP for detection runs), "
        "and the number of seeds",
    )
    p.set_defaults(func=cmd_runs)


def cmd_runs(args: argparse.Namespace) -> int:
    from fcfd_viz.runs.listing import group_runs, list_runs

    root = args.dir or os.environ.get("FCFD_RUNS_DIR", "runs")
    rows = group_runs(root) if args.group else list_runs(root)
    if args.json:
        print_json(rows)
    elif not rows:
        print(f"no completed runs in {root}" if args.group else f"no runs in {root}")
    elif args.group:
        print_groups(rows)
    else:
        print_runs(rows)
    return 0
