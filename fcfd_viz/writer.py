"""Who may write a run directory, and what ``--overwrite`` may delete.

* **One writer.** :func:`open_run` takes ``RUN/.writer.lock`` (an flock through
  :func:`fcfd_viz.locks.file_lock`, released by the kernel when the holder dies, even by
  SIGKILL) before the first write and holds it to the end; ``RUN/writer.json`` names the
  holder (pid and start time) so a second writer exits with a line naming it. A record left
  by a dead process blocks nothing: only the lock counts.
* **What a run directory is.** Only :data:`RUN_FILES` (and the temp files of their atomic
  writes), and a ``tb/`` folder holding nothing but TensorBoard event files.
  ``--overwrite`` replaces a directory only when it holds nothing else, and then deletes
  those files one by one, never a tree: a folder with anything foreign in it (another
  sub-folder, a thesis) is refused before anything is deleted.
* **Never what the run reads.** ``--out`` may not be the teacher's run directory, hold the
  teacher checkpoint, or be a parent of it.
"""

from __future__ import annotations

import contextlib
import os
import sys
import time
from collections.abc import Iterable, Iterator
from pathlib import Path

from fcfd_viz.errors import UserError
from fcfd_viz.fsio import TEMP_SUFFIX, read_object, user_os_errors, write_json
from fcfd_viz.locks import LockBusy, file_lock
from fcfd_viz.procs import describe, identity, pid_alive
from fcfd_viz.runs import STOP_FILE, TB_DIR, TB_EVENTS, Run

WRITER_LOCK = ".writer.lock"
WRITER_FILE = "writer.json"
RUN_FILES = (
    "config.json",
    "metrics.jsonl",
    "status.json",
    "summary.json",
    "last.pt",
    "best.pt",
    STOP_FILE,
    WRITER_FILE,
    WRITER_LOCK,
)
# files that say nothing about a run: a directory holding only these counts as empty
_HOUSEKEEPING = (STOP_FILE, WRITER_FILE, WRITER_LOCK)


def is_temp(name: str) -> bool:
    """A temp file of an atomic write of a run file (``.last.pt.x8f2k.tmp``)."""
    return name.endswith(TEMP_SUFFIX) and any(name.startswith(f".{f}.") for f in RUN_FILES)


def event_files(path: Path) -> list[Path] | None:
    """The files of ``path/tb`` when it is a real folder of TensorBoard event files only (the
    run's own), else None."""
    tb = path / TB_DIR
    if tb.is_symlink() or not tb.is_dir():
        return None
    with os.scandir(tb) as it:
        entries = list(it)
    ok = all(e.name.startswith(TB_EVENTS) and e.is_file(follow_symlinks=False) for e in entries)
    return [Path(e.path) for e in entries] if ok else None


def foreign_entries(path: Path) -> list[str]:
    """Entries of ``path`` that are not run files (sub-folders other than the run's ``tb/``
    and symlinks included)."""
    with os.scandir(path) as it:
        return sorted(
            e.name
            for e in it
            if not (
                ((e.name in RUN_FILES or is_temp(e.name)) and e.is_file(follow_symlinks=False))
                or (e.name == TB_DIR and event_files(path) is not None)
            )
        )


def _holds(out: Path, target: str | os.PathLike) -> bool:
    """``out`` is ``target`` or one of its parents (after resolving links and ``..``)."""
    o, t = out.resolve(), Path(target).resolve()
    return o == t or o in t.parents


