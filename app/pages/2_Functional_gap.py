"""Functional gap: does a student's feature work like the teacher's, or only look like it?"""

import state
import streamlit as st

from fcfd_viz import viz
from fcfd_viz.analysis.gap_result import BN_REGIMES

st.title("Functional gap")
st.caption(
    "Per stage, a bridge carries the student's feature into the teacher's space. Appearance "
    "gap: MSE to the teacher's feature. Functional gap: KL between the teacher's output on "
    "the bridged feature and its own output. Students without bridges get connectors "
    "fitted post hoc; FCFD students are shown with their own bridges and fitted ones."
)
root = state.runs_dir()
ckpts = state.checkpoints(root)
if len(ckpts) < 2:
    st.info(f"Need a teacher and a student in `{root}`: build the default runs on Home.")
    st.stop()

labels = [c["label"] for c in ckpts]
by_label = {c["label"]: c for c in ckpts}
defaults = state.default_runs(root)
default_teacher = defaults.pop("teacher")
t_first = next((i for i, c in enumerate(ckpts) if c["name"] == default_teacher), 0)
c1, c2 = st.columns([1, 2])
t_label = c1.selectbox("Teacher", labels, index=t_first, key="g_teacher")
teacher = by_label[t_label]
others = [lab for lab in labels if lab != t_label]
default = [lab for lab in others if by_label[lab]["name"] in defaults.values()] or [
    lab for lab in others if by_label[lab]["teacher"]
][:3]
s_labels = c2.multiselect("Students", others, default=default, key="g_students")
c3, c4 = st.columns(2)
bn = c3.radio(
    "Teacher BN regime", list(BN_REGIMES), format_func=BN_REGIMES.get, horizontal=True, key="g_bn"
)
budgets = [10, 25, 50, 100, 200, 400]
epochs = c4.select_slider(
    "Connector fit: at most epochs", budgets, value=state.gap_fit_epochs(budgets), key="g_fit"
)
if not s_labels:
    st.info("Pick at least one student.")
    st.stop()
students = [by_label[s] for s in s_labels]
try:
    cached = state.gap_cached(root, teacher["path"], students, bn, epochs)
except Exception as e:  # noqa: BLE001 - e.g. a checkpoint deleted meanwhile
    state.show_error(e)
    st.stop()
if st.button("Compute", type="primary", disabled=cached, key="g_go"):
    st.session_state["g_auto"] = True  # from now on, changes recompute on their own
if not (cached or st.session_state.get("g_auto")):
    st.info(
        "Fitting the connectors takes a while (about a minute per student on 2 CPU cores at "
        "100 epochs); results are kept in the runs folder. Press Compute."
    )
    st.stop()

with st.spinner("fitting connectors and measuring the gap (kept afterwards) ..."):
    try:
        gap = state.gap(root, teacher["path"], students, bn, epochs)
    except Exception as e:  # noqa: BLE001 - e.g. a student of another dataset
        state.show_error(e)
        st.stop()

result = gap.result
st.info(gap.reading)
st.plotly_chart(viz.gap_figure(result), key="g_bars")
left, right = st.columns([3, 2])
left.plotly_chart(viz.path_accuracy_figure(result), key="g_paths")
fits = {name: e.fit for name, e in result.entries.items() if e.fit is not None}
right.markdown(f"**Teacher top-1** {result.teacher_accuracy:.1f}% on {result.num_images} images")
right.dataframe(
    [
        {
            "student": name,
            "fit epochs": f.epochs,
            "converged": f.converged,
            "seconds": round(f.seconds, 1),
        }
        for name, f in fits.items()
    ],
    hide_index=True,
)
