"""Who may write a run directory (fcfd_viz.runs.writer), under faults: two writers, SIGKILL between
the checkpoint and the metrics write or in the middle of a write, SIGINT/SIGTERM, a full and
a read-only file system, a diverging loss.

Kills at exact moments use the trainer's test hook ``FCFD_FAULT=NAME:WHERE``
(:func:`fcfd_viz.io.files.fault_point`): the process SIGKILLs itself there.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from fcfd_viz.cli import main
from fcfd_viz.jobs import control as jobs
from fcfd_viz.runs.layout import Run
from fcfd_viz.runs.listing import list_runs

pytestmark = pytest.mark.usefixtures("one_thread")  # for the commands run in this process

TINY = ["--method", "ce", "--student", "resnet8", "--subset", "0.1", "--seed", "0"]
FAST = ["--device", "cpu", "--no-progress"]


def fcfd(*args: str, **env: str) -> subprocess.Popen:
    """``python -m fcfd_viz ARGS`` as a real process (one thread: the box has 2 cores)."""
    return subprocess.Popen(
        [sys.executable, "-m", "fcfd_viz", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "OMP_NUM_THREADS": "1", **env},
    )


def finish(proc: subprocess.Popen, timeout: float = 240) -> tuple[int, str, str]:
    out, err = proc.communicate(timeout=timeout)
    return proc.returncode, out, err


def train(out: Path, *extra: str, **env: str) -> tuple[int, str, str]:
    return finish(fcfd("distill", *TINY, "--out", str(out), *FAST, *extra, **env))


def here(*argv: str) -> tuple[int, str, str]:
    """The command in this process: a second writer needs no kill, so it need not pay for
    an interpreter start; it is still another process than the writer it meets."""
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main(list(argv))
    return code, out.getvalue(), err.getvalue()


def train_here(out: Path, *extra: str) -> tuple[int, str, str]:
    return here("distill", *TINY, "--out", str(out), *FAST, *extra)


def one_line(err: str, *needles: str) -> str:
    lines = err.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in err, err
    for n in needles:
        assert n in lines[0], (n, lines[0])
    return lines[0]


def wait_for(cond, timeout: float = 120, what: str = "") -> None:
    deadline = time.monotonic() + timeout
    while not cond():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.1)


def epochs(run: Path) -> list[int]:
    return [r["epoch"] for r in Run(run).metrics()]


def strip(records: list[dict]) -> list[dict]:
    return [{k: v for k, v in r.items() if k != "seconds"} for r in records]


def same_weights(a: Path, b: Path) -> bool:
    sa = torch.load(a, weights_only=True)["state_dict"]
    sb = torch.load(b, weights_only=True)["state_dict"]
    return sa.keys() == sb.keys() and all(torch.equal(sa[k], sb[k]) for k in sa)


# ------------------------------------------------------------------ 4. kill between writes
@pytest.mark.slow
def test_kill_between_checkpoint_and_metrics_loses_no_epoch(tmp_path: Path):
    whole, killed = tmp_path / "whole", tmp_path / "killed"
    assert train(whole, "--epochs", "3")[0] == 0
    code, _, _ = train(killed, "--epochs", "3", FCFD_FAULT="after-checkpoint:2")
    assert code == -signal.SIGKILL
    assert torch.load(killed / "last.pt", weights_only=True)["epoch"] == 2
    assert epochs(killed) == [1]  # the kill came before epoch 2's line
    # the listing sees the dead writer, whatever its status file says
    assert [r["state"] for r in list_runs(tmp_path) if r["name"] == "killed"] == ["interrupted"]
    code, _, err = finish(fcfd("distill", "--resume", "--out", str(killed), *FAST))
    assert code == 0, err
    assert epochs(killed) == [1, 2, 3]  # every epoch once (was [1, 3])
    assert strip(Run(killed).metrics()) == strip(Run(whole).metrics())
    assert Run(killed).summary()["epochs"] == 3
    assert same_weights(killed / "last.pt", whole / "last.pt")


# ------------------------------------------------------------------ 3. two writers
@pytest.mark.slow
def test_a_second_writer_is_refused_while_the_first_trains(tmp_path: Path):
    out = tmp_path / "run"
    first = fcfd("distill", *TINY, "--epochs", "300", "--out", str(out), *FAST)
    try:
        wait_for(lambda: (out / "last.pt").exists(), what="the first epoch")
        for argv in (
            ["distill", "--resume", "--out", str(out), *FAST],
            ["distill", *TINY, "--epochs", "1", "--out", str(out), "--overwrite", *FAST],
            ["distill", *TINY, "--epochs", "1", "--out", str(out), *FAST],
        ):
            code, _, err = here(*argv)
            assert code == 2, err
            one_line(err, f"is being written by pid {first.pid} (started ")
        Run(out).request_stop()
        code, _, err = finish(first)
        assert code == 0, err
    finally:
        first.kill()
        first.wait()
    done = epochs(out)
    assert done == list(range(1, len(done) + 1))  # one writer: every epoch exactly once
    assert not (out / "writer.json").exists()  # the record leaves with its writer


@pytest.mark.slow
def test_two_writers_racing_for_one_empty_folder(tmp_path: Path):
    out = tmp_path / "run"
    out.mkdir()
    procs = [fcfd("distill", *TINY[:-1], str(s), "--epochs", "2", "--out", str(out), *FAST)
             for s in (1, 2)]  # fmt: skip
    results = [finish(p) for p in procs]
    codes = sorted(code for code, _, _ in results)
    assert codes == [0, 2], results
    loser = next(err for code, _, err in results if code == 2)
    assert "being written by" in loser or "not empty" in loser, loser
    seeds = {json.loads((out / "config.json").read_text())["train"]["seed"]}
    assert epochs(out) == [1, 2] and len(seeds) == 1  # no interleaving of two seeds


HOLD = """import sys, time
from fcfd_viz.runs.writer import open_run
with open_run(sys.argv[1]):
    print("holding", flush=True)
    time.sleep(120)
