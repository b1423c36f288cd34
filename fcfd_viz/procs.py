"""Liveness of background processes from /proc (pid reuse guarded by the start time)."""

from __future__ import annotations

import contextlib
import os
from pathlib import Path


def proc_stat(pid: int) -> tuple[str, int] | None:
    """(state letter, start time in clock ticks) of a Linux process, None when gone."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = text.rsplit(")", 1)[1].split()
    return fields[0], int(fields[19])


def pid_alive(pid: int | None, start: int | None = None) -> bool:
    """True while ``pid`` runs (not a zombie, and started at ``start`` when that is given)."""
    if not pid:
        return False
    with contextlib.suppress(ChildProcessError, OSError):
        os.waitpid(pid, os.WNOHANG)  # reap our own finished children
    if not Path("/proc").is_dir():  # not Linux: best effort
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return False
        except PermissionError:
            return True
        return True
    info = proc_stat(pid)
    if info is None or info[0] in "ZX":
        return False
    return start is None or info[1] == start
