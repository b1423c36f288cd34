"""fcfd-viz dashboard: ``streamlit run app/main.py [-- --runs-dir DIR]`` (or ``make app``).

The entry point routes to the pages with ``st.navigation``; every page shares the sidebar
(runs folder). This file also holds the landing page, which builds the default runs on a
fresh clone.
"""

from __future__ import annotations

import statistics
import sys
from pathlib import Path

_APP = str(Path(__file__).resolve().parent)
if _APP not in sys.path:  # `import state` from the pages, whatever the working directory
    sys.path.insert(0, _APP)

import state  # noqa: E402
import streamlit as st  # noqa: E402

from fcfd_viz.experiments import demo as defaults  # noqa: E402
from fcfd_viz.experiments import demo_gap as defaults_gap  # noqa: E402
from fcfd_viz.jobs import demo_build  # noqa: E402
from fcfd_viz.jobs.records import last_log_line  # noqa: E402
from fcfd_viz.runs.layout import JOBS_DIR  # noqa: E402
from fcfd_viz.viz import figures as viz  # noqa: E402

# no error details in the browser however the server was started (a Streamlit too old to
# read app/.streamlit/config.toml, a config of the working directory): a client option,
# so it can be set here
st.set_option("client.showErrorDetails", "none")
st.set_page_config(page_icon=":material/hub:", layout="wide")


def home() -> None:
    """Landing page: what this is, the state of the default runs, and the pages."""
    root = state.runs_dir()
    st.title("fcfd-viz")
    st.markdown(
        "Interactive toolkit for **Function-Consistent Feature Distillation**: does a "
        "student's feature *work* like the teacher's, or only look like it?"
    )
    ready = defaults.defaults_ready(root)
    if ready:
        groups = defaults.default_groups(root)
        cols = st.columns(len(groups))
        for col, (k, paths) in zip(cols, groups.items()):
            finals = [m[-1]["test_top1"] for m in map(state.metrics, paths) if m]
            col.metric(k, _mean_std(finals), help="\n".join(map(str, paths)))
        seed0 = {k: state.metrics(ps[0]) for k, ps in groups.items()}
        st.plotly_chart(viz.accuracy_curves_figure(seed0), key="home_acc")
        if defaults_gap.default_gap_running(root):
            st.info(
                "Every page works now. In the background, the Functional gap page's connectors "
                "are being fitted for the nine default students (a few minutes on 2 cores, "
                "within the build's progress): that page will open on them at once."
            )
            state.default_gap_progress()
    elif demo_build.building(root):
        st.info("Building the default digits teacher and ce / kd / fcfd students (3 seeds) ...")
        _build_progress()
    else:
        p = defaults.defaults_progress(root)
        if p and p["fraction"] < 1:  # a build that died: say why before offering another
            log = root / JOBS_DIR / "defaults.log"
            st.error(f"The last build stopped at: {p['message']}. {last_log_line(log)}")
        st.warning(f"No default runs in `{root}` yet.")
        st.markdown(
            "Every page needs trained networks. Build a digits teacher and its ce, kd and fcfd "
            "students, three seeds each, and the Functional gap page's connectors for them "
            "(about four minutes on 2 idle CPU cores, once: later launches reuse them), "
            "or run `fcfd defaults` in a terminal."
        )
        if st.button("Build the default runs", type="primary"):
            try:
                demo_build.start_defaults(root)
            except Exception as e:  # noqa: BLE001 - shown to the user, the app goes on
                state.show_error(e)
            else:
                st.rerun()
    with st.expander("Start here: a 30-minute class", expanded=not ready):
        st.markdown(TOUR.read_text())
    st.markdown(
        "- **Sensitivity**: per-channel perturbation sensitivity, Jacobian spectrum, captum "
        "attribution vs sensitivity.\n"
        "- **Functional gap**: appearance (L2) vs functional (KL) gap per stage, mixed paths.\n"
        "- **Detection**: Faster R-CNN teacher and students' boxes side by side, appearance vs "
        "functional gap per FPN level.\n"
        "- **Distill**: launch short runs in the background and watch them live.\n"
        "- **Runs**: every run in the folder; compare, resume or delete."
    )


TOUR = Path(__file__).resolve().parent / "tour.md"  # README links it too


def _mean_std(values: list[float]) -> str:
    """``"97.2% ± 0.8"`` over seeds (``"97.2%"`` for one run, ``"-"`` for none)."""
    if not values:
        return "-"
    mean = statistics.fmean(values)
    if len(values) == 1:
        return f"{mean:.1f}%"
    return f"{mean:.1f}% ± {statistics.stdev(values):.1f} ({len(values)} seeds)"


@st.fragment(run_every=1.0)
def _build_progress() -> None:
    root = state.runs_dir()
    p = defaults.defaults_progress(root) or {"fraction": 0.0, "message": "starting"}
    st.progress(p["fraction"], text=p["message"])
    if not demo_build.building(root):
        st.rerun()  # done (or failed): redraw the whole page once


# Deep links: /sensitivity, /gap, /detection, /distill, /runs. (Streamlit shows a spurious "Page not found"
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
        "pages/5_Perturbation.py",
        title="Perturbation",
        icon=":material/swap_calls:",
        url_path="perturbation",
    ),
    st.Page(
        "pages/2_Functional_gap.py",
        title="Functional gap",
        icon=":material/compare:",
        url_path="gap",
    ),
    st.Page(
        "pages/6_Detection.py",
        title="Detection",
        icon=":material/center_focus_strong:",
        url_path="detection",
    ),
    st.Page(
        "pages/3_Distill.py", title="Distill", icon=":material/model_training:", url_path="distill"
    ),
    st.Page("pages/4_Runs.py", title="Runs", icon=":material/folder:", url_path="runs"),
]

page = st.navigation(PAGES)
state.sidebar()
page.run()
