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

import gap_state  # noqa: E402
import models_state  # noqa: E402
import state  # noqa: E402
import streamlit as st  # noqa: E402

from fcfd_viz.experiments import demo as defaults  # noqa: E402
from fcfd_viz.experiments import demo_gap as defaults_gap  # noqa: E402
from fcfd_viz.jobs import demo_build  # noqa: E402
from fcfd_viz.jobs.records import last_log_line, log_path  # noqa: E402
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
            finals = [m[-1]["test_top1"] for m in map(models_state.metrics, paths) if m]
            col.metric(k, _mean_std(finals), help="\n".join(map(str, paths)))
        seed0 = {k: models_state.metrics(ps[0]) for k, ps in groups.items()}
        st.plotly_chart(viz.accuracy_curves_figure(seed0), key="home_acc")
        if defaults_gap.default_gap_running(root):
            st.info(
                "Every page works now. In the background, the Functional gap page's connectors "
                "are being fitted for the nine default students (a few minutes on 2 cores, "
                "within the build's progress): that page will open on them at once."
            )
            gap_state.default_gap_progress()
    elif demo_build.building(root):
        st.info("Building the default digits teacher and ce / kd / fcfd students (3 seeds) ...")
        _build_progress(defaults.DIGITS.name)
    else:
        _stopped_build(root, defaults.DIGITS)
        st.warning(f"No default runs in `{root}` yet.")
        st.markdown(
            "Every page needs trained networks. Build a digits teacher and its ce, kd and fcfd "
            "students, three seeds each, and the Functional gap page's connectors for them "
            "(once: later launches reuse them), or run `fcfd defaults` in a terminal."
        )
        _build_button(root, defaults.DIGITS, primary=True)
    _second_demo(root, defaults.PAIRS)
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


def _second_demo(root: Path, demo: defaults.Demo) -> None:
    """A demo built only when asked (never on the first launch): its state, or its button."""
    with st.container(border=True):
        st.markdown(f"**Second demo: {demo.title}**")
        if defaults.defaults_ready(root, demo):
            st.success(
                f"Built in `{root / demo.folder}`: pick its teacher and students on the "
                "Functional gap page."
            )
        elif demo_build.building(root, demo):
            _build_progress(demo.name)
        else:
            _stopped_build(root, demo)
            st.markdown(
                "The paper's setting: a resnet56 teacher and its ce, kd and fcfd resnet20 "
                "students (one seed) on the 100-class digit-pairs, the teacher and the three "
                "students the Functional gap page needs, with their connectors "
                f"(`fcfd defaults --demo {demo.name}`; runs under `{demo.folder}/`)."
            )
            _build_button(root, demo)


def _build_button(root: Path, demo: defaults.Demo, primary: bool = False) -> None:
    """The button that starts ``demo``'s build in the background; its text states the
    measured build time (:attr:`~fcfd_viz.experiments.demo.Demo.build_label`)."""
    kind = "primary" if primary else "secondary"
    if st.button(demo.build_label, type=kind, key=f"build_{demo.name}"):
        try:
            demo_build.start_defaults(root, demo)
        except Exception as e:  # noqa: BLE001 - shown to the user, the app goes on
            state.show_error(e)
        else:
            st.rerun()


def _stopped_build(root: Path, demo: defaults.Demo) -> None:
    """Why the last build of ``demo`` stopped, when one died before the end."""
    p = defaults.defaults_progress(root, demo)
    if p and p["fraction"] < 1:  # a build that died: say why before offering another
        log = log_path(root, demo.folder)
        st.error(f"The last build stopped at: {p['message']}. {last_log_line(log)}")


@st.fragment(run_every=1.0)
def _build_progress(name: str) -> None:
    root, demo = state.runs_dir(), defaults.DEMOS[name]
    p = defaults.defaults_progress(root, demo) or {"fraction": 0.0, "message": "starting"}
    st.progress(p["fraction"], text=p["message"])
    if not demo_build.building(root, demo):
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
