"""The one file-lock helper (fcfd_viz.io.locks): exclusive across processes, released when the
holder dies, ``wait=False`` answers at once."""

from __future__ import annotations

import subprocess
import sys
import textwrap
import time

import pytest

from fcfd_viz.io.locks import LockBusy, file_lock

HOLD = textwrap.dedent(
    """
    import sys, time
    from fcfd_viz.io.locks import file_lock
    with file_lock(sys.argv[1]):
        print("held", flush=True)
        time.sleep(60)
    """
)


def test_a_lock_held_by_another_process_is_busy_until_it_dies(tmp_path):
    path = tmp_path / "sub" / "lock"  # the folder is created
    proc = subprocess.Popen(
        [sys.executable, "-c", HOLD, str(path)], stdout=subprocess.PIPE, text=True
    )
    try:
        assert proc.stdout.readline().strip() == "held"
        with pytest.raises(LockBusy), file_lock(path, wait=False):
            pass
    finally:
        proc.kill()  # SIGKILL: the kernel drops the flock
        proc.wait()
    deadline = time.monotonic() + 10
    while True:
        try:
            with file_lock(path, wait=False):
                break
        except LockBusy:
            assert time.monotonic() < deadline, "the lock outlived its holder"
            time.sleep(0.05)
    assert path.exists()  # the lock file stays (deleting it would let two holders in)


def test_two_holders_in_one_process_exclude_each_other(tmp_path):
    with file_lock(tmp_path / "lock"):
        with pytest.raises(LockBusy), file_lock(tmp_path / "lock", wait=False):
            pass
