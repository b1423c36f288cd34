"""Perturbation explorer: one image, four perturbations of the same L2 norm, side by side."""

import perturb_state
import pickers
import probe_state
import state
import streamlit as st

from fcfd_viz.viz import perturb as viz_perturb


@st.fragment
def perturbations(src, cut: tuple, images: tuple, index: int, class_names) -> None:
    """The eps slider and everything it changes: an eps change reruns only this part (one
    forward pass of the rest of the network on the prepared explorer, and the figures)."""
    c4, c5 = st.columns([4, 1])
    eps = c4.slider("eps (perturbation norm, relative to ||f||)", 0.0, 1.0, 0.1, 0.01, key="pt_eps")
    log_y = c5.checkbox(
        "log-scale probabilities",
        key="pt_log",
        help="shows the small changes of a confident output",
    )
    with st.spinner("preparing the directions (once per model, cut and image) ..."):
        try:
            res = perturb_state.explore(src, cut, images, index, float(eps))
        except Exception as e:  # noqa: BLE001
            state.show_error(e)
            return
    fmt = lambda v: f"{float(v):.3g}"  # noqa: E731
    m1, m2, m3, m4 = st.columns(4)
    m1.metric("KL, most sensitive channel", fmt(res.kl[0]))
    m2.metric("KL, least sensitive channel", fmt(res.kl[1]))
    m3.metric("KL, top Jacobian direction", fmt(res.kl[3]))
    m4.metric("||delta|| (all four)", fmt(res.size))
    probs = viz_perturb.probabilities_figure(res, class_names, log_y=log_y)
    st.plotly_chart(probs, key="pt_probs")
    left, right = st.columns([3, 2])
    left.plotly_chart(viz_perturb.perturbation_maps_figure(res), key="pt_maps")
    right.plotly_chart(viz_perturb.kl_figure(res), key="pt_kl")
    st.caption(
        f"The four perturbations each have L2 norm {res.size:.3g} (eps = {res.eps:.3g} of "
        f"||f|| = {res.feature_norm:.3g}). Channels are ranked for this image by their Fisher "
        "sensitivity (the leading-order KL); the Jacobian direction is signed against the clean "
        "prediction. KL is KL(unperturbed || perturbed)."
    )


st.title("Perturbation explorer")
st.caption(
    "Push one test image's feature by the same L2 norm along the most and the least sensitive "
    "channel, a random direction and the top Jacobian direction, and watch the class "
    "probabilities. Equal L2 distance is not equal function."
)
root = state.runs_dir()
c1, c2 = st.columns([3, 1])
src = pickers.pick_source(root, c1, "pt_ckpt")
try:
    net = probe_state.network(src)
    images, count, class_names = perturb_state.images_of(src)
    cut = pickers.cut_picker(src, net, c2, "pt")
except Exception as e:  # noqa: BLE001 - a corrupt checkpoint must not take the app down
    state.show_error(e)
    st.stop()
if src.kind != "run":
    st.caption(
        "Images: digits test images (scikit-learn's 8x8 digits, upsampled), not what this "
        "model was trained on."
    )


c3, c4, _ = st.columns([1, 1, 4])
if st.session_state.get("pt_index", 0) >= count:  # another model's split was longer
    del st.session_state["pt_index"]
index = c3.number_input("Test image", 0, count - 1, 0, step=1, key="pt_index")
try:
    image, label = perturb_state.test_image(images, int(index))
except Exception as e:  # noqa: BLE001
    state.show_error(e)
    st.stop()
name = class_names[label] if class_names else label
c4.image(viz_perturb.thumbnail(image), caption=f"label {name}", width=96)
perturbations(src, cut, images, int(index), class_names)
