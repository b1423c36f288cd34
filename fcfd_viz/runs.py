"""Run directories and checkpoints.

A run directory holds::

    config.json     the resolved configuration (method, data, training, model specs)
    metrics.jsonl   one JSON line per epoch: epoch, lr, loss, losses{name: value},
                    train_top1, test_top1, seconds
    status.json     state (running/completed/stopped/failed), pid, epoch, step: for watchers
    last.pt         latest checkpoint (resumable)   best.pt   best test top-1 so far
    summary.json    top1, best_top1, epochs, seconds, method, arch, student, teacher, dataset, seed

Every file is written atomically (temp file + rename); checkpoints load with
``torch.load(weights_only=True)``.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
import time
from pathlib import Path
from typing import Any

from fcfd_viz.errors import UserError

# format 2: stage cuts at the FCFD authors' points; format-1 files are converted on load
# (fcfd_viz.models.legacy)
CKPT_FORMAT = "fcfd-viz/2"
STOP_FILE = "STOP"


def atomic_write(path: str | os.PathLike, data: bytes | str) -> None:
    """Write ``data`` to ``path`` through a temp file in the same folder and a rename."""
    path = Path(path)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data.encode() if isinstance(data, str) else data)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def write_json(path: str | os.PathLike, obj: Any) -> None:
    atomic_write(path, json.dumps(obj, indent=2, sort_keys=True, default=str) + "\n")


def read_json(path: str | os.PathLike) -> Any:
    with open(path) as f:
        return json.load(f)


def save_checkpoint(path: str | os.PathLike, ckpt: dict) -> None:
    """Save ``ckpt`` atomically: ``torch.save`` to a temp file, then rename."""
    import torch  # here, not at the top: listing runs and reading metrics need no torch

    path = Path(path)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    try:
        torch.save({"format": CKPT_FORMAT, **ckpt}, tmp)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def load_checkpoint(path: str | os.PathLike, map_location: str = "cpu") -> dict:
    """Load an fcfd-viz checkpoint (``weights_only=True``) with clear errors for bad files."""
    import torch

    path = Path(path)
    if path.is_dir():  # a run directory: take its best (else last) checkpoint
        cand = [path / "best.pt", path / "last.pt"]
        path = next((p for p in cand if p.exists()), cand[0])
    if not path.exists():
        raise UserError(
            f"checkpoint {path} not found; pass a .pt file or a run directory with best.pt"
        )
    try:
        ckpt = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as e:
        raise UserError(
            f"checkpoint {path} is unreadable ({type(e).__name__}); it may be corrupt or not an fcfd-viz file"
        ) from None
    from fcfd_viz.models import legacy

    formats = (CKPT_FORMAT, legacy.OLD_FORMAT)
    if not isinstance(ckpt, dict) or ckpt.get("format") not in formats or "model" not in ckpt:
        raise UserError(f"{path} is not an fcfd-viz checkpoint (no {CKPT_FORMAT!r} format tag)")
    ckpt["path"] = str(path)
    if ckpt["format"] == legacy.OLD_FORMAT:
        legacy.upgrade(ckpt)
    return ckpt


def model_from_checkpoint(ckpt: dict | str | os.PathLike, expect_arch: str | None = None):
    """Rebuild the staged net stored in a checkpoint (arch and num_classes come from the file)."""
    from fcfd_viz import models

    if not isinstance(ckpt, dict):
        ckpt = load_checkpoint(ckpt)
    spec = ckpt["model"]
    if expect_arch is not None and spec["arch"] != expect_arch:
        raise UserError(
            f"checkpoint {ckpt.get('path')} holds a {spec['arch']}, not a {expect_arch}"
        )
    net = models.create(
        spec["arch"], num_classes=spec["num_classes"], **spec.get("arch_kwargs", {})
    )
    try:
        net.load_state_dict(ckpt["state_dict"])
    except RuntimeError as e:
        raise UserError(
            f"checkpoint {ckpt.get('path')} does not fit a {spec['arch']}: {str(e).splitlines()[0]}"
        ) from None
    return net.eval()


class Run:
    """A run directory. ``Run.create`` refuses to clobber an existing non-empty directory."""

    def __init__(self, path: str | os.PathLike) -> None:
        self.path = Path(path)

    @classmethod
    def create(cls, path: str | os.PathLike, resume: bool = False, overwrite: bool = False) -> Run:
        path = Path(path)
        if resume:
            if not (path / "last.pt").exists():
                raise UserError(f"cannot resume: {path / 'last.pt'} not found")
            (path / STOP_FILE).unlink(missing_ok=True)  # the old stop request is honoured already
            return cls(path)
        if path.exists() and any(path.iterdir()):
            if not overwrite:
                raise UserError(
                    f"output directory {path} is not empty; pass --resume to continue it or --overwrite to replace it"
                )
            shutil.rmtree(path)
        path.mkdir(parents=True, exist_ok=True)
        return cls(path)

    # files
    def file(self, name: str) -> Path:
        return self.path / name

    def write_config(self, config: dict) -> None:
        write_json(self.file("config.json"), config)

    def config(self) -> dict:
        return read_json(self.file("config.json"))

    def metrics(self) -> list[dict]:
        """All epoch records so far (a torn last line from a crash is skipped)."""
        out = []
        p = self.file("metrics.jsonl")
        if p.exists():
            for line in p.read_text().splitlines():
                try:
                    out.append(json.loads(line))
                except json.JSONDecodeError:
                    pass
        return out

    def append_metrics(self, record: dict) -> None:
        # rewrite whole file atomically: a reader never sees half a line (files are small)
        lines = [json.dumps(r, sort_keys=True) for r in self.metrics()] + [
            json.dumps(record, sort_keys=True)
        ]
        atomic_write(self.file("metrics.jsonl"), "\n".join(lines) + "\n")

    def truncate_metrics(self, epochs_done: int) -> None:
        """Drop records past ``epochs_done`` (written after the checkpoint a resume starts from)."""
        keep = [r for r in self.metrics() if r.get("epoch", 0) <= epochs_done]
        atomic_write(
            self.file("metrics.jsonl"), "".join(json.dumps(r, sort_keys=True) + "\n" for r in keep)
        )

    def write_status(self, **status) -> None:
        write_json(self.file("status.json"), {"time": time.time(), "pid": os.getpid(), **status})

    def status(self) -> dict:
        try:
            return read_json(self.file("status.json"))
        except (OSError, json.JSONDecodeError):
            return {}

    def write_summary(self, summary: dict) -> None:
        write_json(self.file("summary.json"), summary)

    def summary(self) -> dict | None:
        try:
            return read_json(self.file("summary.json"))
        except (OSError, json.JSONDecodeError):
            return None

    def request_stop(self) -> None:
        """Ask a training process working on this run to stop after its current step."""
        self.file(STOP_FILE).touch()

    def stop_requested(self) -> bool:
        return self.file(STOP_FILE).exists()


def list_runs(root: str | os.PathLike) -> list[dict]:
    """One row per run directory under ``root`` (searched two levels deep), newest first."""
    root = Path(root)
    rows = []
    if not root.exists():
        return rows
    for cfg in sorted(
        set(root.glob("config.json"))
        | set(root.glob("*/config.json"))
        | set(root.glob("*/*/config.json"))
    ):
        run = Run(cfg.parent)
        try:
            config = run.config()
        except (OSError, json.JSONDecodeError):
            continue
        summ = run.summary() or {}
        metrics = run.metrics()
        state = run.status().get("state", "completed" if summ else "unknown")
        rows.append(
            {
                "run": str(run.path),
                "name": run.path.name,
                "method": config.get("method", {}).get("method", "?"),
                "student": config.get("student", "?"),
                "teacher": config.get("teacher"),
                "dataset": config.get("data", {}).get("dataset", "?"),
                "seed": config.get("train", {}).get("seed"),
                "epochs": f"{len(metrics)}/{config.get('train', {}).get('epochs', '?')}",
                "top1": summ.get("top1", metrics[-1]["test_top1"] if metrics else None),
                "best_top1": summ.get("best_top1"),
                "state": state,
                "mtime": cfg.stat().st_mtime,
            }
        )
    rows.sort(key=lambda r: -r["mtime"])
    return rows
