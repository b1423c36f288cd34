"""Streamlit plumbing every page shares: the user's model modules, the runs folder, the
sidebar, widget helpers and the error box.

The cached wrappers around library calls live beside it, one module per concern:
:mod:`models_state` (runs with a checkpoint, networks, metrics), :mod:`gap_state` (the
functional gap), :mod:`probe_state`, :mod:`perturb_state`, :mod:`det_state` and
:mod:`report_state` (the Runs page's report). Models come from ``st.cache_resource`` (one
shared, read-only instance per checkpoint file and mtime); analysis results from
``st.cache_data`` keyed by checkpoint path + mtime + every parameter. ``st.cache_data``
pickles what a function returns and hands every caller its own copy, so it caches the
library's result objects themselves (``ProbeReport``, ``GapReport`` ...): nothing is
converted to dicts and back, and nothing cached is ever mutated. torch is imported inside
the functions: the Home page imports these files and must start fast.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import streamlit as st

from fcfd_viz.errors import UserError
from fcfd_viz.experiments.demo import default_paths
from fcfd_viz.io import plugins
from fcfd_viz.jobs import control as jobs
from fcfd_viz.jobs.records import max_jobs
from fcfd_viz.runs.layout import default_runs_dir


def _load_plugins() -> str | None:
    """Import the user's model modules as the CLI does ($FCFD_IMPORT, which ``fcfd --import M
    app`` sets, and entry points), once per server; the error line when one fails."""
    try:
        plugins.load_plugins()
    except UserError as e:
        return str(e)
    return None


PLUGIN_ERROR = _load_plugins()


def _cli_runs_dir() -> str | None:
    """``--runs-dir`` from ``streamlit run app/main.py -- --runs-dir DIR``."""
    p = argparse.ArgumentParser(add_help=False, allow_abbrev=False)
    p.add_argument("--runs-dir", default=None)
    return p.parse_known_args(sys.argv[1:])[0].runs_dir


def runs_dir() -> Path:
    """The runs folder of this session: sidebar > CLI ``--runs-dir`` > $FCFD_RUNS_DIR > ./runs."""
    if "runs_dir" not in st.session_state:
        st.session_state["runs_dir"] = str(default_runs_dir(_cli_runs_dir()))
    return Path(st.session_state["runs_dir"]).expanduser()


def sidebar() -> Path:
    """The sidebar every page shares: the runs folder and how many runs are active."""
    root = runs_dir()
    if PLUGIN_ERROR:
        st.error(PLUGIN_ERROR)
    with st.sidebar:
        st.text_input("Runs folder", key="runs_dir", help="env FCFD_RUNS_DIR or --runs-dir")
        if not root.is_dir():
            st.caption(f"{root} does not exist yet")
        else:
            n = jobs.active_count(root)
            st.caption(f"{n} active run(s), limit {max_jobs()}")
    return root


def keep_valid(key: str, options: list) -> None:
    """Drop what a widget's saved value holds that is no longer an option (a deleted run)."""
    value = st.session_state.get(key)
    if isinstance(value, list):
        st.session_state[key] = [v for v in value if v in options]
    elif value is not None and value not in options:
        del st.session_state[key]


def run_label(job) -> str:
    """``method: run`` for a curve legend (``teacher: ...`` for a teacher run, its own colour)."""
    kind = "teacher" if job.path.name.startswith("teacher") else job.method
    return f"{kind}: {job.name}"


def default_runs(root: Path) -> dict[str, str]:
    """The default runs' names in ``root`` (``{"teacher": "defaults/teacher", ...}``)."""
    return {k: p.relative_to(root).as_posix() for k, p in default_paths(root).items()}


def show_error(e: Exception) -> None:
    """An error box for a bad input; the page keeps working."""
    st.error(str(e) if isinstance(e, UserError) else f"{type(e).__name__}: {e}")
