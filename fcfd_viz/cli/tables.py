"""How commands print results: JSON (``--json``) and aligned text tables, the runs table and
its per-config groups among them."""

from __future__ import annotations

import json
import os
import sys

from fcfd_viz.runs.listing import METRICS
from fcfd_viz.runs.metric import shown_metric, task_metric

RUN_COLUMNS = ["name", "method", "student", "dataset", "seed", "epochs", "top1", "best_top1",
               "top5", "state"]  # fmt: skip


def print_json(obj) -> None:
    """``obj`` as indented JSON with sorted keys (what every ``--json`` prints)."""
    json.dump(obj, sys.stdout, indent=2, sort_keys=True, default=str)
    sys.stdout.write("\n")


def print_table(cols: list[str], rows: list[list[str]]) -> None:
    """Left-aligned columns as wide as their widest cell; the last one unpadded."""
    widths = [max(len(c), *(len(r[i]) for r in rows)) for i, c in enumerate(cols)]
    widths[-1] = 0
    print("  ".join(c.ljust(w) for c, w in zip(cols, widths)).rstrip())
    for r in rows:
        print("  ".join(v.ljust(w) for v, w in zip(r, widths)).rstrip())


def run_cell(row: dict, col: str) -> str:
    """A cell of the runs table; a detection run's top1 / best_top1 cells show its mAP /
    best mAP (:func:`~fcfd_viz.runs.metric.shown_metric`)."""
    shown = shown_metric(row.get("task"), col)
    if shown != col and row.get(shown) is not None:
        return task_metric(row.get("task")).format(row[shown])
    v = row[col]
    return "-" if v is None else f"{v:.2f}" if isinstance(v, float) else str(v)


def print_runs(rows: list[dict]) -> None:
    """The table of ``fcfd runs``: one line per run (a malformed run says why, last)."""
    for r in rows:
        if r["state"] == "unreadable":
            r["state"] = f"unreadable: {r['error']}"
    print_table(RUN_COLUMNS, [[run_cell(r, c) for c in RUN_COLUMNS] for r in rows])


def group_cell(group: dict, metric: str) -> str:
    """mean ± std of ``metric`` over a group's seeds (a detection group's top-1 cells: mAP)."""
    shown = shown_metric(group.get("task"), metric)
    s = group[shown]
    if s["mean"] is None:
        return "-"
    std = "" if s["std"] is None else f" ± {s['std']:.2f}"
    unit = task_metric(group.get("task")).unit if shown != metric else ""
    return f"{s['mean']:.2f}{std}{unit}"


def print_groups(groups: list[dict]) -> None:
    """The table of ``fcfd runs --group``: one line per config over its seeds."""
    cols = ["config", "method", "student", "dataset", "epochs", "seeds", *METRICS, "runs"]
    rows = [
        [
            g["config"],
            g["method"],
            g["student"],
            g["dataset"],
            str(g["epochs"]),
            str(g["n"]),
            *(group_cell(g, m) for m in METRICS),
            ", ".join(os.path.basename(r) for r in g["runs"]),
        ]
        for g in groups
    ]
    print_table(cols, rows)
