"""Run directories and checkpoints.

A run directory holds::

    config.json     the resolved configuration (method, data, training, model specs)
    metrics.jsonl   one JSON line per epoch: epoch, lr, loss, losses{name: value},
                    train_top1, test_top1, seconds (appended and fsynced; a torn last line
                    from a kill is ignored by readers and dropped by the next writer)
    status.json     state (running/completed/stopped/interrupted/failed/diverged), pid and
                    its start time, epoch, error: for watchers
    last.pt         latest checkpoint (resumable; it also keeps its epoch's metrics line)
    best.pt         best test top-1 so far
    summary.json    top1, best_top1, epochs, seconds, method, arch, student, teacher, dataset, seed
    .writer.lock    held by the one process writing the run (see fcfd_viz.writer)
    writer.json     who holds it: pid, start time, command

Every file but ``metrics.jsonl`` is written atomically (temp file + rename); checkpoints load
with ``torch.load(weights_only=True)``. Readers never raise on a malformed file: the
listing (:mod:`fcfd_viz.listing`) shows such a run as one unreadable row.
"""

from __future__ import annotations

import json
import os
import time
from functools import lru_cache
from pathlib import Path
from typing import Any

from fcfd_viz.errors import UserError
from fcfd_viz.fsio import (
    atomic_write,
    atomic_write_with,
    is_regular,
    read_json,
    read_object,
    user_os_errors,
    write_json,
)
from fcfd_viz.procs import identity

__all__ = [
    "CKPT_FORMAT",
    "STOP_FILE",
    "Run",
    "atomic_write",
    "list_runs",
    "load_checkpoint",
    "model_from_checkpoint",
    "parse_record",
    "read_json",
    "save_checkpoint",
    "write_json",
]

# format 2: stage cuts at the FCFD authors' points; format-1 files are converted on load
# (fcfd_viz.models.legacy)
CKPT_FORMAT = "fcfd-viz/2"
STOP_FILE = "STOP"
# fields every metrics line has, each a number (what the curves and the listing read)
RECORD_NUMBERS = ("lr", "loss", "train_top1", "test_top1")


def is_number(x: Any) -> bool:
    """An int or float (not a bool): what a metrics or summary value must be."""
    return isinstance(x, (int, float)) and not isinstance(x, bool)


def is_count(x: Any) -> bool:
    """A non-negative int (not a bool)."""
    return isinstance(x, int) and not isinstance(x, bool) and x >= 0


def parse_record(line: bytes | str) -> dict | None:
    """One metrics line as a dict, or None when it is not a well-formed epoch record
    (a torn line, junk, a record without its numbers)."""
    try:
        rec = json.loads(line)
    except (ValueError, RecursionError):  # UnicodeDecodeError is a ValueError
        return None
    if not isinstance(rec, dict) or not is_count(rec.get("epoch")) or rec["epoch"] < 1:
        return None
    if not all(is_number(rec.get(k)) for k in RECORD_NUMBERS):
        return None
    losses = rec.get("losses", {})
    if not isinstance(losses, dict) or not all(is_number(v) for v in losses.values()):
        return None
    return rec


def save_checkpoint(path: str | os.PathLike, ckpt: dict) -> None:
    """Save ``ckpt`` atomically: ``torch.save`` to a temp file, fsync, rename. A failed write
    (disk full) removes the temp file and raises a one-line :class:`UserError`."""
    import torch  # here, not at the top: listing runs and reading metrics need no torch

    obj = {"format": CKPT_FORMAT, **ckpt}
    atomic_write_with(path, lambda f: torch.save(obj, f))


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
    _check_model_spec(path, ckpt)
    ckpt["path"] = str(path)
    if ckpt["format"] == legacy.OLD_FORMAT:
        legacy.upgrade(ckpt)
    return ckpt


def _check_model_spec(path: Path, ckpt: dict) -> None:
    """The model spec and weights have the shapes :func:`model_from_checkpoint` reads."""
    spec = ckpt["model"]
    ok = (
        isinstance(spec, dict)
        and isinstance(spec.get("arch"), str)
        and is_count(spec.get("num_classes"))
        and spec["num_classes"] > 0
        and isinstance(spec.get("arch_kwargs", {}), dict)
        and isinstance(ckpt.get("state_dict", {}), dict)
    )
    if not ok:
        raise UserError(
            f"checkpoint {path} has a malformed model spec ({str(spec)[:80]}); "
            "it was not written by fcfd-viz or is damaged"
        )


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
    try:
        net = models.create(
            spec["arch"], num_classes=spec["num_classes"], **spec.get("arch_kwargs", {})
        )
    except (TypeError, ValueError) as e:  # arch_kwargs the architecture does not take
        raise UserError(
            f"checkpoint {ckpt.get('path')} has a malformed model spec: {str(e).splitlines()[0]}"
        ) from None
    try:
        net.load_state_dict(ckpt["state_dict"])
    except RuntimeError as e:
        raise UserError(
            f"checkpoint {ckpt.get('path')} does not fit a {spec['arch']}: {str(e).splitlines()[0]}"
        ) from None
    return net.eval()


