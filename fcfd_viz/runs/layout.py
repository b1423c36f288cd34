"""Run directories and checkpoints.

A run directory holds::

    config.json     the resolved configuration: method (its name), method_config (its knobs),
                    student, teacher, data, train
    metrics.jsonl   one JSON line per epoch: epoch, lr, loss, losses{name: value},
                    train_top1, test_top1, train_top5, test_top5, seconds (appended and fsynced; a torn last line
                    from a kill is ignored by readers and dropped by the next writer)
    status.json     state (running/completed/stopped/interrupted/failed/diverged), pid and
                    its start time, epoch, error: for watchers
    last.pt         latest checkpoint (resumable; it also keeps its epoch's metrics line)
    best.pt         best test top-1 so far
    summary.json    top1, best_top1, top5, best_top5 (top-min(5, classes)), epochs, seconds,
                    method, arch, student, teacher, dataset, seed
                    (a detection run, config.json ``task: detection``: map, map_50, map_75
                    in records and summary, best_map, best.pt by map; no top-1 / top-5)
    .writer.lock    held by the one process writing the run (see fcfd_viz.runs.writer)
    writer.json     who holds it: pid, start time, command

Every file but ``metrics.jsonl`` is written atomically (temp file + rename); checkpoints are
:mod:`fcfd_viz.runs.checkpoints`'. Readers never raise on a malformed file: the
listing (:mod:`fcfd_viz.runs.listing`) shows such a run as one unreadable row.
"""

from __future__ import annotations

import contextlib
import json
import os
import time
from collections.abc import Iterator, Mapping
from functools import lru_cache
from pathlib import Path

from fcfd_viz.errors import Diverged, UserError
from fcfd_viz.io.checks import is_count, is_number
from fcfd_viz.io.files import (
    atomic_write,
    is_regular,
    read_object,
    user_os_errors,
    write_json,
)
from fcfd_viz.io.locks import file_lock
from fcfd_viz.io.procs import identity

STOP_FILE = "STOP"
# TensorBoard event files of a run (fcfd_viz.training.tracking): RUN/tb/events.out.tfevents.*
TB_DIR, TB_EVENTS = "tb", "events.out.tfevents."
JOBS_DIR = ".jobs"  # the job registry's folder inside a runs folder (fcfd_viz.jobs.control)
CACHE_DIR = ".cache"  # results kept for the app and `fcfd report` (reports.gap.student_gap)
# fields every metrics line has, each a number (what the curves and the listing read)
RECORD_NUMBERS = ("lr", "loss", "train_top1", "test_top1")
# a detection run's lines (--task detection) have mAP instead of top-1 (fcfd_viz.detection.task)
DETECTION_RECORD_NUMBERS = ("lr", "loss", "map")


def parse_record(line: bytes | str) -> dict | None:
    """One metrics line as a dict, or None when it is not a well-formed epoch record
    (a torn line, junk, a record without its numbers)."""
    try:
        rec = json.loads(line)
    except (ValueError, RecursionError):  # UnicodeDecodeError is a ValueError
        return None
    if not isinstance(rec, dict) or not is_count(rec.get("epoch")) or rec["epoch"] < 1:
        return None
    numbers = DETECTION_RECORD_NUMBERS if "map" in rec else RECORD_NUMBERS
    if not all(is_number(rec.get(k)) for k in numbers):
        return None
    losses = rec.get("losses", {})
    if not isinstance(losses, dict) or not all(is_number(v) for v in losses.values()):
        return None
    return rec


def method_fields(obj: Mapping) -> tuple[str | None, dict]:
    """``(method name, its knobs)`` of a config.json or checkpoint dict, in either form.

    Since issue #12 ``method`` is the name and ``method_config`` the knobs; before it
    ``method`` was one dict holding the name under ``"method"`` beside the knobs. The name
    is None when absent; a ``ValueError`` says what is malformed (readers of junk catch it).
    """
    method = obj.get("method")
    if isinstance(method, Mapping):  # before issue #12
        knobs = dict(method)
        name = knobs.pop("method", None)
    else:
        name, knobs = method, obj.get("method_config", {})
    if name is not None and not isinstance(name, str):
        raise ValueError(f"'method' is {type(name).__name__}, expected a name")
    if not isinstance(knobs, Mapping):
        raise ValueError(f"'method_config' is {type(knobs).__name__}, expected an object")
    return name, dict(knobs)


@lru_cache(maxsize=4)
def _me(pid: int) -> dict:
    """This process's identity, computed once per pid (a forked child gets its own)."""
    return identity(pid)


class Run:
    """A run directory: its files, read safely and written atomically.

    Making, replacing and locking one is :mod:`fcfd_viz.runs.writer`'s job.
    """

    def __init__(self, path: str | os.PathLike) -> None:
        self.path = Path(path)

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


def record_end(run: Run, e: BaseException) -> None:
    """The final status of a run that ended with ``e``; never raises (a full disk may refuse
    even this write: then the dead pid in the old status tells the listing)."""
    if isinstance(e, KeyboardInterrupt):
        state = "interrupted"
    elif isinstance(e, Diverged):
        state = "diverged"
    else:
        state = "failed"
    error = str(e) if isinstance(e, UserError) else f"{type(e).__name__}: {e}"
    with contextlib.suppress(Exception):
        run.write_status(state=state, error=error.splitlines()[0] if error else state)


# ---------------------------------------------------------------- the runs folder
def default_runs_dir(arg: str | os.PathLike | None = None) -> Path:
    """The runs folder: ``arg`` if given, else ``$FCFD_RUNS_DIR``, else ``./runs``."""
    return Path(arg or os.environ.get("FCFD_RUNS_DIR") or "runs")


@contextlib.contextmanager
def runs_lock(runs_dir: str | os.PathLike) -> Iterator[None]:
    """Exclusive lock of a runs folder's job records (across threads and processes): launching,
    resuming and deleting jobs and starting the defaults build take it."""
    with file_lock(Path(runs_dir) / JOBS_DIR / "lock"):
        yield
