"""Plotly figures of the perturbation explorer (:class:`~fcfd_viz.analysis.perturb_result.PerturbationResult`).

Four perturbations of one feature with the same L2 norm, side by side: the class
probabilities they leave (:func:`probabilities_figure`), where they live and what the
perturbed features look like (:func:`perturbation_maps_figure`) and the KL divergence each
causes (:func:`kl_figure`). No UI framework here; torch only through the result's tensors.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from fcfd_viz.viz import FAMILY_COLORS, TEMPLATE

if TYPE_CHECKING:
    from torch import Tensor

    from fcfd_viz.analysis.perturb_result import PerturbationResult

CLEAN_COLOR = "#444444"
DIRECTION_COLORS = {
    "most": FAMILY_COLORS["channel"],
    "least": "#9ecae1",
    "random": FAMILY_COLORS["random"],
    "jacobian": FAMILY_COLORS["jacobian top"],
}
MAX_CLASSES = 12  # more classes than this: show the most probable ones only


def _size(res: PerturbationResult) -> str:
    rel = f"eps {res.eps:.3g} x ||f||" if res.relative else f"eps {res.eps:.3g}"
    return f"||delta|| = {res.size:.3g} ({rel})"


def _shown_classes(res: PerturbationResult, top: int) -> list[int]:
    """Every class when there are at most ``top``; else the ``top`` with the highest
    probability in any panel, in class order."""
    k = res.probs.shape[-1]
    if k <= top:
        return list(range(k))
    best = np.maximum(np.asarray(res.clean_probs), np.asarray(res.probs).max(0))
    return sorted(np.argsort(-best, kind="stable")[:top].tolist())


def probabilities_figure(
    res: PerturbationResult, class_names: Sequence[str] | None = None, top: int = MAX_CLASSES
) -> go.Figure:
    """The teacher's class probabilities without perturbation and under each of the four,
    one bar chart per panel side by side (the clean prediction's bar outlined in each)."""
    shown = _shown_classes(res, top)
    name = lambda c: str(class_names[c]) if class_names else str(c)  # noqa: E731
    names = [name(c) for c in shown]
    clean = res.clean_class
    rows = [np.asarray(res.clean_probs)] + list(np.asarray(res.probs))
    preds = [clean] + res.predictions
    titles = [f"unperturbed<br>class {name(clean)}"] + [
        f"{label}<br>KL {float(kl):.3g}" for label, kl in zip(res.labels, res.kl)
    ]
    colors = [CLEAN_COLOR] + [DIRECTION_COLORS[n] for n in res.names]
    fig = make_subplots(rows=1, cols=len(rows), subplot_titles=titles, shared_yaxes=True)
    for j, (p, pred, color) in enumerate(zip(rows, preds, colors)):
        outline = [2.5 if c == clean else 0 for c in shown]
        bar = go.Bar(
            x=names,
            y=[float(p[c]) for c in shown],
            marker=dict(color=color, line=dict(color="black", width=outline)),
            name=titles[j].split("<br>")[0],
            showlegend=False,
            hovertemplate="class %{x}<br>p = %{y:.3f}<extra></extra>",
        )
        fig.add_trace(bar, row=1, col=j + 1)
        if pred != clean:  # the top-1 class changed
            fig.layout.annotations[j].text += f", now {name(pred)}"
    fig.update_yaxes(range=[0, 1])
    fig.update_yaxes(title_text="probability", row=1, col=1)
    fig.update_xaxes(type="category", tickangle=0 if len(shown) <= 10 else -45)
    fig.update_annotations(font_size=11)
    title = f"Same L2 norm, different function: class probabilities ({_size(res)})"
    if len(shown) < res.probs.shape[-1]:
        title += f"; the {len(shown)} most probable of {res.probs.shape[-1]} classes"
    fig.update_layout(template=TEMPLATE, title=title, height=340, margin=dict(t=110))
    return fig


def _heat(z: Tensor, zmin: float, zmax: float, scale: str, hover: str, show: bool) -> go.Heatmap:
    return go.Heatmap(
        z=np.asarray(z)[::-1],  # image rows top-down
        zmin=zmin,
        zmax=zmax,
        colorscale=scale,
        showscale=show,
        colorbar=dict(len=0.45, y=0.78 if scale == "Reds" else 0.22),
        hovertemplate=f"{hover}: %{{z:.3g}}<extra></extra>",
    )


def perturbation_maps_figure(res: PerturbationResult) -> go.Figure:
    """Top: where each perturbation lives (its L2 norm over channels per position, one
    colour scale for all four). Bottom: the channel mean of the clean feature and of each
    perturbed one (one colour scale): at a small eps they look alike, whatever they do."""
    deltas, feats = np.asarray(res.delta_maps), np.asarray(res.feature_maps)
    cols = 1 + len(res.names)
    titles = [*res.labels, "unperturbed feature", *["perturbed feature"] * len(res.names)]
    specs = [[None] + [{}] * len(res.names), [{}] * cols]  # nothing above the clean feature
    fig = make_subplots(
        rows=2,
        cols=cols,
        specs=specs,
        subplot_titles=titles,
        horizontal_spacing=0.03,
        vertical_spacing=0.12,
    )
    hi = float(deltas.max()) if deltas.size else 0.0
    for j in range(len(res.names)):
        heat = _heat(deltas[j], 0.0, hi or 1.0, "Reds", "|delta| per position", j == 0)
        fig.add_trace(heat, row=1, col=j + 2)
    lo, top = float(feats.min()), float(feats.max())
    for j in range(cols):
        heat = _heat(feats[j], lo, top if top > lo else lo + 1, "Viridis", "channel mean", j == 0)
        fig.add_trace(heat, row=2, col=j + 1)
    fig.update_xaxes(showticklabels=False)
    fig.update_yaxes(showticklabels=False)
    if feats.shape[1] > 1:  # square pixels for conv maps
        for axis in fig.select_yaxes():
            axis.scaleanchor = axis.anchor
    fig.update_annotations(font_size=11)
    title = f"Where the perturbations live, and the features they leave ({_size(res)})"
    fig.update_layout(template=TEMPLATE, title=title, height=460, margin=dict(t=90))
    return fig


def kl_figure(res: PerturbationResult) -> go.Figure:
    """KL(unperturbed || perturbed) of each direction, on a log axis."""
    kl = [max(float(v), 0.0) for v in res.kl]
    bar = go.Bar(
        x=res.labels,
        y=[v if v > 0 else None for v in kl],
        marker_color=[DIRECTION_COLORS[n] for n in res.names],
        text=[f"{v:.3g}" for v in kl],
        textposition="outside",
        hovertemplate="%{x}<br>KL %{y:.3g}<extra></extra>",
    )
    fig = go.Figure(bar)
    most, least = kl[0], kl[1]
    ratio = f"most / least channel: {most / least:.3g}x" if least > 0 else "eps = 0: no change"
    fig.update_yaxes(type="log", title_text="KL(unperturbed || perturbed)", exponentformat="power")
    title = f"Output change per direction, {ratio}"
    fig.update_layout(template=TEMPLATE, title=title, height=380, showlegend=False)
    return fig


def perturbation_figures(
    res: PerturbationResult, class_names: Sequence[str] | None = None
) -> list[go.Figure]:
    """Every figure of the explorer: probabilities, maps, KL."""
    return [probabilities_figure(res, class_names), perturbation_maps_figure(res), kl_figure(res)]


def thumbnail(image: Tensor) -> np.ndarray:
    """An input image (C, H, W), normalised any way, as (H, W, 3) floats in [0, 1] for
    display (min-max scaled; one channel is shown grey)."""
    x = np.asarray(image, dtype=np.float32)
    x = np.repeat(x[:1], 3, 0) if x.shape[0] != 3 else x
    lo, hi = float(x.min()), float(x.max())
    return ((x - lo) / (hi - lo if hi > lo else 1.0)).transpose(1, 2, 0)
