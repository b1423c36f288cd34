"""Process identity (fcfd_viz.io.procs): a pid is alive only as the process a record names."""

from __future__ import annotations

import os
import subprocess
import time

from fcfd_viz.io.procs import identity, pid_alive


def test_identity_and_liveness_of_a_real_process():
    proc = subprocess.Popen(["sleep", "30"])
    try:
        me = identity(proc.pid)
        assert me["pid"] == proc.pid and me["create_time"] is not None
        assert pid_alive(proc.pid, me["create_time"])
        # the same pid with another start time is a reused pid, not this process
        assert not pid_alive(proc.pid, me["create_time"] - 100)
        # a record written before the process started cannot be its
        assert not pid_alive(proc.pid, None, not_after=me["create_time"] - 100)
    finally:
        proc.kill()
        proc.wait()
    assert not pid_alive(proc.pid, me["create_time"])


def test_junk_and_this_process():
    for junk in (None, 0, -1, "12", True, 2**40):
        assert not pid_alive(junk)
    assert pid_alive(os.getpid(), identity()["create_time"], not_after=time.time() + 1)
