"""The result each task's runs are judged by (top-1, mAP) and the one rule by which a table
of runs shows it: a detection run's mAP where a classification run has its top-1."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from fcfd_viz.io.checks import is_number


@dataclass(frozen=True)
class TaskMetric:
    """The result a task's runs are judged by: its key in a row, summary and metrics line,
    the key of its best epoch, how a table names it and the unit after a value."""

    key: str
    best: str
    label: str
    unit: str

    def format(self, value: object, digits: int = 2) -> str:
        """``value`` with its unit (``71.25%``, ``38.10 mAP``); ``-`` when not a number."""
        return f"{value:.{digits}f}{self.unit}" if is_number(value) else "-"


TASK_METRICS = {
    "classification": TaskMetric("top1", "best_top1", "top-1", "%"),
    "detection": TaskMetric("map", "best_map", "mAP", " mAP"),
}


def task_metric(task: object) -> TaskMetric:
    """The metric of ``task``'s runs: classification's for None (what older runs record)
    and for what names no task (a malformed run, whose row still shows)."""
    known = isinstance(task, str) and task in TASK_METRICS
    return TASK_METRICS[task if known else "classification"]  # type: ignore[index]


def shown_metric(task: object, column: str) -> str:
    """The result a table shows in ``column`` for a run (or group) of ``task``: a detection
    run's mAP / best mAP in the top-1 / best top-1 columns, else ``column`` itself."""
    metric, top1 = task_metric(task), TASK_METRICS["classification"]
    return {top1.key: metric.key, top1.best: metric.best}.get(column, column)


def task_columns(row: dict, tasks: Iterable[object]) -> dict:
    """The columns a table of runs of ``tasks`` adds for ``row`` beyond top-1 and top-5: the
    metric and best metric of each other task (``mAP``, ``best_mAP``), empty for another
    task's run."""
    out = {}
    # a malformed run's task (not a task's name) adds nothing: the table still shows
    names = {t for t in tasks if isinstance(t, str) and t in TASK_METRICS}
    for task in sorted(names - {"classification"}):
        m = task_metric(task)
        mine = row.get("task") == task
        out |= {m.label: row.get(m.key) if mine else None}
        out |= {f"best_{m.label}": row.get(m.best) if mine else None}
    return out