"""


@pytest.mark.slow
def test_the_lock_alone_refuses_a_second_writer_until_its_holder_dies(tmp_path: Path):
    """A writer that holds the lock of a still-empty folder (the race of two writers that
    both found it empty): the second is refused by the lock itself, even without the
    writer.json record, and a SIGKILL of the holder frees the folder at once."""
    out = tmp_path / "run"
    holder = subprocess.Popen([sys.executable, "-c", HOLD, str(out)], stdout=subprocess.PIPE)
    try:
        assert holder.stdout.readline().strip() == b"holding"
        (out / "writer.json").unlink()  # only the flock is left to say it is taken
        code, _, err = train_here(out, "--epochs", "1")
        assert code == 2
        one_line(err, "is being written by another process")
    finally:
        holder.kill()
        holder.wait()
    code, _, err = train_here(out, "--epochs", "1")
    assert code == 0, err


def test_a_stale_writer_record_blocks_nothing(tmp_path: Path):
    out = tmp_path / "run"
    out.mkdir()
    sleeper = subprocess.Popen(["sleep", "60"])  # alive, but it does not hold the lock
    try:
        for rec in ({"pid": 2**22 + 7, "create_time": 1.0}, {"pid": sleeper.pid}):
            (out / "writer.json").write_text(json.dumps(rec))
            code, _, err = train_here(out, "--epochs", "1", "--overwrite")
            assert code == 0, err
    finally:
        sleeper.kill()
        sleeper.wait()


# ------------------------------------------------------------------ 6. signals, temp files
@pytest.mark.slow
@pytest.mark.parametrize("sig, code", [(signal.SIGINT, 130), (signal.SIGTERM, 143)])
def test_a_signal_ends_the_run_interrupted_and_resumable(tmp_path: Path, sig, code):
    root = tmp_path / "runs"
    out = root / "run"
    proc = fcfd("distill", *TINY, "--epochs", "300", "--out", str(out), *FAST)
    wait_for(lambda: (out / "last.pt").exists(), what="the first epoch")
    proc.send_signal(sig)
    rc, _, err = finish(proc)
    assert rc == code
    one_line(err, "fcfd distill: interrupted")
    status = Run(out).status()
    assert status["state"] == "interrupted", status
    job = jobs.get_job(root, "run")
    assert job.state == "interrupted" and job.state in jobs.RESUMABLE  # the app's Resume list
    assert not [p for p in out.iterdir() if p.name.endswith(".tmp")]


@pytest.mark.slow
def test_a_kill_in_the_middle_of_a_write_leaves_a_temp_file_the_next_writer_sweeps(tmp_path):
    out = tmp_path / "run"
    resume = ["distill", "--resume", "--out", str(out), *FAST]
    assert train(out, "--epochs", "3", FCFD_FAULT="after-checkpoint:1")[0] == -signal.SIGKILL
    code, _, _ = finish(fcfd(*resume, FCFD_FAULT="mid-write:last.pt"))  # in epoch 2's save
    assert code == -signal.SIGKILL
    temps = [p.name for p in out.iterdir() if p.name.endswith(".tmp")]
    assert len(temps) == 1 and temps[0].startswith(".last.pt."), temps
    assert torch.load(out / "last.pt", weights_only=True)["epoch"] == 1  # never renamed over
    code, _, err = finish(fcfd(*resume))
    assert code == 0, err
    assert not [p for p in out.iterdir() if p.name.endswith(".tmp")]
    assert epochs(out) == [1, 2, 3]


# ------------------------------------------------------------------ 5. full / read-only disk
@pytest.fixture
def small_fs(tmp_path: Path):
    """A tmpfs mount (root only); yields a function remounting it (size, ro)."""
    if os.geteuid() != 0:
        pytest.skip("mounting a small tmpfs needs root")
    mnt = tmp_path / "mnt"
    mnt.mkdir()

    def mount(opts: str) -> Path:
        subprocess.run(["umount", str(mnt)], capture_output=True)
        r = subprocess.run(["mount", "-t", "tmpfs", "-o", opts, "tmpfs", str(mnt)])
        if r.returncode:
            pytest.skip(f"cannot mount tmpfs here (mount exited {r.returncode})")
        return mnt

    yield mount
    subprocess.run(["umount", str(mnt)], capture_output=True)


def test_a_full_disk_is_one_line_and_the_run_ends_failed(small_fs):
    mnt = small_fs("size=600k")  # config, status and best.pt fit; last.pt (+ momentum) does not
    out = mnt / "run"
    code, _, err = train_here(out, "--epochs", "2")
    assert code == 2
    line = one_line(err, "cannot write", "No space left on device", "free some space")
    assert str(out) in line
    assert Run(out).status()["state"] == "failed"
    assert not [p for p in out.iterdir() if p.name.endswith(".tmp")]


def test_a_read_only_disk_is_one_line(small_fs):
    mnt = small_fs("size=1m,ro")
    code, _, err = train_here(mnt / "run", "--epochs", "1")
    assert code == 2
    one_line(err, "cannot write", "Read-only file system", "choose another --out")


# ------------------------------------------------------------------ 8. divergence
def test_an_exploding_loss_stops_cleanly_in_one_line(tmp_path: Path):
    code, _, err = train_here(tmp_path / "run", "--epochs", "2", "--lr", "1e6")
    assert code == 2
    one_line(err, "training diverged in epoch 1", "no checkpoint was written", "lower --lr")
    status = Run(tmp_path / "run").status()
    assert status["state"] == "diverged" and "diverged" in status["error"]
    assert not (tmp_path / "run" / "last.pt").exists()


def test_a_start_that_fails_leaves_no_folder_behind(tmp_path: Path):
    """Issue #29: a run refused after its folder was made left it holding only
    ``.writer.lock``. A folder open_run made goes again when nothing was written into it;
    one that existed before, or that holds a run file, stays."""
    from fcfd_viz.runs.writer import open_run

    new, old = tmp_path / "a" / "new", tmp_path / "old"
    old.mkdir()
    for out in (new, old):
        with pytest.raises(RuntimeError), open_run(out):
            raise RuntimeError("the device was gone")
    assert not new.exists() and old.is_dir()
    with pytest.raises(RuntimeError), open_run(new) as run:
        run.write_status(state="failed")
        raise RuntimeError("after a first write")
    assert (new / "status.json").is_file()
