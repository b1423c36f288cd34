"""Sensitivity: how differently does the output react to same-size feature perturbations?"""

import pickers
import probe_state
import state
import streamlit as st

from fcfd_viz.analysis.probe.anisotropy import DIRECTIONS
from fcfd_viz.analysis.probe.attribution import DEFAULT_METHODS
from fcfd_viz.viz import app as viz_app
from fcfd_viz.viz import figures as viz

st.title("Sensitivity")
st.caption(
    "Cut a network after a stage or layer, push its feature by the same L2 size eps in different "
    "directions, and measure how much the output moves (KL). Equal L2 distance is not "
    "equal function: that is why FCFD matches features through the teacher's own layers."
)
root = state.runs_dir()
c1, c2, c3 = st.columns([3, 1, 1])
src = pickers.pick_source(root, c1, "sens_ckpt")
try:
    net = probe_state.network(src)
    cut = pickers.cut_picker(src, net, c2, "sens")
except Exception as e:  # noqa: BLE001 - a corrupt checkpoint must not take the app down
    state.show_error(e)
    st.stop()
if src.kind == "user":
    st.info(f"{src.name} is built fresh (random init): your architecture, not trained weights.")
eps = c3.number_input(
    "eps (relative to ||f||)", value=0.05, step=0.01, format="%.3f", key="sens_eps"
)
folder = ""
if src.kind != "run":
    folder = st.text_input(
        "Image folder (PNG/JPEG)", key="sens_folder", help="empty: digits test images"
    )
c4, c5, c6, c7 = st.columns(4)
dirs = c4.multiselect(
    "Direction families", list(DIRECTIONS), default=list(DIRECTIONS), key="sens_dirs"
)
n_images = c5.slider("Images", 1, 64, 16, key="sens_n")
mode = c6.selectbox(
    "Mode", ["exact", "fisher"], key="sens_mode", help="fisher: second-order, much faster"
)
attribution = c7.selectbox("Attribution (captum)", DEFAULT_METHODS, key="sens_attr")

if not 0 < eps <= 1:
    st.error(f"eps must be in (0, 1] (a fraction of the feature norm), got {eps}")
    st.stop()
if not dirs:
    st.error("pick at least one direction family")
    st.stop()
with st.spinner("probing ..."):
    try:
        images = probe_state.image_key(src, folder, n_images)
        st.caption(probe_state.images_note(images))
        report = probe_state.probe(src, cut, images, float(eps), dirs, mode, attribution)
    except Exception as e:  # noqa: BLE001
        state.show_error(e)
        st.stop()

res, spectrum = report.anisotropy, report.spectrum
m1, m2, m3, m4 = st.columns(4)
fmt = lambda v: "n/a" if v is None else f"{v:.3g}"  # noqa: E731
m1.metric("max / min channel sensitivity", fmt(res.anisotropy_ratio))
m2.metric("p95 / p5", fmt(res.p95_p5_ratio))
m3.metric("random median", fmt(res.random_quantile(0.5)))
m4.metric("probe seconds", f"{res.seconds:.2f}")

left, right = st.columns(2)
if res.channel_sensitivity is not None:
    left.plotly_chart(viz.channel_sensitivity_figure(res), key="sens_bars")
else:
    left.info("Add the channel family to see per-channel sensitivity.")
if spectrum is not None:
    right.plotly_chart(viz.jacobian_spectrum_figure(spectrum), key="sens_jac")
    right.caption(f"Jacobian of the rest of the network on {spectrum.num_images} test images")
else:
    right.info("Add the jacobian family to see the Jacobian spectrum.")

left, right = st.columns(2)
if report.attribution is not None:
    fig = viz.sensitivity_vs_attribution_figure(report, attribution)
    left.plotly_chart(fig, key="sens_attr_fig")
    rho = report.spearman[attribution]
    left.caption(
        f"Spearman rank correlation between {attribution} and the sensitivity: "
        f"{'n/a' if rho is None else f'{rho:.2f}'}"
    )
if report.maps is not None:
    right.plotly_chart(viz_app.feature_maps_figure(report.maps), key="sens_maps")
