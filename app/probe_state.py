"""The Sensitivity page's networks, images and cached probes.

A :class:`Source` is one network the page offers: a run's checkpoint (cut after a stage),
a pretrained torchvision model whose weights are in the torch hub cache, or an architecture
the user's modules register, built fresh (both cut after a layer, by dotted name). Networks
and images are cached on a hashable key (a checkpoint's path and mtime, an architecture and
its weights, an image folder and its mtime); each part of a probe on the keys it depends on
(the library computes it: :mod:`fcfd_viz.analysis.reports.probe`).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import models_state
import streamlit as st

if TYPE_CHECKING:
    from fcfd_viz.analysis.probe.anisotropy_result import AnisotropyResult
    from fcfd_viz.analysis.probe.attribution import AttributionResult
    from fcfd_viz.analysis.reports.probe import ProbeReport

N_RANDOM = 32  # random directions per probe


@dataclass(frozen=True)
class Source:
    """One network of the page: ``kind`` "run" (``name`` its run directory), "pretrained"
    (``name`` a ``tv_*`` arch with cached ``weights``) or "user" (a registered arch)."""

    label: str
    kind: str
    name: str
    weights: str | None = None


def sources(root: Path) -> list[Source]:
    """The runs of ``root`` with a checkpoint, then the cached pretrained models, then the
    user's architectures."""
    from fcfd_viz.models.registry import user_names
    from fcfd_viz.models.sources import pretrained_in_cache

    out = [Source(c["label"], "run", c["path"]) for c in models_state.checkpoints(root)]
    for arch, w in pretrained_in_cache():
        out.append(Source(f"{arch} · {w} (cached)", "pretrained", arch, w))
    out += [Source(f"{a} (your model, random init)", "user", a) for a in user_names()]
    return out


def network_key(src: Source) -> tuple:
    """What the network of ``src`` is cached on."""
    if src.kind == "run":
        return ("run", *models_state.ckpt_file(src.name))
    return (src.kind, src.name, src.weights)


@st.cache_resource(max_entries=8, show_spinner=False)
def cached_network(key: tuple):
    """The eval-mode network a :func:`network_key` names (shared; never modify it)."""
    if key[0] == "run":
        return models_state.cached_model(key[1], key[2])[0]
    from fcfd_viz.models.sources import probe_network

    return probe_network(key[1], key[2], staged=False)


def network(src: Source):
    """The eval-mode network of ``src``, shared by all sessions; never modify it."""
    return cached_network(network_key(src))


def image_key(src: Source, folder: str, n: int) -> tuple:
    """What ``n`` images of ``src`` are cached on: a run's test split, the PNG / JPEG files
    of ``folder`` (with its mtime) or, for a model without a dataset, digits test images."""
    if src.kind == "run":
        return ("run", *models_state.ckpt_file(src.name), n)
    from fcfd_viz.models.input_size import model_input_size

    size = model_input_size(src.name)
    if folder.strip():
        path = Path(folder.strip()).expanduser()
        mtime = path.stat().st_mtime if path.is_dir() else 0.0
        return ("folder", str(path), mtime, src.name, src.weights, size, n)
    return ("digits", size, n)


def images_note(key: tuple) -> str:
    """Which images a key stands for, said on the page."""
    kind, n = key[0], key[-1]
    if kind == "run":
        return f"Images: {n} test images of the run's dataset."
    if kind == "folder":
        return f"Images: the first {n} PNG/JPEG files of `{key[1]}`, preprocessed for {key[3]}."
    return (
        f"Images: {n} digits test images (scikit-learn's 8x8 handwritten digits upsampled "
        f"to {key[1]}x{key[1]}), not what this model was trained on: give an image folder "
        "of its own kind of images for numbers that mean something."
    )


@st.cache_data(max_entries=16, show_spinner=False)
def _images(key: tuple):
    from fcfd_viz.analysis.reports import image_folder

    kind, *args, n = key
    if kind == "run":
        from fcfd_viz.analysis.reports.probe import probe_images

        return probe_images(models_state.cached_model(*args)[1], n)[0]
    if kind == "folder":
        folder, _, arch, weights, size = args
        tf = image_folder.image_transform(arch, weights, size)
        return image_folder.folder_images(folder, n, tf)
    return image_folder.digits_images(n, args[0])


@st.cache_data(max_entries=64, show_spinner=False)
def _probe(net: tuple, cut: tuple, images: tuple, eps, directions, mode) -> ProbeReport:
    """Channel / random families and the maps of the extreme channels (eps and mode matter)."""
    from fcfd_viz.analysis.reports.probe import MAP_IMAGES, probe_report

    options = dict(eps=eps, directions=directions, mode=mode, n_random=N_RANDOM)
    stage, layer = cut
    model, x = cached_network(net), _images(images)
    return probe_report(model, x, stage, layer=layer, maps=MAP_IMAGES, **options)


@st.cache_data(max_entries=64, show_spinner=False)
def _jacobian(net: tuple, cut: tuple, images: tuple) -> AnisotropyResult:
    from fcfd_viz.analysis.reports.probe import jacobian_spectrum

    stage, layer = cut
    return jacobian_spectrum(cached_network(net), stage, _images(images), layer=layer)


@st.cache_data(max_entries=64, show_spinner=False)
def _attribution(net: tuple, cut: tuple, images: tuple, method: str) -> AttributionResult:
    from fcfd_viz.analysis.probe.attribution import Attribution

    stage, layer = cut
    return Attribution(cached_network(net), stage, layer=layer).compute(_images(images), [method])


def probe(src: Source, cut: tuple, images: tuple, eps: float, directions, mode, attribution):
    """The page's :class:`~fcfd_viz.analysis.ProbeReport` of ``src`` cut at ``cut``
    (``(stage, None)`` or ``(None, layer)``) on the images of ``images`` (an
    :func:`image_key`), each part cached on what it depends on: the Jacobian spectrum (on at
    most ``JACOBIAN_IMAGES`` images) and the attribution depend on neither eps nor the mode,
    so changing those recomputes neither; :func:`~fcfd_viz.analysis.combine_probe` joins
    the parts."""
    from fcfd_viz.analysis.reports.probe import JACOBIAN_IMAGES, combine_probe

    net = network_key(src)
    others = tuple(d for d in directions if d != "jacobian")
    report = _probe(net, cut, images, eps, others, mode) if others else None
    jac = None
    if "jacobian" in directions:
        jac = _jacobian(net, cut, (*images[:-1], min(images[-1], JACOBIAN_IMAGES)))
    attr = None
    if attribution and "channel" in others:
        attr = _attribution(net, cut, images, attribution)
    return combine_probe(report, jac, attr)
