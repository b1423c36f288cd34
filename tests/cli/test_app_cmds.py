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


def test_fcfd_notebooks_copies_the_tutorials_and_never_overwrites_silently(tmp_path, capsys):
    from pathlib import Path

    from fcfd_viz.cli import main

    checkout = Path(__file__).resolve().parents[2] / "notebooks"
    names = sorted(p.name for p in checkout.glob("*.ipynb"))
    dest = tmp_path / "new" / "tutorials"
    assert main(["notebooks", str(dest)]) == 0
    assert sorted(p.name for p in dest.iterdir()) == names
    assert all((dest / n).read_bytes() == (checkout / n).read_bytes() for n in names)

    (dest / names[0]).write_text("my edits")
    capsys.readouterr()
    assert main(["notebooks", str(dest)]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and names[0] in err and "--overwrite" in err
    assert (dest / names[0]).read_text() == "my edits"  # nothing copied
    assert main(["notebooks", str(dest), "--overwrite"]) == 0
    assert (dest / names[0]).read_bytes() == (checkout / names[0]).read_bytes()


def test_a_port_out_of_range_is_one_line(tmp_path, capsys):
    """``fcfd app --port 99999`` raised OverflowError (issue #29); nothing is started."""
    from fcfd_viz.cli import main

    for port in ("99999", "0", "-1"):
        assert main(["app", "--runs-dir", str(tmp_path), "--port", port]) == 2
        err = capsys.readouterr().err.strip()
        assert len(err.splitlines()) == 1 and "--port must be a TCP port" in err, err


def test_fcfd_notebooks_into_a_file_names_its_own_argument(tmp_path, capsys):
    """Issue #29: `fcfd notebooks FILE` said "choose another --out" (it has no such flag)."""
    from fcfd_viz.cli import main

    (tmp_path / "f").write_text("keep")
    for dest in (tmp_path / "f", tmp_path / "f" / "sub"):
        assert main(["notebooks", str(dest)]) == 2
        err = capsys.readouterr().err.strip()
        assert len(err.splitlines()) == 1 and "choose another DIR" in err and "--out" not in err
    assert (tmp_path / "f").read_text() == "keep"
