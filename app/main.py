"""fcfd-viz dashboard: ``streamlit run app/main.py [-- --runs-dir DIR]`` (or ``make app``).

The entry point routes to the pages with ``st.navigation``; every page shares the sidebar
(runs folder). This file also holds the landing page, which builds the default runs on a
fresh clone.
"""

from __future__ import annotations

import sys
from pathlib import Path

_APP = str(Path(__file__).resolve().parent)
if _APP not in sys.path:  # `import state` from the pages, whatever the working directory
    sys.path.insert(0, _APP)

import state  # noqa: E402
import streamlit as st  # noqa: E402

from fcfd_viz import defaults, viz  # noqa: E402
from fcfd_viz.job_records import last_log_line  # noqa: E402
from fcfd_viz.runs import JOBS_DIR  # noqa: E402

st.set_page_config(page_icon=":material/hub:", layout="wide")


def home() -> None:
    """Landing page: what this is, the state of the default runs, and the pages."""
    root = state.runs_dir()
    st.title("fcfd-viz")
    st.markdown(
        "Interactive toolkit for **Function-Consistent Feature Distillation**: does a "
        "student's feature *work* like the teacher's, or only look like it?"
    )
    if defaults.defaults_ready(root):
        paths = defaults.default_paths(root)
        runs = {k: state.metrics(p) for k, p in paths.items()}
        cols = st.columns(len(runs))
        for col, (k, m) in zip(cols, runs.items()):
            col.metric(k, f"{m[-1]['test_top1']:.1f}%" if m else "-", help=str(paths[k]))
        st.plotly_chart(viz.accuracy_curves_figure(runs), key="home_acc")
    elif defaults.building(root):
        st.info("Building the default digits teacher and ce / kd / fcfd students ...")
        _build_progress()
    else:
        p = defaults.defaults_progress(root)
        if p and p["fraction"] < 1:  # a build that died: say why before offering another
            log = root / JOBS_DIR / "defaults.log"
            st.error(f"The last build stopped at: {p['message']}. {last_log_line(log)}")
        st.warning(f"No default runs in `{root}` yet.")
        st.markdown(
            "Every page needs trained networks. Build a digits teacher and three students "
            "(ce, kd, fcfd; a few minutes on 2 CPU cores, once: later launches reuse them), "
            "or run `fcfd defaults` in a terminal."
        )
        if st.button("Build the default runs", type="primary"):
            try:
                defaults.start_defaults(root)
            except Exception as e:  # noqa: BLE001 - shown to the user, the app goes on
                state.show_error(e)
            else:
                st.rerun()
    st.markdown(
        "- **Sensitivity**: per-channel perturbation sensitivity, Jacobian spectrum, captum "
        "attribution vs sensitivity.\n"
        "- **Functional gap**: appearance (L2) vs functional (KL) gap per stage, mixed paths.\n"
        "- **Distill**: launch short runs in the background and watch them live.\n"
        "- **Runs**: every run in the folder; compare, resume or delete."
    )


@st.fragment(run_every=1.0)
def _build_progress() -> None:
    root = state.runs_dir()
    p = defaults.defaults_progress(root) or {"fraction": 0.0, "message": "starting"}
    st.progress(p["fraction"], text=p["message"])
    if not defaults.building(root):
        st.rerun()  # done (or failed): redraw the whole page once


# Deep links: /sensitivity, /gap, /distill, /runs. (Streamlit shows a spurious "Page not found"
# box when the very first session of a fresh server opens a deep link; the page still loads.)
PAGES = [
    st.Page(home, title="Home", icon=":material/home:", default=True),
    st.Page(
        "pages/1_Sensitivity.py",
        title="Sensitivity",
        icon=":material/tune:",
        url_path="sensitivity",
    ),
    st.Page(
        "pages/2_Functional_gap.py",
        title="Functional gap",
        icon=":material/compare:",
        url_path="gap",
    ),
    st.Page(
        "pages/3_Distill.py", title="Distill", icon=":material/model_training:", url_path="distill"
    ),
    st.Page("pages/4_Runs.py", title="Runs", icon=":material/folder:", url_path="runs"),
]

page = st.navigation(PAGES)
state.sidebar()
page.run()
