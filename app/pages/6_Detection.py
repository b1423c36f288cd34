"""Detection: a teacher's and its students' boxes on a test canvas, and the per-level
appearance vs functional gap of their FPN features."""

from pathlib import Path

import det_state
import gap_state
import models_state
import state
import streamlit as st

from fcfd_viz.viz import detection as viz_detection

st.title("Detection")
st.caption(
    "Faster R-CNN + FPN detectors on the digit-boxes canvases (`--task detection`). Per FPN "
    "level a bridge carries the student's level into the teacher's space. Appearance gap: "
    "MSE to the teacher's level. Functional gap: KL between the teacher's box head on its "
    "FPN with that one level bridged and on its own FPN, at the teacher's own proposals."
)
root = state.runs_dir()
ckpts = models_state.checkpoints(root, task="detection")
if not ckpts:
    st.info(det_state.HOW_TO_TRAIN.format(root=root))
    st.stop()


def resolved(path: str | None) -> str | None:
    try:
        return str(Path(path).resolve()) if path else None
    except (OSError, ValueError):
        return path


labels = [c["label"] for c in ckpts]
by_label = {c["label"]: c for c in ckpts}
recorded = [resolved(c["teacher"]) for c in ckpts]
t_first = next(
    (i for i, c in enumerate(ckpts) if resolved(c["path"]) in recorded),
    next((i for i, c in enumerate(ckpts) if not c["teacher"]), 0),
)
c1, c2 = st.columns([1, 2])
state.keep_valid("det_teacher", labels)
t_label = c1.selectbox("Teacher", labels, index=t_first, key="det_teacher")
teacher = by_label[t_label]
others = [lab for lab in labels if lab != t_label]
mine = [lab for lab in others if resolved(by_label[lab]["teacher"]) == resolved(teacher["path"])]
state.keep_valid("det_students", others)
s_labels = c2.multiselect("Students", others, default=mine, key="det_students")
students = [by_label[s] for s in s_labels]
if not students:
    st.info(
        f"Pick a student, or distil one from this teacher: `fcfd distill --task detection "
        f"--preset det-digits --method fcfd --teacher {teacher['path']} --out {root}/det-fcfd`"
    )

st.subheader("Boxes")
try:
    test = det_state.test_split(teacher["path"])
except Exception as e:  # noqa: BLE001 - e.g. COCO without its folder
    state.show_error(e)
    st.stop()
i1, i2 = st.columns(2)
index = i1.number_input("Test image", 0, len(test) - 1, 0, key="det_index")
threshold = i2.slider("Score threshold", 0.0, 1.0, 0.5, 0.05, key="det_thr")
image, truth = test[int(index)]
panels = {"ground truth": truth}
try:
    panels[f"teacher ({teacher['student']})"] = det_state.detections(teacher["path"], int(index))
    for c, lab in zip(students, gap_state.gap_labels(students)):
        panels[lab] = det_state.detections(c["path"], int(index))
except Exception as e:  # noqa: BLE001 - a checkpoint deleted meanwhile
    state.show_error(e)
    st.stop()
st.plotly_chart(viz_detection.detections_figure(image, panels, threshold), key="det_boxes")

st.subheader("Functional gap per FPN level")
if not students:
    st.stop()
g1, g2, g3 = st.columns(3)
n_test = g1.select_slider("Test images", [8, 25, 50, 100, 300], value=50, key="det_gap_test")
n_fit = g2.select_slider("Fit images", [16, 100, 200, 500, 1000], value=200, key="det_gap_fit")
epochs = g3.select_slider("Fit: at most epochs", [2, 5, 10, 30], value=10, key="det_gap_epochs")
settings = (n_test, n_fit, epochs)
try:
    cached = det_state.gap_cached(root, teacher["path"], students, settings)
except Exception as e:  # noqa: BLE001
    state.show_error(e)
    st.stop()
if st.button("Compute", type="primary", disabled=cached, key="det_gap_go"):
    st.session_state["det_gap_auto"] = True  # from now on, changes recompute on their own
if not (cached or st.session_state.get("det_gap_auto")):
    st.info(
        "Students without their own bridges (ce, kd) get connectors fitted first (about half a "
        "minute per student on 2 CPU cores at the defaults); results are kept in the runs "
        "folder. Press Compute."
    )
    st.stop()
with st.spinner("fitting connectors and measuring the gap (kept afterwards) ..."):
    try:
        report = det_state.gap(root, teacher["path"], students, settings)
    except Exception as e:  # noqa: BLE001 - e.g. a student of another teacher
        state.show_error(e)
        st.stop()
st.info(report.reading)
st.plotly_chart(viz_detection.det_gap_figure(report.result), key="det_gap_bars")
res = report.result
rois = ", ".join(f"{k} {n}" for k, n in zip(res.levels, res.rois_per_level))
st.caption(
    f"{res.num_images} test images, {res.num_rois} teacher proposals pooled from: {rois}. A "
    "level no proposal pools from has no functional gap (p6 feeds only the RPN)."
)
