"""The table of runs: one row per run directory, cheap to recompute and never failing.

A row reads ``config.json``, ``status.json``, ``summary.json`` and only the *last* metrics
line (a seek from the end), each memoised on the file's (inode, size, mtime): re-listing a
folder every page render and every 2 s poll costs a few ``stat`` calls per run, whatever
the size of its metrics. A run whose files are malformed is one row with state
``unreadable`` and the reason in ``error``; a status ``running`` whose process is gone
(pid and start time, see :mod:`fcfd_viz.io.procs`) reads ``interrupted``.
"""

from __future__ import annotations

import hashlib
import json
import os
import statistics
from pathlib import Path

from fcfd_viz.io.checks import is_number
from fcfd_viz.io.files import cached, is_regular, read_object, tail_lines
from fcfd_viz.io.procs import pid_alive
from fcfd_viz.runs.layout import method_fields, parse_record
from fcfd_viz.runs.metric import TASK_METRICS, TaskMetric, shown_metric, task_columns, task_metric

STATES = ("running", "completed", "stopped", "interrupted", "failed", "diverged")
FINAL = ("completed", "stopped", "interrupted", "failed", "diverged")
METRICS = ("top1", "best_top1", "top5", "best_top5")  # a run's results, last and best epoch
DET_METRICS = ("map", "best_map")  # a detection run's (--task detection), in percent
_TAIL_MAX = 1 << 20  # look at most this far back for the last well-formed metrics line


class Unreadable(Exception):
    """Why a run directory cannot be described."""


def _field(obj: dict, key: str, kinds: tuple, where: str, default=None):
    value = obj.get(key, default)
    if value is not default and not (isinstance(value, kinds) and not isinstance(value, bool)):
        kind = " or ".join("null" if k is type(None) else k.__name__ for k in kinds)
        raise Unreadable(f"{where}: {key!r} is {type(value).__name__}, expected {kind}")
    return value


def _number(value) -> float | int | None:
    return value if is_number(value) else None


def _object(path: Path) -> dict:
    obj, why = read_object(path, cache=True)
    if why:
        raise Unreadable(why)
    return obj or {}


def _last_record(path: Path) -> dict | None:
    size = path.stat().st_size
    window = 8192
    while True:
        for line in reversed(tail_lines(path, window)):
            rec = parse_record(line)
            if rec is not None:
                return rec
        if window >= min(size, _TAIL_MAX):
            return None
        window *= 8


def last_record(path: str | os.PathLike) -> dict | None:
    """The last well-formed line of a metrics file (memoised; None if there is none)."""
    path = Path(path)
    if not is_regular(path):
        if path.exists() or path.is_symlink():
            raise Unreadable(f"{path.name} is not a regular file")
        return None
    try:
        return cached(path, _last_record)
    except OSError as e:
        raise Unreadable(f"{path.name}: {e.strerror or e}") from None


def live_state(status: dict, summary: dict | None) -> str:
    """The state a status file records, ``interrupted`` when its ``running`` writer is gone."""
    state = status.get("state")
    if state is None:
        return "completed" if summary else "unknown"
    if state not in STATES:
        raise Unreadable(f"status.json: unknown state {str(state)[:40]!r}")
    if state == "running":
        alive = pid_alive(status.get("pid"), status.get("create_time"), status.get("time"))
        return "running" if alive else "interrupted"
    return state


def _describe(path: Path) -> dict:
    config = _object(path / "config.json")
    try:
        method = method_fields(config)[0]
    except ValueError as e:
        raise Unreadable(f"config.json: {e}") from None
    data = _field(config, "data", (dict,), "config.json", {})
    train = _field(config, "train", (dict,), "config.json", {})
    status = _object(path / "status.json")
    summary = _object(path / "summary.json") if (path / "summary.json").exists() else None
    last = last_record(path / "metrics.jsonl")
    summ = summary or {}
    done = last["epoch"] if last else 0
    total = _field(train, "epochs", (int,), "config.json train")
    num = (int, float, type(None))
    top1 = _field(summ, "top1", num, "summary.json")
    top5 = _field(summ, "top5", num, "summary.json")
    mean_ap = _field(summ, "map", num, "summary.json")
    return {
        "task": _field(config, "task", (str,), "config.json", "classification"),
        "method": method if method is not None else "?",
        "student": _field(config, "student", (str,), "config.json", "?"),
        "teacher": _field(config, "teacher", (str, type(None)), "config.json"),
        "dataset": _field(data, "dataset", (str,), "config.json data", "?"),
        "seed": _field(train, "seed", (int,), "config.json train"),
        "epochs": f"{done}/{total if total is not None else '?'}",
        "epochs_done": done,
        "epochs_total": total,
        # a detection run's records have map, not test_top1 (fcfd_viz.detection.task)
        "top1": top1 if top1 is not None or not last else _number(last.get("test_top1")),
        "best_top1": _field(summ, "best_top1", (int, float, type(None)), "summary.json"),
        "top5": top5 if top5 is not None or not last else _number(last.get("test_top5")),
        "best_top5": _field(summ, "best_top5", num, "summary.json"),
        "map": mean_ap if mean_ap is not None or not last else _number(last.get("map")),
        "best_map": _field(summ, "best_map", num, "summary.json"),
        "seconds": _field(summ, "seconds", (int, float, type(None)), "summary.json"),
        "state": live_state(status, summary),
        "error": _field(status, "error", (str,), "status.json"),
    }


