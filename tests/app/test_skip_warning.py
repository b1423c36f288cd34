"""`make test` on a machine without Chromium says loudly that the real-browser tests did not
run (tests/conftest.py's terminal summary), instead of one line among the skips."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
SKIPPED_BROWSER_TEST = """
import pytest

pytestmark = pytest.mark.skipif(True, reason="/usr/bin/chromium not found: apt-get install")


def test_pages():
    pass
"""


def test_skipped_browser_tests_end_the_run_with_a_warning(tmp_path):
    (tmp_path / "tests" / "app").mkdir(parents=True)
    shutil.copy(ROOT / "tests" / "conftest.py", tmp_path / "tests" / "conftest.py")
    (tmp_path / "tests" / "app" / "test_browser.py").write_text(SKIPPED_BROWSER_TEST)
    (tmp_path / "tests" / "app" / "test_other.py").write_text("def test_ok():\n    pass\n")
    cmd = [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "tests"]
    out = subprocess.run(cmd, cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stdout
    last = out.stdout.strip().splitlines()[-2:]  # above the closing "1 passed, 1 skipped"
    warning = next(line for line in last if line.startswith("WARNING:"))
    assert "tests/app/test_browser.py" in warning and "apt-get install" in warning

    (tmp_path / "tests" / "app" / "test_browser.py").unlink()
    out = subprocess.run(cmd, cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert "WARNING" not in out.stdout
