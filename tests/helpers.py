"""Helpers shared by several test modules: test modules import them from here (``from helpers
import ...``; tests/ is on sys.path beside tests/conftest.py), never from one another (checked
by tests/test_layers.py). Fixtures go in a conftest.py instead."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch

from fcfd_viz.training.callbacks import Callback

if TYPE_CHECKING:
    from streamlit.testing.v1 import AppTest

    from fcfd_viz import models

ROOT = Path(__file__).resolve().parents[1]  # the repository


# --- waiting ---------------------------------------------------------------------------------


def wait_for(cond: Callable[[], Any], timeout: float = 120, what: str = "", every: float = 0.1):
    """Poll ``cond()`` every ``every`` seconds until it returns something true (returned);
    fail the test after ``timeout`` seconds, naming ``what`` it waited for."""
    deadline = time.monotonic() + timeout
    while not (result := cond()):
        assert time.monotonic() < deadline, f"timed out after {timeout} s waiting for {what}"
        time.sleep(every)
    return result


# --- the command line (tests/cli) ------------------------------------------------------------

FAST = ["--device", "cpu", "--no-progress"]


def ok(capsys, argv: list[str]) -> str:
    """Run ``fcfd argv`` in process; it must exit 0. Returns its stdout."""
    from fcfd_viz.cli import main

    code = main(argv)
    out, err = capsys.readouterr()
    assert code == 0, err
    return out


def fails(capsys, argv: list[str], *needles: str) -> str:
    """Run ``argv``; it must exit 2 with exactly one line on stderr (containing ``needles``)."""
    from fcfd_viz.cli import main

    code = main(argv)
    out, err = capsys.readouterr()
    assert code == 2, (out, err)
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert "Traceback" not in err and lines[0].startswith("fcfd "), err
    for n in needles:
        assert n in lines[0], (n, lines[0])
    return lines[0]


def snapshot(d: Path) -> dict[str, tuple[bytes, int]]:
    """Every file under ``d``: its bytes and mtime (to check that nothing was touched)."""
    return {
        str(p.relative_to(d)): (p.read_bytes(), p.stat().st_mtime_ns)
        for p in sorted(d.rglob("*"))
        if p.is_file()
    }


# --- weights (tests/cli/test_weights_*) ------------------------------------------------------


def randomised(arch: str, num_classes: int = 100, seed: int = 0) -> models.StagedNet:
    """A net whose every BatchNorm has its own random affine and statistics (a mapping that
    swapped two of them would change the logits) and a random classifier bias."""
    from fcfd_viz import models

    torch.manual_seed(seed)
    net = models.create(arch, num_classes=num_classes)
    with torch.no_grad():
        for m in net.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                m.weight.uniform_(0.5, 1.5), m.bias.normal_(0, 0.2)
                m.running_mean.normal_(0, 0.2), m.running_var.uniform_(0.5, 2.0)
                m.num_batches_tracked.fill_(seed + 7)
        net.head.fc.bias.normal_(0, 1)
    return net.eval()


def constant(arch: str, label: int, num_classes: int) -> models.StagedNet:
    """A net that predicts ``label`` for every image (its accuracy is that label's share)."""
    net = randomised(arch, num_classes)
    with torch.no_grad():
        net.head.fc.weight.zero_(), net.head.fc.bias.zero_()
        net.head.fc.bias[label] = 1.0
    return net


def make_run(root: Path) -> Path:
    """An imported resnet8 run directory (cifar100) in ``root``, made without training."""
    from fcfd_viz.weights.interop import import_teacher

    torch.save(randomised("resnet8").state_dict(), root / "w.pt")
    import_teacher(root / "w.pt", "resnet8", root / "resnet8")
    return root / "resnet8"


def imported(capsys, file: Path, arch: str, out: Path, *extra: str) -> str:
    """``fcfd import-teacher file --arch arch --out out``; it must succeed."""
    return ok(capsys, ["import-teacher", str(file), "--arch", arch, "--out", str(out), *extra])


# --- the app in process (tests/app, streamlit's AppTest) -------------------------------------

APP_DIR = ROOT / "app"
APP = str(APP_DIR / "main.py")
SENS, GAP = "pages/1_Sensitivity.py", "pages/2_Functional_gap.py"
DISTILL, RUNS = "pages/3_Distill.py", "pages/4_Runs.py"
DETECTION = "pages/6_Detection.py"


def open_page(page: str | None = None, timeout: float = 240) -> AppTest:
    """The app's home page run once, then ``page`` if given; neither may raise."""
    from streamlit.testing.v1 import AppTest

    at = AppTest.from_file(APP, default_timeout=timeout)
    at.run()
    if page:
        at.switch_page(page).run()
    assert not at.exception, [e.value for e in at.exception]
    return at


def specs(at: AppTest) -> list[str]:
    """The plotly figures ``at`` shows, as their JSON specs."""
    return [c.proto.spec for c in at.get("plotly_chart")]


def rerun(at: AppTest) -> AppTest:
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    return at


def fresh_state(monkeypatch):
    """``app/state.py`` imported anew, as when the server starts (the pages' ``import state``
    gets this one, and the old module is back after the test)."""
    monkeypatch.delitem(sys.modules, "state", raising=False)
    monkeypatch.syspath_prepend(str(APP_DIR))
    import state

    return state


# --- the app's server and Chromium (tests/app) -----------------------------------------------

CHROMIUM = "/usr/bin/chromium"
SHOTS = ROOT / "test-artifacts" / "screenshots"
ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_server(runs_dir: Path, port: int, log: Path, **env: str) -> subprocess.Popen:
    """`streamlit run app/main.py` on 127.0.0.1:port, in its own process group."""
    cmd = [sys.executable, "-m", "streamlit", "run", "app/main.py", "--server.port", str(port)]
    cmd += ["--server.address", "127.0.0.1", "--server.headless", "true"]
    cmd += ["--browser.gatherUsageStats", "false"]
    return subprocess.Popen(
        cmd,
        cwd=ROOT,
        env={**os.environ, "FCFD_RUNS_DIR": str(runs_dir), **env},
        stdout=log.open("wb"),
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )


def wait_healthy(url: str, proc: subprocess.Popen, timeout: float = 90) -> None:
    """Wait until the streamlit server ``proc`` at ``url`` says it is healthy."""

    def healthy() -> bool:
        if proc.poll() is not None:
            raise RuntimeError(f"streamlit exited with {proc.returncode}")
        try:
            with urllib.request.urlopen(f"{url}/_stcore/health", timeout=2) as r:
                return r.read().strip() == b"ok"
        except OSError:
            return False

    wait_for(healthy, timeout, what=f"streamlit healthy at {url}", every=0.3)


def stop_server(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(10)


class Interrupt(Exception):
    """Stands in for a kill in the middle of training."""


class CrashAt(Callback):
    """Raise :class:`Interrupt` after ``step`` of the 0-based ``epoch`` (the epoch's
    checkpoint is never written)."""

    def __init__(self, epoch: int, step: int) -> None:
        self.epoch, self.step = epoch, step

    def on_step_end(self, trainer, step, losses) -> None:
        if len(trainer.history) == self.epoch and step == self.step:
            raise Interrupt