def run_row(path: str | os.PathLike) -> dict | None:
    """The row of one run directory (None when it has no config.json)."""
    path = Path(path)
    try:
        mtime = (path / "config.json").lstat().st_mtime
    except OSError:
        return None
    row = {
        "run": str(path),
        "name": path.name,
        **dict.fromkeys(("teacher", "seed", *METRICS, *DET_METRICS, "seconds", "error")),
        "task": "classification",
        **dict.fromkeys(("method", "student", "dataset", "epochs"), "?"),
        "epochs_done": 0,
        "epochs_total": None,
        "state": "unknown",
        "mtime": mtime,
    }
    try:
        row.update(_describe(path))
    except Unreadable as e:
        row.update(state="unreadable", error=str(e))
    return row


def list_runs(root: str | os.PathLike) -> list[dict]:
    """One row per run directory under ``root`` (searched two levels deep), newest first.

    Row keys: run, name, task, method, student, teacher, dataset, seed, epochs
    ("done/total"), epochs_done, epochs_total, top1, best_top1, top5, best_top5, map,
    best_map, seconds, state, error, mtime (top5: of ``min(5, classes)``; None for runs from
    before top-5; map, best_map: mAP % of a detection run, None otherwise). Never raises
    on a malformed run: its row has state ``unreadable`` and the reason in ``error``.
    """
    root = Path(root)
    if not root.is_dir():
        return []
    found = set()
    for pattern in ("config.json", "*/config.json", "*/*/config.json"):
        try:
            found |= {p.parent for p in root.glob(pattern)}
        except OSError:  # a folder vanished or is unreadable mid-walk: list the rest
            continue
    rows = [r for r in map(run_row, sorted(found)) if r is not None]
    rows.sort(key=lambda r: -r["mtime"])
    return rows


# what differs between the seeds of one experiment: left out when runs are grouped
SEED_FIELDS = (("train", "seed"), ("data", "subset_seed"))


def config_key(config: dict) -> str:
    """A config.json without its seeds (:data:`SEED_FIELDS`), as canonical JSON: runs with
    the same key are seeds of one experiment."""
    # the format marker says who wrote the file, not what ran: old and new runs group
    config = {k: dict(v) if isinstance(v, dict) else v for k, v in config.items() if k != "format"}
    for section, key in SEED_FIELDS:
        if isinstance(config.get(section), dict):
            config[section].pop(key, None)
    return json.dumps(config, sort_keys=True, default=str)


def mean_std(values: list[float]) -> dict:
    """``{"mean", "std", "n"}`` of ``values`` (the sample std; None below two values)."""
    if not values:
        return {"mean": None, "std": None, "n": 0}
    std = statistics.stdev(values) if len(values) > 1 else None
    return {"mean": statistics.fmean(values), "std": std, "n": len(values)}


def group_runs(root: str | os.PathLike) -> list[dict]:
    """The completed runs under ``root`` grouped by config (same config.json but for the
    seeds), each group with mean and std over its seeds of top1, best_top1, top5 and
    best_top5 (and map, best_map: mAP % of detection runs), largest group first.

    Group keys: ``config`` (8 hex digits naming the config), method, student, teacher,
    dataset, task, epochs, ``seeds`` (sorted), ``n`` (runs), ``runs`` (their paths) and one
    ``{"mean", "std", "n"}`` per metric. Runs still going, stopped early or unreadable are
    left out: their numbers are not those of the finished experiment.
    """
    groups: dict[str, list[dict]] = {}
    for row in list_runs(root):
        if row["state"] != "completed":
            continue
        config, why = read_object(Path(row["run"]) / "config.json", cache=True)
        if config is None or why:
            continue
        groups.setdefault(config_key(config), []).append(row)
    out = []
    for key, rows in groups.items():
        rows.sort(key=lambda r: (r["seed"] is None, r["seed"] or 0, r["run"]))
        first = rows[0]
        group = {
            "config": hashlib.sha256(key.encode()).hexdigest()[:8],
            **{k: first[k] for k in ("method", "student", "teacher", "dataset", "task")},
            "epochs": first["epochs_total"],
            "seeds": [r["seed"] for r in rows],
            "n": len(rows),
            "runs": [r["run"] for r in rows],
        }
        for metric in (*METRICS, *DET_METRICS):
            group[metric] = mean_std([r[metric] for r in rows if is_number(r[metric])])
        out.append(group)
    out.sort(key=lambda g: (-g["n"], g["method"], g["student"], g["config"]))
    return out


__all__ = [
    "DET_METRICS",
    "FINAL",
    "METRICS",
    "STATES",
    "TASK_METRICS",
    "TaskMetric",
    "config_key",
    "group_runs",
    "last_record",
    "list_runs",
    "live_state",
    "mean_std",
    "run_row",
    "shown_metric",
    "task_columns",
    "task_metric",
]
