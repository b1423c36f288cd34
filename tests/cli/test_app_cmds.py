"""``fcfd app``: the dashboard binds this machine unless told otherwise."""

from __future__ import annotations


def test_fcfd_app_binds_localhost(monkeypatch, tmp_path):
    from fcfd_viz.cli import app_cmds, main

    calls = []
    monkeypatch.setattr(app_cmds.subprocess, "call", lambda cmd, env: calls.append(cmd) or 0)
    assert main(["app", "--runs-dir", str(tmp_path)]) == 0
    cmd = calls[0]
    assert cmd[cmd.index("--server.address") + 1] == "127.0.0.1"
    assert cmd[-2:] == ["--runs-dir", str(tmp_path.resolve())]
    assert cmd[cmd.index("run") + 1].endswith("app/main.py")
    main(["app", "--host", "0.0.0.0", "--port", "9999"])
    assert calls[1][calls[1].index("--server.address") + 1] == "0.0.0.0"
