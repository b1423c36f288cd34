"""Who may write a run directory, and what ``--overwrite`` may delete.

* **One writer.** :func:`open_run` takes ``RUN/.writer.lock`` (an flock through
  :func:`fcfd_viz.io.locks.file_lock`, released by the kernel when the holder dies, even by
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
* **Only our runs, never inside one** (issue #29). ``--overwrite`` replaces only a folder
  whose ``config.json`` is an fcfd-viz run's (:func:`fcfd_viz.runs.provenance.is_our_config`),
  and, without ``force``, no run that other runs beside it name as their teacher. A new run
  never goes inside another run directory. A folder :func:`open_run` made for a run that
  then failed before writing anything is removed again.
"""

from __future__ import annotations

import contextlib
import os
import sys
import time
from collections.abc import Iterable, Iterator
from pathlib import Path

from fcfd_viz.errors import UserError
from fcfd_viz.io.files import read_object, user_os_errors, write_json
from fcfd_viz.io.locks import LockBusy, file_lock
from fcfd_viz.io.procs import describe, identity, pid_alive
from fcfd_viz.runs.files import (  # re-exported: what a run directory holds
    _HOUSEKEEPING,
    RUN_FILES,
    WRITER_FILE,
    WRITER_LOCK,
    event_files,
    foreign_entries,
    is_temp,
)
from fcfd_viz.runs.layout import STOP_FILE, TB_DIR, Run
from fcfd_viz.runs.provenance import CONFIG, dependants, enclosing_run, is_our_config

__all__ = ["RUN_FILES", "WRITER_FILE", "WRITER_LOCK", "event_files", "foreign_entries", "is_temp"]


def _holds(out: Path, target: str | os.PathLike) -> bool:
    """``out`` is ``target`` or one of its parents (after resolving links and ``..``)."""
    o, t = out.resolve(), Path(target).resolve()
    return o == t or o in t.parents


def _shown(names: list) -> str:
    return ", ".join(map(str, names[:3])) + (", ..." if len(names) > 3 else "")


def check_target(
    out: Path,
    resume: bool = False,
    overwrite: bool = False,
    protect: Iterable = (),
    force: bool = False,
    resumable: bool = True,
) -> None:
    """Raise :class:`UserError` unless ``out`` may become (or, resuming, continue) a run.

    Nothing is written. A new run needs ``out`` absent, empty, or with ``overwrite`` an
    fcfd-viz run directory that holds none of ``protect`` (the teacher) and, unless
    ``force``, that no other run beside it names as its teacher. It never lies inside
    another run directory. ``resumable=False``: the command takes no ``--resume`` (its
    message does not offer it).
    """
    for p in (out, *out.parents):  # a file where a folder must be: --out or a parent of it
        if p.exists() and not p.is_dir():
            raise UserError(f"--out {out}: {p} is a file, not a directory; choose another --out")
        if p.is_dir():
            break
    if not resume and (outer := enclosing_run(out)) is not None:
        # a run inside a run: deleting the outer one (the app's Delete) would take it along
        raise UserError(
            f"--out {out} lies inside the run directory {outer}; choose an --out outside "
            "every run directory"
        )
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
        resume_it = "pass --resume to continue it or " if resumable else "pass "
        raise UserError(
            f"output directory {out} is not empty; {resume_it}--overwrite to replace it"
        )
    for t in protect:
        if t and _holds(out, t):
            raise UserError(
                f"--overwrite refused: {out} holds the teacher {t} this run reads; "
                "choose another --out"
            )
    foreign = foreign_entries(out)
    if foreign:
        raise UserError(
            f"--overwrite refused: {out} is not a run directory (it holds {_shown(foreign)}); "
            "only a folder of run files is replaced: choose another --out"
        )
    _check_ours(out)
    if not force:
        users = dependants(out, _neighbourhood(out))
        if users:
            raise UserError(
                f"--overwrite refused: {out} is the teacher of {_shown(users)}; replacing it "
                "would leave them naming another network: choose another --out, or pass "
                "--force to replace it anyway"
            )