@lru_cache(maxsize=4)
def _me(pid: int) -> dict:
    """This process's identity, computed once per pid (a forked child gets its own)."""
    return identity(pid)


class Run:
    """A run directory: its files, read safely and written atomically.

    Making, replacing and locking one is :mod:`fcfd_viz.writer`'s job (``Run.create`` is a
    shortcut for the unlocked checks and preparation it does).
    """

    def __init__(self, path: str | os.PathLike) -> None:
        self.path = Path(path)

    @classmethod
    def create(
        cls,
        path: str | os.PathLike,
        resume: bool = False,
        overwrite: bool = False,
        protect: tuple = (),
    ) -> Run:
        """Check ``path`` may be written (see :func:`fcfd_viz.writer.check_target`) and make
        it ready: created, or emptied of its run files with ``overwrite``."""
        from fcfd_viz.writer import prepare

        prepare(Path(path), resume=resume, overwrite=overwrite, protect=protect)
        return cls(path)

    # files
    def file(self, name: str) -> Path:
        return self.path / name

    def write_config(self, config: dict) -> None:
        write_json(self.file("config.json"), config)

    def config(self) -> dict:
        """config.json as a dict; :class:`UserError` when it is absent or not an object."""
        obj, why = read_object(self.file("config.json"))
        if obj is None:
            raise UserError(f"{self.file('config.json')}: {why or 'not found'}")
        return obj

    def metrics(self, max_points: int | None = None) -> list[dict]:
        """Every well-formed epoch record (torn or junk lines are skipped); [] if unreadable.

        ``max_points`` thins a long history to about that many evenly spaced records (the
        last one always kept): what a curve needs, cheap to copy into a page cache.
        """
        path = self.file("metrics.jsonl")
        try:
            data = path.read_bytes() if is_regular(path) else b""
        except OSError:
            return []
        lines = [ln for ln in data.split(b"\n") if ln.strip()]
        if max_points and len(lines) > max_points:
            while lines and parse_record(lines[-1]) is None:
                lines.pop()  # a torn or junk tail: the thinned curve still ends at the newest
            # parse only the lines the thinned curve shows, counted from the end: a 50 MB
            # history then costs milliseconds instead of seconds of JSON parsing
            step = -(-len(lines) // max_points)  # ceil
            lines = lines[::-step][::-1]
        return [r for r in map(parse_record, lines) if r is not None]

    def append_metrics(self, record: dict) -> None:
        """Append one line and fsync: O(1) per epoch. A torn line left by a killed writer
        is ended first, so the new record never merges into it."""
        path = self.file("metrics.jsonl")
        line = (json.dumps(record, sort_keys=True) + "\n").encode()
        with user_os_errors(path), open(path, "a+b") as f:
            if f.seek(0, os.SEEK_END) > 0:
                f.seek(-1, os.SEEK_END)
                if f.read(1) != b"\n":
                    line = b"\n" + line
            f.write(line)
            f.flush()
            os.fsync(f.fileno())

    def restore_metrics(self, epochs_done: int, record: dict | None = None) -> list[dict]:
        """Make metrics.jsonl hold epochs 1..``epochs_done`` once each, as a resume needs.

        Lines past the checkpoint's epoch (none are written today, but older versions did)
        are dropped, duplicates merged, and the checkpoint's own line (``record``, kept in
        last.pt) restored when a kill came between the checkpoint and the metrics write.
        """
        by_epoch = {r["epoch"]: r for r in self.metrics() if r["epoch"] <= epochs_done}
        if record is not None and parse_record(json.dumps(record)) is not None:
            by_epoch.setdefault(record["epoch"], record)
        keep = [by_epoch[e] for e in sorted(by_epoch)]
        atomic_write(
            self.file("metrics.jsonl"), "".join(json.dumps(r, sort_keys=True) + "\n" for r in keep)
        )
        return keep

    def truncate_metrics(self, epochs_done: int) -> None:
        """Drop records past ``epochs_done`` (see :meth:`restore_metrics`)."""
        self.restore_metrics(epochs_done)

    def write_status(self, **status) -> None:
        """status.json with this process's pid and start time (so a reused pid is told apart)."""
        write_json(self.file("status.json"), {"time": time.time(), **_me(os.getpid()), **status})

    def status(self) -> dict:
        """status.json, or {} when absent or malformed."""
        return read_object(self.file("status.json"))[0] or {}

    def write_summary(self, summary: dict) -> None:
        write_json(self.file("summary.json"), summary)

    def summary(self) -> dict | None:
        """summary.json, or None when absent or malformed."""
        return read_object(self.file("summary.json"))[0]

    def request_stop(self) -> None:
        """Ask a training process working on this run to stop after its current step."""
        with user_os_errors(self.file(STOP_FILE)):
            self.file(STOP_FILE).touch()

    def stop_requested(self) -> bool:
        return self.file(STOP_FILE).exists()


def list_runs(root: str | os.PathLike) -> list[dict]:
    """One row per run directory under ``root``; see :func:`fcfd_viz.listing.list_runs`."""
    from fcfd_viz.listing import list_runs as _list_runs

    return _list_runs(root)
