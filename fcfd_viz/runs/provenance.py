"""Which folders are our runs, and which teacher a run was distilled from (issue #29).

* **Our runs.** A run writes ``"format": RUN_FORMAT`` into its ``config.json``. Runs written
  before the marker existed are still ours when their ``config.json`` has the keys every
  fcfd-viz version wrote (``method``, ``student``, ``data`` and ``train`` of the right
  kinds): they keep listing and resuming. Any other ``config.json`` (another tool's) is not
  ours, and ``--overwrite`` never replaces its folder.
* **The teacher.** A run records its teacher as an absolute path and the sha256 of the
  teacher's checkpoint file (``teacher_sha256`` in ``config.json`` and in its checkpoints).
  ``--resume`` and ``fcfd gap`` refuse a teacher whose file no longer has that hash: a
  resume from another directory, or a teacher replaced by ``--overwrite``, would otherwise
  continue or measure against another network without a word. Runs without the hash (older
  versions) are not checked.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterator, Mapping
from pathlib import Path

from fcfd_viz.errors import UserError
from fcfd_viz.io.files import read_object
from fcfd_viz.runs.checkpoints import checkpoint_file

RUN_FORMAT = "fcfd-viz/run-1"
CONFIG = "config.json"
SHA_KEY = "teacher_sha256"
_CHUNK = 1 << 20


def is_our_config(obj: object) -> bool:
    """``obj`` (a parsed ``config.json``) is an fcfd-viz run's: it carries our format marker,
    or it has none and holds the keys every earlier version wrote."""
    if not isinstance(obj, Mapping):
        return False
    if "format" in obj:
        return obj["format"] == RUN_FORMAT
    method = obj.get("method")
    return (
        isinstance(method, (str, Mapping))
        and isinstance(obj.get("student"), str)
        and isinstance(obj.get("data"), Mapping)
        and isinstance(obj.get("train"), Mapping)
    )


def is_run(path: str | os.PathLike) -> bool:
    """``path`` is a directory holding an fcfd-viz ``config.json`` (see :func:`is_our_config`)."""
    path = Path(path)
    if not (path / CONFIG).is_file():
        return False
    obj, _ = read_object(path / CONFIG)
    return is_our_config(obj)


def enclosing_run(path: str | os.PathLike) -> Path | None:
    """The nearest run directory strictly above ``path`` (after resolving links), or None."""
    for parent in Path(path).resolve().parents:
        if is_run(parent):
            return parent
    return None


def runs_below(path: str | os.PathLike, depth: int = 3) -> Iterator[Path]:
    """Run directories under ``path`` (``path`` itself excluded), ``depth`` levels deep;
    symlinks are not followed, unreadable folders are skipped."""
    if depth <= 0:
        return
    try:
        with os.scandir(path) as it:
            dirs = [Path(e.path) for e in it if e.is_dir(follow_symlinks=False)]
    except OSError:
        return
    for d in sorted(dirs):
        if is_run(d):
            yield d
        yield from runs_below(d, depth - 1)


def file_sha256(path: str | os.PathLike) -> str:
    """The sha256 of a file, read in chunks (a checkpoint may be hundreds of MB)."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(_CHUNK):
            h.update(chunk)
    return h.hexdigest()


def teacher_record(teacher: str | os.PathLike) -> tuple[str, str]:
    """``(absolute teacher path, sha256 of its checkpoint file)``: what a new run records.

    The path is made absolute but its links are kept (``os.path.abspath``): the user's
    name of the teacher, valid from any working directory."""
    file = checkpoint_file(teacher)
    try:
        sha = file_sha256(file)
    except OSError as e:
        raise UserError(f"cannot read the teacher {file}: {e.strerror or e}") from None
    return os.path.abspath(teacher), sha


def check_teacher(
    teacher: str | os.PathLike,
    recorded: object,
    what: str,
    fix: str = "pass the teacher it was distilled from with --teacher",
) -> None:
    """A one-line :class:`UserError` when the checkpoint of ``teacher`` no longer has the
    sha256 ``recorded`` (``what``: the run or checkpoint that recorded it; ``fix``: what to
    do). No hash recorded (a run of an earlier version): nothing to check."""
    if not isinstance(recorded, str) or not recorded:
        return
    file = checkpoint_file(teacher)
    try:
        now = file_sha256(file)
    except OSError as e:
        raise UserError(f"cannot read the teacher {file}: {e.strerror or e}") from None
    if now != recorded:
        raise UserError(
            f"the teacher {file} changed since {what} was distilled from it (sha256 "
            f"{recorded[:12]} recorded, {now[:12]} now): it is another network; {fix}"
        )


def dependants(out: str | os.PathLike, roots: list[Path]) -> list[Path]:
    """Runs under ``roots`` (other than ``out``) whose ``config.json`` names a teacher inside
    ``out``: they were distilled from the run that an overwrite of ``out`` would replace.
    A relative teacher path (runs of earlier versions) is read from the working directory."""
    target = Path(out).resolve()
    found: list[Path] = []
    for root in roots:
        for run in runs_below(root):
            if run.resolve() == target or run in found:
                continue
            obj, _ = read_object(run / CONFIG)
            teacher = obj.get("teacher") if obj else None
            if not isinstance(teacher, str) or not teacher:
                continue
            t = Path(teacher).resolve()
            if t == target or target in t.parents:
                found.append(run)
    return found


def check_recorded_teacher(ckpts: list[dict], teacher: str | os.PathLike) -> None:
    """:func:`check_teacher` for each student checkpoint whose recorded teacher is the file
    ``teacher`` names (a teacher passed explicitly that is another file is the user's choice)."""
    try:
        used = checkpoint_file(teacher).resolve()
    except UserError:
        return  # loading it says what is missing
    for c in ckpts:
        recorded = c.get("teacher")
        if not c.get(SHA_KEY) or not isinstance(recorded, str):
            continue
        try:
            same = checkpoint_file(recorded).resolve() == used
        except (UserError, OSError):
            continue
        if same:
            check_teacher(teacher, c[SHA_KEY], f"the student {c.get('path')}")


def common_teacher(ckpts: list[dict], teacher: str | os.PathLike | None = None):
    """``teacher`` when given, else the one teacher every student checkpoint of ``ckpts``
    recorded; a :class:`UserError` naming ``--teacher`` when they record none or several,
    or when the teacher's file is no longer the one a student recorded (its sha256)."""
    if teacher is None:
        recorded = {c.get("teacher") for c in ckpts}
        if None in recorded or len(recorded) != 1:
            raise UserError("the students record no single common teacher; pass --teacher CKPT")
        teacher = recorded.pop()
    # a teacher replaced since (train-teacher --overwrite) is another network: refused
    check_recorded_teacher(ckpts, teacher)
    return teacher