def _check_ours(out: Path) -> None:
    """``out`` (a folder of run-file names only) was written by fcfd-viz: its config.json
    carries our format marker or the keys of our earlier versions. File names alone do not
    say so: another tool's config.json and status.json have the same names."""
    config = out / CONFIG
    if config.is_file():
        obj, why = read_object(config)
        if is_our_config(obj):
            return
        reason = why or "it has no 'format': 'fcfd-viz/...' marker nor the keys of a run"
        raise UserError(
            f"--overwrite refused: {config} is not an fcfd-viz run's ({reason}); "
            "delete the folder yourself or choose another --out"
        )
    # every run writes config.json first: results without it are not ours
    results = [n for n in os.listdir(out) if n in RUN_FILES and n not in _HOUSEKEEPING]
    if results:
        raise UserError(
            f"--overwrite refused: {out} holds {_shown(sorted(results))} but no config.json "
            "of an fcfd-viz run; delete the folder yourself or choose another --out"
        )


def _neighbourhood(out: Path) -> list[Path]:
    """Where the runs that may name ``out`` as their teacher live: its parent folder and
    the runs folder (``$FCFD_RUNS_DIR`` or ``./runs``) when ``out`` is inside it."""
    from fcfd_viz.runs.layout import default_runs_dir

    roots = [out.resolve().parent]
    runs = default_runs_dir().resolve()
    if runs in out.resolve().parents and runs not in roots:
        roots.append(runs)
    return roots


def prepare(
    out: Path, resume: bool, overwrite: bool, protect: Iterable = (), force: bool = False
) -> None:
    """:func:`check_target`, then make ``out``: created, its stale temp files swept, its run
    files deleted (``overwrite``) or its old STOP request dropped (``resume``)."""
    check_target(out, resume=resume, overwrite=overwrite, protect=protect, force=force)
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
    out: str | os.PathLike,
    resume: bool = False,
    overwrite: bool = False,
    protect: Iterable = (),
    force: bool = False,
) -> Iterator[Run]:
    """Lock ``out`` for writing, check and prepare it (:func:`prepare`), yield its :class:`Run`.

    A second writer gets a :class:`UserError` naming the first. The checks run again under
    the lock, so two processes racing for one empty folder cannot both pass them. A folder
    this call made is removed again when the run fails before writing anything into it:
    a refused or failed start leaves nothing behind (not even the lock file).
    """
    out = Path(out)
    check_target(out, resume=resume, overwrite=overwrite, protect=protect, force=force)
    created = not out.exists()
    with user_os_errors(out):
        out.mkdir(parents=True, exist_ok=True)
    with contextlib.ExitStack() as stack:
        try:
            with user_os_errors(out / WRITER_LOCK):
                stack.enter_context(file_lock(out / WRITER_LOCK, wait=False))
        except LockBusy:
            raise UserError(_busy(out, live_writer(out))) from None
        if created:  # only while holding the lock: never a folder another writer just took

            def undo(kind, *_) -> bool:
                if kind is not None:
                    _remove_if_bare(out)
                return False  # the error goes on

            stack.push(undo)
        prepare(out, resume=resume, overwrite=overwrite, protect=protect, force=force)
        record = {**identity(), "time": time.time(), "argv": sys.argv}
        write_json(out / WRITER_FILE, record)
        stack.callback(_forget_writer, out)
        yield Run(out)


def _remove_if_bare(out: Path) -> None:
    """Remove ``out`` when it holds only housekeeping files (nothing of a run was written)."""
    with contextlib.suppress(OSError):
        names = os.listdir(out)
        if all(n in _HOUSEKEEPING for n in names):
            for n in names:
                (out / n).unlink(missing_ok=True)
            out.rmdir()


@contextlib.contextmanager
def writers_held(path: str | os.PathLike) -> Iterator[None]:
    """Hold the writer lock of every run directory at or below ``path`` (links not followed)
    for the ``with`` block, or raise a :class:`UserError` naming one that a live process
    holds. Deleting a tree inside this block cannot pull a folder from under its writer,
    whatever its status.json says (a run in its start-up window has no status yet)."""
    path = Path(path)
    with contextlib.ExitStack() as stack:
        for folder, _dirs, files in os.walk(path):  # os.walk does not follow links
            if WRITER_LOCK not in files:
                continue
            try:
                stack.enter_context(file_lock(Path(folder) / WRITER_LOCK, wait=False))
            except LockBusy:
                raise UserError(
                    f"{folder} is being written by {live_writer(Path(folder)) or 'a live process'}; "
                    "stop that run (or wait for it to end) before deleting it"
                ) from None
            except OSError:  # unreadable: the delete that follows will say so, or skip it
                continue
        yield


def _forget_writer(out: Path) -> None:
    with contextlib.suppress(OSError):  # a record left behind blocks nothing
        (out / WRITER_FILE).unlink(missing_ok=True)