def check_target(
    out: Path, resume: bool = False, overwrite: bool = False, protect: Iterable = ()
) -> None:
    """Raise :class:`UserError` unless ``out`` may become (or, resuming, continue) a run.

    Nothing is written. A new run needs ``out`` absent, empty, or with ``overwrite`` a run
    directory that holds none of ``protect`` (the teacher).
    """
    for p in (out, *out.parents):  # a file where a folder must be: --out or a parent of it
        if p.exists() and not p.is_dir():
            raise UserError(f"--out {out}: {p} is a file, not a directory; choose another --out")
        if p.is_dir():
            break
    writer = live_writer(out) if out.is_dir() else None
    if writer:  # the lock decides (open_run); this only gives the clearer message up front
        raise UserError(_busy(out, writer))
    if resume:
        if not (out / "last.pt").is_file():
            raise UserError(f"cannot resume: {out / 'last.pt'} not found")
        return
    if not out.is_dir():
        return
    entries = [n for n in os.listdir(out) if n not in _HOUSEKEEPING and not is_temp(n)]
    if not entries:
        return
    if not overwrite:
        raise UserError(
            f"output directory {out} is not empty; pass --resume to continue it or "
            "--overwrite to replace it"
        )
    for t in protect:
        if t and _holds(out, t):
            raise UserError(
                f"--overwrite refused: {out} holds the teacher {t} this run reads; "
                "choose another --out"
            )
    foreign = foreign_entries(out)
    if foreign:
        shown = ", ".join(foreign[:3]) + (", ..." if len(foreign) > 3 else "")
        raise UserError(
            f"--overwrite refused: {out} is not a run directory (it holds {shown}); "
            "only a folder of run files is replaced: choose another --out"
        )


def prepare(out: Path, resume: bool, overwrite: bool, protect: Iterable = ()) -> None:
    """:func:`check_target`, then make ``out``: created, its stale temp files swept, its run
    files deleted (``overwrite``) or its old STOP request dropped (``resume``)."""
    check_target(out, resume=resume, overwrite=overwrite, protect=protect)
    with user_os_errors(out):
        out.mkdir(parents=True, exist_ok=True)
        for name in os.listdir(out):
            stale = is_temp(name) or name in (STOP_FILE, WRITER_FILE)  # from an earlier writer
            replaced = overwrite and not resume and name in RUN_FILES and name != WRITER_LOCK
            if stale or replaced:
                (out / name).unlink(missing_ok=True)
        if overwrite and not resume and (events := event_files(out)) is not None:
            for f in events:  # one by one, as the run files (check_target vetted them)
                f.unlink(missing_ok=True)
            (out / TB_DIR).rmdir()


def live_writer(out: Path) -> str | None:
    """``pid N (started ...)`` when ``writer.json`` names a live process other than this one
    (pid and start time must both match), else None."""
    rec, _ = read_object(out / WRITER_FILE)
    if not rec or rec.get("create_time") is None or rec.get("pid") == os.getpid():
        return None
    return describe(rec) if pid_alive(rec.get("pid"), rec["create_time"]) else None


def _busy(out: Path, writer: str | None) -> str:
    return (
        f"run {out} is being written by {writer or 'another process'}; wait for it to end "
        "or stop it, or choose another --out"
    )


@contextlib.contextmanager
def open_run(
    out: str | os.PathLike, resume: bool = False, overwrite: bool = False, protect: Iterable = ()
) -> Iterator[Run]:
    """Lock ``out`` for writing, check and prepare it (:func:`prepare`), yield its :class:`Run`.

    A second writer gets a :class:`UserError` naming the first. The checks run again under
    the lock, so two processes racing for one empty folder cannot both pass them.
    """
    out = Path(out)
    check_target(out, resume=resume, overwrite=overwrite, protect=protect)
    with user_os_errors(out):
        out.mkdir(parents=True, exist_ok=True)
    with contextlib.ExitStack() as stack:
        try:
            with user_os_errors(out / WRITER_LOCK):
                stack.enter_context(file_lock(out / WRITER_LOCK, wait=False))
        except LockBusy:
            raise UserError(_busy(out, live_writer(out))) from None
        prepare(out, resume=resume, overwrite=overwrite, protect=protect)
        record = {**identity(), "time": time.time(), "argv": sys.argv}
        write_json(out / WRITER_FILE, record)
        stack.callback(_forget_writer, out)
        yield Run(out)


def _forget_writer(out: Path) -> None:
    with contextlib.suppress(OSError):  # a record left behind blocks nothing
        (out / WRITER_FILE).unlink(missing_ok=True)
