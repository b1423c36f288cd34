"""The runs of a folder that hold a checkpoint, their networks and their metrics, cached
(networks in ``st.cache_resource``: one shared, read-only instance per checkpoint file and
mtime; metrics in ``st.cache_data`` until the file changes)."""

from __future__ import annotations

from pathlib import Path

import streamlit as st

from fcfd_viz.errors import UserError
from fcfd_viz.experiments.networks import network_from_checkpoint
from fcfd_viz.runs.checkpoints import checkpoint_file, checkpoint_key, load_checkpoint
from fcfd_viz.runs.listing import list_runs
from fcfd_viz.runs.metric import task_metric


def checkpoints(root: Path, task: str = "classification") -> list[dict]:
    """Runs of ``root`` of ``task`` that hold a checkpoint: name, path, method, arch,
    dataset, and the label a picker shows (with the task's metric: top-1, mAP)."""
    metric = task_metric(task)
    out = []
    for r in list_runs(root):
        path = Path(r["run"])
        if r["state"] == "unreadable":  # its metadata cannot be trusted: the Runs page shows it
            continue
        if r.get("task", "classification") != task:
            continue
        try:
            checkpoint_file(path)
        except UserError:  # no best.pt nor last.pt (yet)
            continue
        name = path.relative_to(root).as_posix() if root in path.parents else r["name"]
        value = r.get(metric.key)
        acc = f", {metric.format(value, 1)}" if isinstance(value, float) else ""
        label = f"{name} ({r['method']} {r['student']}, {r['dataset']}{acc})"
        out.append({**r, "name": name, "path": str(path), "label": label})
    return out


def ckpt_file(path: str | Path) -> tuple[str, float]:
    """(checkpoint file, its mtime): the cache key that changes when training writes a new one."""
    return checkpoint_key(path)


@st.cache_resource(max_entries=16, show_spinner=False)
def cached_model(path: str, mtime: float):
    """:func:`model` of the checkpoint file ``path`` of modification time ``mtime``."""
    ckpt = load_checkpoint(path)
    meta = {k: v for k, v in ckpt.items() if k not in ("state_dict", "optimizer", "extras")}
    return network_from_checkpoint(ckpt), meta


def model(path: str | Path):
    """(eval-mode staged net, checkpoint metadata) shared by all sessions; never modify it."""
    return cached_model(*ckpt_file(path))


CURVE_POINTS = 2000  # a curve needs no more; a huge metrics file stays cheap to redraw


@st.cache_data(max_entries=256, show_spinner=False)
def cached_metrics(path: str, key: tuple) -> list[dict]:
    """:func:`metrics` of the run ``path`` whose metrics file has (inode, size, mtime) ``key``."""
    from fcfd_viz.runs.layout import Run

    return Run(path).metrics(max_points=CURVE_POINTS)


def metrics(path: str | Path) -> list[dict]:
    """metrics.jsonl records of a run (thinned to :data:`CURVE_POINTS`), cached until the
    file changes."""
    try:
        st_ = (Path(path) / "metrics.jsonl").stat()
        key = (st_.st_ino, st_.st_size, st_.st_mtime_ns)
    except OSError:
        key = ()
    return cached_metrics(str(path), key)
