"""``fcfd --import MODULE`` and ``FCFD_IMPORT``: an architecture of the user's trains, loads,
evaluates, probes, distils and reaches the app; a module that fails is one line."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from fcfd_viz.cli import main
from fcfd_viz.models import registry

pytestmark = pytest.mark.usefixtures("one_thread")

FAST = ["--device", "cpu", "--no-progress"]
ARCH, MODULE = "user_cli_tiny", "user_cli_nets"


def forget() -> None:
    """As in a new process: the architecture unregistered, its module not imported."""
    registry._REGISTRY.pop(ARCH, None)
    sys.modules.pop(MODULE, None)


def run(capsys, argv: list[str]) -> tuple[int, str, str]:
    code = main(argv)
    out, err = capsys.readouterr()
    return code, out, err


def test_user_arch_through_every_command(model_module, tmp_path, capsys, monkeypatch):
    monkeypatch.delenv("FCFD_IMPORT", raising=False)
    model_module(MODULE, ARCH)
    teacher, student = tmp_path / "teacher", tmp_path / "student"
    imp = ["--import", MODULE]
    train = ["train-teacher", "--arch", ARCH, "--epochs", "1", "--out", str(teacher), *FAST]
    code, _, err = run(capsys, [*imp, *train])
    assert code == 0, err
    assert json.loads((teacher / "summary.json").read_text())["arch"] == ARCH

    forget()  # without the module, its checkpoint cannot be rebuilt: one line says how
    code, _, err = run(capsys, ["eval", str(teacher), "--json"])
    assert code == 2 and len(err.strip().splitlines()) == 1
    assert f"unknown architecture '{ARCH}'" in err and "--import" in err

    code, out, err = run(capsys, [*imp, "eval", str(teacher), "--json"])
    assert code == 0, err
    assert json.loads(out)["arch"] == ARCH and 0 <= json.loads(out)["top1"] <= 100

    forget()
    probe = ["probe", str(teacher), "--stage", "0", "--images", "4", "--directions", "channel"]
    code, out, err = run(capsys, [*imp, *probe, "--attribution", "none", "--json", *FAST[2:]])
    assert code == 0, err
    assert json.loads(out)["arch"] == ARCH and len(json.loads(out)["channel_sensitivity"]) == 4

    forget()
    distill = ["distill", "--method", "fcfd", "--student", ARCH, "--teacher", str(teacher)]
    code, _, err = run(capsys, [*imp, *distill, "--epochs", "1", "--out", str(student), *FAST])
    assert code == 0, err

    forget()  # FCFD_IMPORT instead of --import: the gap of the FCFD student
    monkeypatch.setenv("FCFD_IMPORT", MODULE)
    gap = ["gap", "--teacher", str(teacher), "--student", str(student), "--json"]
    code, out, err = run(capsys, [*gap, "--fit-max-epochs", "1", "--no-progress"])
    assert code == 0, err
    assert json.loads(out)["stages"] == [1]


def test_global_option_and_env_in_a_new_process(model_module, tmp_path):
    import os

    model_module(
        "user_cli_marker", source="import sys\nprint('user module imported', file=sys.stderr)\n"
    )
    env = {**os.environ, "FCFD_IMPORT": "user_cli_absent"}
    cmd = [sys.executable, "-m", "fcfd_viz", "--import", "user_cli_marker", "runs", str(tmp_path)]
    done = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=120)
    # --import first, then $FCFD_IMPORT, whose missing module ends the command in one line
    assert done.returncode == 2 and done.stdout == ""
    assert done.stderr.splitlines() == [
        "user module imported",
        "fcfd runs: error: cannot import model module 'user_cli_absent': "
        "ModuleNotFoundError: No module named 'user_cli_absent'",
    ]


def test_app_passes_the_imports_on(model_module, tmp_path, monkeypatch):
    from fcfd_viz.cli import app_cmds

    model_module(MODULE, ARCH)
    model_module("user_cli_more", "user_cli_more_tiny")
    monkeypatch.setenv("FCFD_IMPORT", "user_cli_more")
    envs = []
    monkeypatch.setattr(app_cmds.subprocess, "call", lambda cmd, env: envs.append(env) or 0)
    assert main(["--import", MODULE, "app", "--runs-dir", str(tmp_path)]) == 0
    assert envs[0]["FCFD_IMPORT"] == f"user_cli_more,{MODULE}"
