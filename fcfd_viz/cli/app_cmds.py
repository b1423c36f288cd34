"""``fcfd defaults`` (build the app's default runs), ``fcfd app`` (start the dashboard) and
``fcfd notebooks`` (copy the tutorials out)."""

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
        help="train the default digits teacher and ce/kd/fcfd students the app shows (once), "
        "then fit the Functional gap page's connectors for them",
    )
    p.add_argument(
        "--runs-dir", default=None, help="runs folder (default: $FCFD_RUNS_DIR or ./runs)"
    )
    p.add_argument(
        "--no-gap",
        action="store_true",
        help="only train the runs: the Functional gap page fits its connectors when asked",
    )
    p.add_argument(
        "--demo",
        choices=["digits", "pairs"],
        default="digits",
        help="digits (default: the first launch's teacher and students, 10 classes) or pairs "
        "(the paper's setting: resnet56 -> resnet20 on the 100-class digit-pairs, one seed)",
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
    p.add_argument(
        "--allow-host",
        action="append",
        default=[],
        metavar="NAME",
        help="also accept browsers that reach the app as NAME (with a --host beyond this "
        "machine: the name or address in the URL; repeatable)",
    )
    p.set_defaults(func=cmd_app)

    p = sub.add_parser("notebooks", help="copy the tutorial notebooks into a folder")
    p.add_argument("dir", metavar="DIR", help="folder to copy them into (created if absent)")
    p.add_argument("--overwrite", action="store_true", help="replace notebooks already in DIR")
    p.set_defaults(func=cmd_notebooks)


# The server settings `fcfd app` passes on the command line, so they hold from any working
# directory; .streamlit/config.toml holds the same for `make app` / `streamlit run` from the
# checkout (tests/app/test_server.py keeps the two equal). Errors reach the browser without
# details (tracebacks go to the terminal only), XSRF and CORS protection stay on, and the
# websocket (every byte of data and every action) is refused to a Host header outside
# LOCAL_HOSTS + --host + --allow-host, which stops DNS-rebinding pages.
SERVER_SETTINGS = {
    "server.headless": "true",
    "server.enableXsrfProtection": "true",
    "server.enableCORS": "true",
    "client.showErrorDetails": "none",
    "client.toolbarMode": "minimal",
    "browser.gatherUsageStats": "false",
}
LOCAL_HOSTS = ("localhost", "127.0.0.1", "::1")
_ANY_ADDRESS = ("", "0.0.0.0", "::")


def allowed_hosts(host: str, extra: list[str] = ()) -> list[str]:
    """Host names the websocket accepts: this machine's, the bound address, ``extra``."""
    names = [*LOCAL_HOSTS, *([host] if host not in _ANY_ADDRESS else []), *extra]
    return list(dict.fromkeys(n.strip().lower() for n in names if n.strip()))


def app_command(
    host: str, port: int | None, runs_dir: Path, allow: list[str] = (), script: Path | None = None
) -> list[str]:
    """The ``streamlit run`` command line of ``fcfd app``."""
    cmd = [sys.executable, "-m", "streamlit", "run", str(script or app_script())]
    cmd += ["--server.address", host]
    for key, value in SERVER_SETTINGS.items():
        cmd += [f"--{key}", value]
    for name in allowed_hosts(host, allow):
        cmd += ["--server.allowedHosts", name]
    if port:
        cmd += ["--server.port", str(port)]
    return [*cmd, "--", "--runs-dir", str(runs_dir)]


def cmd_defaults(args: argparse.Namespace) -> int:
    """Train the missing default runs, printing one progress line per epoch, then (unless
    ``--no-gap``) compute the Functional gap page's default results for them."""
    from fcfd_viz.experiments.demo import DEMOS, PROGRESS_FILE, ensure_defaults, progress_writer
    from fcfd_viz.experiments.demo_gap import RUNS_SHARE, ensure_default_gap
    from fcfd_viz.runs.layout import default_runs_dir

    runs_dir, demo = default_runs_dir(args.runs_dir), DEMOS[args.demo]

    def show(fraction: float, message: str) -> None:
        print(f"[{100 * fraction:5.1f}%] {message}", flush=True)

    # one progress for both phases: the build (RUNS/defaults/progress.json, the Home page's bar)
    # ends when the gap page's results are there too
    share = 1.0 if args.no_gap else RUNS_SHARE
    paths = ensure_defaults(runs_dir, progress=show, share=share, demo=demo)
    for key, path in paths.items():
        print(f"{key:8s} {path}")
    if not args.no_gap:  # every page works already; this spares the gap page its wait
        build = progress_writer(Path(runs_dir) / demo.folder / PROGRESS_FILE, show)
        ensure_default_gap(
            runs_dir, progress=lambda f, m: build(share + (1 - share) * f, m), demo=demo
        )
    return 0


def app_script() -> Path:
    """``main.py`` of the dashboard: the installed wheel's copy, else the source checkout's."""
    from fcfd_viz.io.shipped import app_script

    return app_script()


def cmd_notebooks(args: argparse.Namespace) -> int:
    """Copy every tutorial notebook into ``DIR``; a notebook already there stops the command
    (nothing copied) unless ``--overwrite``."""
    from fcfd_viz.io.files import atomic_write, user_os_errors
    from fcfd_viz.io.shipped import notebooks_dir, shipped_files

    source, dest = notebooks_dir(), Path(args.dir).expanduser()
    names = shipped_files(source, "notebooks")
    there = [str(n) for n in names if (dest / n).exists()]
    if there and not args.overwrite:
        raise UserError(
            f"{dest} already holds {', '.join(there)}: pass --overwrite to replace them"
        )
    with user_os_errors(dest, flag="DIR"):  # `fcfd notebooks DIR` has no --out
        dest.mkdir(parents=True, exist_ok=True)
    for name in names:
        atomic_write(dest / name, (source / name).read_bytes(), flag="DIR")
        print(dest / name)
    print(
        f"fcfd notebooks: open them with `jupyter lab {dest}`; they write runs to "
        f"{dest.resolve().parent / 'runs'} (RUNS_DIR in each first cell)",
        file=sys.stderr,
    )
    return 0


def cmd_app(args: argparse.Namespace) -> int:
    """Run ``streamlit run app/main.py`` bound to ``--host`` (127.0.0.1 unless given), with
    :data:`SERVER_SETTINGS` and the host allow-list, whatever the working directory."""
    from fcfd_viz.io import plugins
    from fcfd_viz.runs.layout import default_runs_dir

    if args.port is not None and not 1 <= args.port <= 65535:
        raise UserError(f"--port must be a TCP port from 1 to 65535, got {args.port}")
    runs_dir = default_runs_dir(args.runs_dir).resolve()
    cmd = app_command(args.host, args.port, runs_dir, args.allow_host)
    print(f"fcfd app: runs folder {runs_dir}; starting {' '.join(cmd)}", file=sys.stderr)
    if args.host not in ("127.0.0.1", "localhost", "::1") and not args.allow_host:
        print(
            f"fcfd app: note: bound to {args.host}, but only browsers that reach it as "
            f"{', '.join(allowed_hosts(args.host))} are served; add --allow-host NAME for the "
            "name in your URL",
            file=sys.stderr,
        )
    env = {**os.environ, "FCFD_RUNS_DIR": str(runs_dir)}
    imports = plugins.env_modules() + list(getattr(args, "imports", []))
    if imports:  # `fcfd --import M app`: the app and its background runs import M too
        env[plugins.ENV] = ",".join(dict.fromkeys(imports))
    try:
        return subprocess.call(cmd, env=env)
    except KeyboardInterrupt:
        return 130
