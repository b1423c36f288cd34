"""The files a run directory may hold, by name: what ``--overwrite`` may delete and what makes
a folder something else (:mod:`fcfd_viz.runs.writer` decides with these)."""

from __future__ import annotations

import os
from pathlib import Path

from fcfd_viz.io.files import TEMP_SUFFIX
from fcfd_viz.runs.layout import STOP_FILE, TB_DIR, TB_EVENTS

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
