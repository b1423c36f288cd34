"""The Perturbation page's test images and prepared explorers, cached.

Networks and the model list come from :mod:`probe_state`. A run's image is picked by its
index in the run's own test split; other models get digits test images (as the Sensitivity
page does without an image folder). The prepared
:class:`~fcfd_viz.analysis.probe.perturb.PerturbationExplorer` (feature, channel ranking,
directions, Jacobian direction) is cached on the network, the cut and the image, so moving
eps runs only the rest of the network on the four perturbed features.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import models_state
import probe_state
import streamlit as st

if TYPE_CHECKING:
    from fcfd_viz.analysis.probe.perturb import PerturbationExplorer
    from fcfd_viz.analysis.probe.perturb_result import PerturbationResult


@st.cache_resource(max_entries=8, show_spinner=False)
def _test_split(path: str, mtime: float):
    """(test dataset, class names or None) of a run's checkpoint; never modify it."""
    from fcfd_viz.analysis.reports.probe import test_split

    test, _ = test_split(models_state.cached_model(path, mtime)[1])
    return test, getattr(test, "classes", None)


@st.cache_resource(show_spinner=False)
def _digits_count() -> int:
    from fcfd_viz.data.datasets import DigitsDataset

    return len(DigitsDataset(False, 16, augment=False))


def images_of(src: probe_state.Source) -> tuple[tuple, int, list[str] | None]:
    """``(key, number of test images, class names)`` of the images ``src`` is shown on:
    its run's test split, else the digits test split at the model's input size."""
    if src.kind == "run":
        file = models_state.ckpt_file(src.name)
        test, names = _test_split(*file)
        return ("run", *file), len(test), names
    from fcfd_viz.models.input_size import model_input_size

    size = model_input_size(src.name)
    return ("digits", size), _digits_count(), None


@st.cache_data(max_entries=64, show_spinner=False)
def test_image(key: tuple, index: int):
    """``(image (3, H, W), label)``: test image ``index`` of the images ``key`` names."""
    if key[0] == "run":
        return _test_split(key[1], key[2])[0][index]
    from fcfd_viz.analysis.reports.image_folder import digits_test_image

    return digits_test_image(index, key[1])


@st.cache_resource(max_entries=16, show_spinner=False)
def _explorer(net: tuple, cut: tuple, images: tuple, index: int) -> PerturbationExplorer:
    from fcfd_viz.analysis.probe.perturb import PerturbationExplorer

    stage, layer = cut
    explorer = PerturbationExplorer(probe_state.cached_network(net), stage, layer=layer)
    return explorer.prepare(test_image(images, index)[0])


def explore(src, cut: tuple, images: tuple, index: int, eps: float) -> PerturbationResult:
    """The four same-norm perturbations of test image ``index`` at size ``eps``: prepared
    once per (network, cut, image), then one forward pass of the rest per eps."""
    return _explorer(probe_state.network_key(src), cut, images, index)(eps)
