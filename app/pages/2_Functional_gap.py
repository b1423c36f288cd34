"""Functional gap: does a student's feature work like the teacher's, or only look like it?"""

import gap_state
import models_state
import state
import streamlit as st

from fcfd_viz.analysis.gap.result import BN_REGIMES
from fcfd_viz.analysis.gap.seeds import group_over_seeds, paired_gap, split_by_seed, without_own
from fcfd_viz.analysis.gap.spectra import predictor_text, stage_predictor_text
from fcfd_viz.experiments.demo_gap import FIT_BUDGETS, default_gap_running, fit_epochs
from fcfd_viz.viz import figures as viz
from fcfd_viz.viz import gap as viz_gap
from fcfd_viz.viz import spectrum as viz_spectrum

OWN_BRIDGES_NOTE = (
    "Hatched: FCFD's own bridges, the ones it trained. Compare students on the fitted bars "
    "(every student gets the same post-hoc connectors): FCFD trained its bridges on mixed "
    "paths that normalise with batch statistics, and its last-stage bridge only through the "
    "appearance term, so through an eval-mode teacher they look far worse than they work in "
    "training (docs/results.md, *Where the BN regime matters*)."
)
SPECTRUM_NOTE = (
    "**l2** is ||e||², the squared size of a student's bridged error e = bridge(s) − t that "
    "feature distillation minimises, and **fisher** is ½ eᵀFe, the second-order prediction of "
    "the KL the teacher's later layers turn e into (F: the Fisher information of the teacher's "
    "output at its own feature). The **share** is the fraction of ||e||² lying in the top-k "
    "directions the teacher's tail is most sensitive to, against the dashed line of an error "
    "spread evenly over all directions. A curve above the dashed line means the error sits "
    "where the teacher looks, and a Spearman closer to 1 for fisher than for l2 means the "
    "Fisher metric ranks the students' functional gap (KL) better than their L2 error does."
)
SPECTRUM_IMAGES = (0, 32, 128, 512)  # 0: off; `fcfd gap --spectrum` takes 128 by default


st.title("Functional gap")
st.caption(
    "Per stage, a bridge carries the student's feature into the teacher's space. Appearance "
    "gap: MSE to the teacher's feature. Functional gap: KL between the teacher's output on "
    "the bridged feature and its own output. Every student gets connectors fitted post hoc "
    "on the training split (both networks frozen); students of several seeds are shown as "
    "mean ± std and compared seed by seed."
)
root = state.runs_dir()
ckpts = models_state.checkpoints(root)
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
c3, c4, c5 = st.columns(3)
bn = c3.radio(
    "Teacher BN regime", list(BN_REGIMES), format_func=BN_REGIMES.get, horizontal=True, key="g_bn"
)
epochs = c4.select_slider(
    "Connector fit: at most epochs", FIT_BUDGETS, value=fit_epochs(), key="g_fit"
)
spectrum = (
    c5.select_slider(
        "Error spectrum: test images",
        SPECTRUM_IMAGES,
        format_func=lambda n: str(n or "off"),
        key="g_spec",
        help="Where the error lies (below): measured with the gap and kept with it in the runs "
        "folder; its cost grows with the number of images.",
    )
    or None
)
if not s_labels:
    st.info("Pick at least one student.")
    st.stop()
students = [by_label[s] for s in s_labels]
try:
    cached = gap_state.gap_cached(root, teacher["path"], students, bn, epochs, spectrum)
except Exception as e:  # noqa: BLE001 - e.g. a checkpoint deleted meanwhile
    state.show_error(e)
    st.stop()
if st.button("Compute", type="primary", disabled=cached, key="g_go") or spectrum:
    st.session_state["g_auto"] = True  # from now on, changes recompute on their own
if not (cached or st.session_state.get("g_auto")):
    if default_gap_running(root):
        st.info(
            "The default students' connectors are being fitted in the background (started by "
            "the default runs' build); this page fills in when they are done."
        )
        gap_state.default_gap_progress()
    else:
        st.info(
            "Fitting the connectors takes seconds per student (closed form, digits students: "
            "about 15 s of one CPU core for the first, about 10 s for each further one); "
            "results are kept in the runs folder. "
            "Press Compute."
        )
    st.stop()

