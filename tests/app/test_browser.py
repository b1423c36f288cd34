"""The dashboard in a real browser: `streamlit run` on a free 127.0.0.1 port, driven by
Playwright with Debian's Chromium; screenshots land in test-artifacts/screenshots/."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

CHROMIUM = "/usr/bin/chromium"
pytestmark = [
    pytest.mark.browser,
    pytest.mark.slow,
    pytest.mark.skipif(
        not Path(CHROMIUM).exists(),
        reason=f"{CHROMIUM} not found: apt-get install -y --no-install-recommends chromium",
    ),
]

ROOT = Path(__file__).resolve().parents[2]
SHOTS = ROOT / "test-artifacts" / "screenshots"
ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
# (url path, page title, heading, needs a click on Compute)
PAGES = [
    ("", "Home", "fcfd-viz", False),
    ("sensitivity", "Sensitivity", "Sensitivity", False),
    ("perturbation", "Perturbation", "Perturbation explorer", False),
    # `fcfd defaults` fitted the default students' connectors: the page opens on them
    ("gap", "Functional gap", "Functional gap", False),
    ("distill", "Distill", "Distill", False),
    ("runs", "Runs", "Runs", False),
]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_server(runs_dir: Path, port: int, log: Path, **env) -> subprocess.Popen:
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
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"streamlit exited with {proc.returncode}")
        try:
            with urllib.request.urlopen(f"{url}/_stcore/health", timeout=2) as r:
                if r.read().strip() == b"ok":
                    return
        except OSError:
            time.sleep(0.3)
    raise TimeoutError(f"streamlit not healthy at {url} after {timeout} s")


def stop_server(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(10)


@pytest.fixture
def server(gap_runs, tmp_path):
    port = free_port()
    # the fit budget gap_runs' kept results were computed with
    proc = start_server(gap_runs, port, tmp_path / "streamlit.log", FCFD_GAP_FIT_EPOCHS="10")
    try:
        url = f"http://127.0.0.1:{port}"
        wait_healthy(url, proc)
        yield url
    finally:
        stop_server(proc)


def visit(page, url: str, path: str, title: str, heading: str, compute: bool) -> None:
    """Open one page, wait for its heading and a rendered plotly chart."""
    page.goto(f"{url}/{path}", wait_until="domcontentloaded")
    page.locator("h1").filter(has_text=heading).first.wait_for(timeout=60_000)
    if compute:
        page.get_by_role("button", name="Compute").click(timeout=60_000)
    chart = page.locator("[data-testid=stPlotlyChart] .js-plotly-plot").first
    # Compute fits connectors for every student picked: minutes for the nine default ones
    chart.wait_for(state="visible", timeout=480_000 if compute else 180_000)
    page.wait_for_timeout(800)  # let plotly finish drawing before the screenshot
    assert title in page.title()


def test_every_page_renders_in_chromium(server):
    from playwright.sync_api import sync_playwright

    SHOTS.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=ARGS)
        try:
            page = browser.new_page(viewport={"width": 1400, "height": 1000})
            for path, title, heading, compute in PAGES:
                visit(page, server, path, title, heading, compute)
                name = path or "home"
                page.screenshot(path=str(SHOTS / f"{name}.png"), full_page=True)
                assert page.locator(".js-plotly-plot").count() >= 1
                assert not page.locator("[data-testid=stException]").count(), name
        finally:
            browser.close()
