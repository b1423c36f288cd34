"""fcfd-viz installed from its wheel, with no source tree: the dashboard and the notebooks
ship inside it (``fcfd_viz/_app``, ``fcfd_viz/_notebooks``, copied by ``setup.py``).

The wheel is built offline from a copy of the checkout (``pip wheel --no-build-isolation``)
and installed with ``--no-deps`` into a fresh venv that sees this test environment's
packages through a ``.pth`` line (its site-packages folder: its own ``.pth`` files, among them
the editable install of this checkout, are not run). ``fcfd`` then runs from a folder
outside the source tree.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest
from test_browser import free_port, stop_server, wait_healthy

from fcfd_viz.io.shipped import SHIPPED, shipped_files

ROOT = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.slow  # ~30-60 s: a wheel build, a pip install, a Streamlit start
SOURCES = ["pyproject.toml", "setup.py", "MANIFEST.in", "README.md", "fcfd_viz", *SHIPPED]
OFFLINE = {"PIP_NO_INDEX": "1", "PIP_DISABLE_PIP_VERSION_CHECK": "1", "PYTHONPATH": ""}


def run(cmd: list, cwd: Path, env_extra: dict = {}, **kw) -> subprocess.CompletedProcess:  # noqa: B006
    env = {**os.environ, **OFFLINE, **env_extra}
    return subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, **kw)


def build_wheel(tmp: Path) -> Path:
    """The wheel of a copy of the checkout (so no build/ or egg-info lands in the checkout)."""
    src = tmp / "src"
    src.mkdir()
    skip = shutil.ignore_patterns(
        "__pycache__", "*.pyc", ".ipynb_checkpoints", "_app", "_notebooks"
    )
    for name in SOURCES:
        if (ROOT / name).is_dir():
            shutil.copytree(ROOT / name, src / name, ignore=skip)
        else:
            shutil.copy2(ROOT / name, src / name)
    cmd = [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation"]
    out = run([*cmd, "-w", str(tmp / "dist"), str(src)], cwd=tmp, timeout=300)
    assert out.returncode == 0, out.stdout + out.stderr
    (wheel,) = (tmp / "dist").glob("fcfd_viz-*.whl")
    return wheel


def install(wheel: Path, venv: Path) -> Path:
    """A venv holding only the wheel (plus this environment's packages); its bin folder."""
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    python = venv / "bin" / "python"
    purelib = run([python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"], venv)
    ours = {sysconfig.get_paths()["purelib"], sysconfig.get_paths()["platlib"]}
    (Path(purelib.stdout.strip()) / "test_env.pth").write_text("\n".join(sorted(ours)) + "\n")
    # --ignore-installed: pip sees this checkout's editable fcfd-viz and must leave it alone
    pip = [python, "-m", "pip", "install", "--no-deps", "--ignore-installed", "--quiet"]
    out = run([*pip, str(wheel)], cwd=venv, timeout=300)
    assert out.returncode == 0, out.stdout + out.stderr
    return venv / "bin"


def test_wheel_ships_the_app_and_notebooks_and_they_run_without_a_checkout(tmp_path):
    bin_ = install(build_wheel(tmp_path), tmp_path / "venv")
    work = tmp_path / "elsewhere"  # outside the source tree
    work.mkdir()
    where = run(
        [bin_ / "python", "-c", "import fcfd_viz.io.shipped as s; print(s.app_script())"], work
    )
    assert where.returncode == 0, where.stderr
    app = Path(where.stdout.strip())
    assert app.is_relative_to(tmp_path / "venv") and app.parent.name == "_app", app
    assert shipped_files(app.parent, "app") == shipped_files(ROOT / "app", "app")

    # fcfd notebooks DIR: the tutorials, byte for byte; a second copy refuses to overwrite
    out = run([bin_ / "fcfd", "notebooks", "tutorials"], work)
    assert out.returncode == 0, out.stderr
    names = shipped_files(ROOT / "notebooks", "notebooks")
    assert names and sorted(p.name for p in (work / "tutorials").iterdir()) == [
        n.name for n in names
    ]
    for n in names:
        assert (work / "tutorials" / n).read_bytes() == (ROOT / "notebooks" / n).read_bytes()
    again = run([bin_ / "fcfd", "notebooks", "tutorials"], work)
    assert again.returncode == 2 and "--overwrite" in again.stderr
    assert len(again.stderr.strip().splitlines()) == 1

    # the installed pages render (Home, Perturbation with its helper module, Runs) with the
    # installed fcfd_viz
    render = (
        "from streamlit.testing.v1 import AppTest; import fcfd_viz.io.shipped as s\n"
        "at = AppTest.from_file(str(s.app_script()), default_timeout=120).run()\n"
        "at.switch_page('pages/5_Perturbation.py').run()\n"
        "assert not at.exception, at.exception\n"
        "at.switch_page('pages/4_Runs.py').run()\n"
        "assert not at.exception, at.exception; print(at.title[0].value)"
    )
    out = run([bin_ / "python", "-c", render], work, env_extra={"FCFD_RUNS_DIR": "runs"})
    assert out.returncode == 0 and out.stdout.strip() == "Runs", out.stdout + out.stderr

    # fcfd app: the installed dashboard serves, from a folder that is no checkout
    port = free_port()
    log = tmp_path / "app.log"
    env = {**os.environ, **OFFLINE, "HOME": str(tmp_path)}
    cmd = [bin_ / "fcfd", "app", "--port", str(port), "--runs-dir", str(work / "runs")]
    proc = subprocess.Popen(
        cmd, cwd=work, env=env, stdout=log.open("wb"), stderr=subprocess.STDOUT,
        start_new_session=True,
    )  # fmt: skip
    try:
        wait_healthy(f"http://127.0.0.1:{port}", proc)
    finally:
        stop_server(proc)
    assert f"streamlit run {app} " in log.read_text(), log.read_text()
