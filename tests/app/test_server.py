"""The dashboard's server settings (issue #11, point 10), on a real ``streamlit run`` started
the way ``fcfd app`` starts it, from a directory that is not the checkout: a foreign Host
header gets no websocket, and an error reaches the browser without its details."""

from __future__ import annotations

import base64
import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import tomllib
from helpers import ARGS, CHROMIUM, free_port, stop_server, wait_healthy

from fcfd_viz.cli.app_cmds import LOCAL_HOSTS, SERVER_SETTINGS, allowed_hosts, app_command

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize("where", [".streamlit", "app/.streamlit"])
def test_the_shipped_config_matches_what_fcfd_app_passes(where):
    toml = tomllib.loads((ROOT / where / "config.toml").read_text())
    for key, value in SERVER_SETTINGS.items():
        section, name = key.split(".")
        assert str(toml[section][name]).lower() == value, key
    assert toml["server"]["allowedHosts"] == list(LOCAL_HOSTS)
    assert toml["server"]["address"] == "127.0.0.1"


EFFECTIVE = """import json, sys
from streamlit import config
config._main_script_path = sys.argv[1]  # what `streamlit run SCRIPT` sets
config.get_config_options(force_reparse=True)
keys = [*sys.argv[2:], "server.address", "server.allowedHosts"]
print(json.dumps({k: config.get_option(k) for k in keys}))
"""


def test_streamlit_run_from_another_directory_keeps_the_settings(tmp_path: Path):
    """Issue #29: `streamlit run /path/app/main.py` from outside the checkout read no
    config (only the working directory's): all interfaces, any Host, full error details.
    Streamlit's own loader, run from an empty directory with an empty HOME, now finds
    every setting beside the script."""
    script = str(ROOT / "app" / "main.py")
    proc = subprocess.run(
        [sys.executable, "-c", EFFECTIVE, script, *SERVER_SETTINGS],
        cwd=tmp_path, env={**os.environ, "HOME": str(tmp_path)},
        capture_output=True, text=True, timeout=120, check=True,
    )  # fmt: skip
    got = json.loads(proc.stdout.strip().splitlines()[-1])
    for key, value in SERVER_SETTINGS.items():
        assert str(got[key]).lower() == value, (key, got[key])
    assert got["server.address"] == "127.0.0.1" and got["server.allowedHosts"] == list(LOCAL_HOSTS)


@pytest.mark.slow
def test_a_plain_streamlit_run_elsewhere_binds_localhost_and_checks_the_host(tmp_path: Path):
    """The same on a real server: `streamlit run /path/app/main.py --server.port P` started
    in another directory listens on 127.0.0.1 only and refuses a foreign Host."""
    import psutil

    port = free_port()
    cmd = [sys.executable, "-m", "streamlit", "run", str(ROOT / "app" / "main.py")]
    proc = subprocess.Popen(
        [*cmd, "--server.port", str(port), "--", "--runs-dir", str(tmp_path / "runs")],
        cwd=tmp_path, env={**os.environ, "HOME": str(tmp_path)},
        stdout=(tmp_path / "log").open("wb"), stderr=subprocess.STDOUT, start_new_session=True,
    )  # fmt: skip
    try:
        wait_healthy(f"http://127.0.0.1:{port}", proc)
        listening = {
            c.laddr.ip
            for c in psutil.Process(proc.pid).net_connections(kind="inet")
            if c.status == psutil.CONN_LISTEN and c.laddr.port == port
        }
        assert listening == {"127.0.0.1"}, listening
        assert websocket_status(port, f"localhost:{port}") == 101
        assert websocket_status(port, f"evil.example:{port}") == 403
    finally:
        stop_server(proc)


def test_allowed_hosts():
    assert allowed_hosts("127.0.0.1") == list(LOCAL_HOSTS)
    assert allowed_hosts("0.0.0.0") == list(LOCAL_HOSTS)  # a wildcard names no host
    assert allowed_hosts("10.1.2.3", ["Lab.example "]) == [*LOCAL_HOSTS, "10.1.2.3", "lab.example"]


def serve(tmp_path: Path, script: Path | None = None, allow: list[str] = ()):
    """``fcfd app``'s command on a free port, run from ``tmp_path`` (not the checkout)."""
    port = free_port()
    cmd = app_command("127.0.0.1", port, tmp_path / "runs", list(allow), script)
    log = tmp_path / "streamlit.log"
    proc = subprocess.Popen(
        cmd,
        cwd=tmp_path,
        env={**os.environ, "FCFD_RUNS_DIR": str(tmp_path / "runs")},
        stdout=log.open("wb"),
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    url = f"http://127.0.0.1:{port}"
    wait_healthy(url, proc)
    return proc, port, url


def websocket_status(port: int, host: str) -> int:
    """HTTP status of a websocket upgrade to the app's stream with this Host header."""
    key = base64.b64encode(os.urandom(16)).decode()
    request = (
        f"GET /_stcore/stream HTTP/1.1\r\nHost: {host}\r\nUpgrade: websocket\r\n"
        f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n"
        f"Sec-WebSocket-Protocol: streamlit\r\nOrigin: http://{host}\r\n\r\n"
    )
    with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
        s.sendall(request.encode())
        return int(s.recv(4096).split(b" ", 2)[1])


@pytest.mark.slow
def test_a_foreign_host_gets_no_websocket(tmp_path: Path):
    proc, port, _ = serve(tmp_path, allow=["lab.example"])
    try:
        assert websocket_status(port, f"127.0.0.1:{port}") == 101
        assert websocket_status(port, f"localhost:{port}") == 101
        assert websocket_status(port, f"lab.example:{port}") == 101  # --allow-host
        assert websocket_status(port, f"evil.example:{port}") == 403  # a DNS-rebinding page
        assert websocket_status(port, "evil.example") == 403
    finally:
        stop_server(proc)


@pytest.mark.slow
@pytest.mark.browser
@pytest.mark.skipif(not Path(CHROMIUM).exists(), reason=f"{CHROMIUM} not found")
def test_an_error_reaches_the_browser_without_details(tmp_path: Path):
    from playwright.sync_api import sync_playwright

    script = tmp_path / "crash.py"
    script.write_text(
        "import streamlit as st\nst.title('crash')\nraise RuntimeError('secret-detail-4711')\n"
    )
    proc, _, url = serve(tmp_path, script)
    try:
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=ARGS)
            try:
                page = browser.new_page()
                page.goto(url, wait_until="domcontentloaded")
                page.locator("[data-testid=stException]").first.wait_for(timeout=60_000)
                text = page.locator("[data-testid=stException]").first.inner_text()
                assert "secret-detail-4711" not in page.content(), text
                assert "RuntimeError" not in text and "Traceback" not in text, text
            finally:
                browser.close()
    finally:
        stop_server(proc)
    assert "secret-detail-4711" in (tmp_path / "streamlit.log").read_text()  # for the owner


def test_fcfd_app_passes_the_settings(monkeypatch, tmp_path: Path):
    from fcfd_viz.cli import app_cmds, main

    calls = []
    monkeypatch.setattr(app_cmds.subprocess, "call", lambda cmd, env: calls.append(cmd) or 0)
    assert main(["app", "--host", "0.0.0.0", "--allow-host", "lab.example"]) == 0
    cmd = calls[0]
    for key, value in SERVER_SETTINGS.items():
        assert cmd[cmd.index(f"--{key}") + 1] == value
    hosts = [cmd[i + 1] for i, a in enumerate(cmd) if a == "--server.allowedHosts"]
    assert hosts == [*LOCAL_HOSTS, "lab.example"]
    assert sys.executable == cmd[0]
