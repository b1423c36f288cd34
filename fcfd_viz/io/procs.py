"""Process identity: a pid plus its start time (psutil), so a reused pid is never mistaken
for the process that wrote a record.

Every record that names a process (``status.json``, ``writer.json``, the job registry) stores
``pid`` and ``create_time`` from :func:`identity`; :func:`pid_alive` answers whether *that*
process still runs. Records written before ``create_time`` existed carry only a ``time``:
a process that started after the record was written cannot have written it.
"""

from __future__ import annotations

import contextlib
import os
import time

import psutil

# psutil derives create_time from boot time + start ticks; two reads agree to the tick, but
# allow a little slack for clock rounding between processes
_SAME_START_S = 0.05


def identity(pid: int | None = None) -> dict:
    """``{"pid": pid, "create_time": start time}`` of ``pid`` (default: this process)."""
    pid = os.getpid() if pid is None else pid
    try:
        create_time = psutil.Process(pid).create_time()
    except (psutil.Error, OSError):
        create_time = None
    return {"pid": pid, "create_time": create_time}


def _number(x) -> float | None:
    return float(x) if isinstance(x, (int, float)) and not isinstance(x, bool) else None


def pid_alive(pid, create_time=None, not_after=None) -> bool:
    """True while process ``pid`` runs and is the one a record names.

    ``create_time``: the start time the record stored (a different one means the pid was
    reused). ``not_after``: when only the record's write time is known, a process started
    later cannot be its writer. Zombies count as dead. Junk arguments (a record from a
    broken file) count as dead.
    """
    if not isinstance(pid, int) or isinstance(pid, bool) or not 0 < pid < 2**31:
        return False
    with contextlib.suppress(ChildProcessError, OSError):
        os.waitpid(pid, os.WNOHANG)  # reap our own finished children
    try:
        proc = psutil.Process(pid)
        if proc.status() == psutil.STATUS_ZOMBIE:
            return False
        started = proc.create_time()
    except psutil.NoSuchProcess:
        return False
    except (psutil.Error, OSError):  # it exists but cannot be inspected: assume it is ours
        return True
    if create_time is not None:
        want = _number(create_time)
        return want is not None and abs(started - want) < _SAME_START_S
    limit = _number(not_after)
    return limit is None or started <= limit + 1.0


def describe(record: dict) -> str:
    """``pid N (started Mon DD HH:MM:SS)`` for a record made by :func:`identity`."""
    start = _number(record.get("create_time"))
    when = f" (started {time.strftime('%b %d %H:%M:%S', time.localtime(start))})" if start else ""
    return f"pid {record.get('pid')}{when}"


def record_alive(rec: dict | None) -> bool:
    """Whether the process a record names (pid, create_time, time) still runs."""
    rec = rec or {}
    return pid_alive(rec.get("pid"), rec.get("create_time"), rec.get("time"))
