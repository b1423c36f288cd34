"""The one file-lock helper (``filelock``): the job registry, the defaults build and the
writer of a run directory all lock through :func:`file_lock`.

The locks are ``flock`` locks on a file that stays in place: the kernel drops them when the
holder dies (even by SIGKILL), so a crashed process never leaves a stale lock behind.
Deleting a lock file would let two processes lock two different inodes, so it is kept.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from filelock import FileLock, Timeout


class LockBusy(Exception):
    """:func:`file_lock` with ``wait=False`` found the lock held by another holder."""


@contextmanager
def file_lock(path: str | os.PathLike, wait: bool = True) -> Iterator[None]:
    """Hold an exclusive lock on ``path`` (created if missing) for the ``with`` block.

    ``wait=False`` raises :class:`LockBusy` at once instead of waiting. Locks are not shared
    between lock objects, so two threads (or two callers) of one process exclude each other
    as two processes do.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    lock = FileLock(str(path))
    try:
        lock.acquire(timeout=-1 if wait else 0)
    except Timeout:
        raise LockBusy(str(path)) from None
    try:
        yield
    finally:
        lock.release()