with st.spinner("fitting connectors and measuring the gap (kept afterwards) ..."):
    try:
        gap = gap_state.gap(root, teacher["path"], students, bn, epochs, spectrum)
    except Exception as e:  # noqa: BLE001 - e.g. a student of another dataset
        state.show_error(e)
        st.stop()

result = gap.result
seeds = {label: src.get("seed") for label, src in gap.inputs.items()}
per_seed = split_by_seed(result, seeds)
own = st.toggle("Show FCFD's own bridges", value=False, key="g_own")
if own:
    st.caption(OWN_BRIDGES_NOTE)
shown = {s: without_own(r, own) for s, r in per_seed.items()}
groups = group_over_seeds(shown)
if max(len(g.seeds) for g in groups.values()) > 1:
    pair = paired_gap(shown, "fcfd (fitted)", "kd (fitted)")
    (st.success if pair.holds() else st.warning)(pair.reading())
    st.plotly_chart(viz_gap.gap_seeds_figure(groups, result.bn_label), key="g_seed_bars")
    if pair.seeds:
        st.plotly_chart(viz_gap.paired_gap_figure(pair), key="g_paired")
else:
    st.info(
        gap.reading
        + " One seed per method: the difference may be noise (pick students of several seeds)."
    )
    st.plotly_chart(viz.gap_figure(without_own(result, own)), key="g_bars")
left, right = st.columns([3, 2])
left.plotly_chart(viz.path_accuracy_figure(without_own(result, own)), key="g_paths")
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

with st.expander("Where the error lies", expanded=gap.spectrum is not None):
    if gap.spectrum is None:
        st.caption("Pick a number of test images under *Error spectrum* above.")
    else:
        st.markdown(SPECTRUM_NOTE)
        spec = gap.spectrum.without_own(own)
        st.plotly_chart(viz_spectrum.share_figure([spec]), key="g_share")
        pred = gap_state.spectrum_predictors(spec)
        if pred is None:
            st.info("Which metric predicts the KL needs at least two students: pick another.")
        else:
            st.plotly_chart(viz_spectrum.predictor_figure([spec], pred), key="g_predictors")
            within = stage_predictor_text(pred)  # pooled, l2 also ranks the stages' sizes
            st.caption(
                f"Spearman with the measured KL over {pred['points']['students']} students × "
                f"stages ({pred['points']['pairs']} points, {spec.images} test images, 95% "
                f"bootstrap interval over students): {predictor_text(pred, ('fisher', 'l2'))}"
                + (f". Stage by stage, as l2 grows with a stage's size: {within}" if within else "")
            )

st.subheader("One picture")
st.caption(
    "What a functional gap means for one image: the teacher's prediction from its own stage "
    "feature (first bars) and from each student's feature carried over by its fitted "
    "connector. A small KL: the student's feature *works* like the teacher's for this image."
)
by_seed: dict[int, dict[str, dict]] = {}
for c, label in zip(students, gap_state.gap_labels(students)):
    by_seed.setdefault(gap.inputs[label].get("seed") or 0, {})[label] = c
i1, i2, i3 = st.columns(3)
seed = i1.selectbox("Students of seed", sorted(by_seed), key="g_img_seed")
first = next(iter(by_seed[seed].items()))
n_images = gap_state.test_images(root, teacher["path"], *first, epochs)
index = i2.number_input("Test image", 0, n_images - 1, 0, key="g_img")
stage = i3.selectbox("Stage", result.stages, index=len(result.stages) // 2, key="g_img_stage")
try:
    image, pred = gap_state.one_image(root, teacher["path"], by_seed[seed], epochs, index, stage)
except Exception as e:  # noqa: BLE001 - shown, the rest of the page stays
    state.show_error(e)
    st.stop()
st.plotly_chart(viz_gap.one_image_figure(pred.without_own(own), image), key="g_img_fig")
