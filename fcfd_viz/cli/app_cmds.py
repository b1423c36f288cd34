"""``fcfd defaults`` (build the app's default runs) and ``fcfd app`` (start the dashboard)."""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
from pathlib import Path

from fcfd_viz.errors import UserError


def register(sub: argparse._SubParsersAction) -> None:
    """Add the ``defaults`` and ``app`` sub-commands."""
    p = sub.add_parser(
        "defaults",
        help="train the default digits teacher and ce/kd/fcfd students the app shows (once)",
    )
    p.add_argument(
        "--runs-dir", default=None, help="runs folder (default: $FCFD_RUNS_DIR or ./runs)"
    )
    p.set_defaults(func=cmd_defaults)

    p = sub.add_parser("app", help="start the Streamlit dashboard (app/main.py)")
    p.add_argument(
        "--runs-dir", default=None, help="runs folder (default: $FCFD_RUNS_DIR or ./runs)"
    )
    p.add_argument(
        "--host", default="127.0.0.1", help="address to bind (default 127.0.0.1: this machine)"
    )
    p.add_argument("--port", type=int, default=None, help="port (default: Streamlit's, 8501)")
    p.set_defaults(func=cmd_app)


def cmd_defaults(args: argparse.Namespace) -> int:
    """Train the missing default runs, printing one progress line per epoch."""
    from fcfd_viz.defaults import ensure_defaults
    from fcfd_viz.jobs import default_runs_dir

    runs_dir = default_runs_dir(args.runs_dir)

    def show(fraction: float, message: str) -> None:
        print(f"[{100 * fraction:5.1f}%] {message}", flush=True)

    paths = ensure_defaults(runs_dir, progress=show)
    for key, path in paths.items():
        print(f"{key:8s} {path}")
    return 0


def app_script() -> Path:
    """``app/main.py`` of the source checkout this package runs from."""
    import fcfd_viz

    script = Path(fcfd_viz.__file__).resolve().parents[1] / "app" / "main.py"
    if not script.exists():
        raise UserError(
            f"{script} not found: `fcfd app` needs a source checkout (git clone, pip install -e .)"
        )
    return script


def cmd_app(args: argparse.Namespace) -> int:
    """Run ``streamlit run app/main.py`` bound to ``--host`` (127.0.0.1 unless given)."""
    from fcfd_viz.jobs import default_runs_dir

    runs_dir = default_runs_dir(args.runs_dir).resolve()
    cmd = [sys.executable, "-m", "streamlit", "run", str(app_script())]
    cmd += ["--server.address", args.host, "--server.headless", "true"]
    cmd += ["--browser.gatherUsageStats", "false"]
    if args.port:
        cmd += ["--server.port", str(args.port)]
    cmd += ["--", "--runs-dir", str(runs_dir)]
    print(f"fcfd app: runs folder {runs_dir}; starting {' '.join(cmd)}", file=sys.stderr)
    try:
        return subprocess.call(cmd, env={**os.environ, "FCFD_RUNS_DIR": str(runs_dir)})
    except KeyboardInterrupt:
        return 130
