"""Plotly figures of the perturbation explorer (:class:`~fcfd_viz.analysis.probe.perturb_result.PerturbationResult`).

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

from fcfd_viz.viz.figures import FAMILY_COLORS, TEMPLATE

if TYPE_CHECKING:
    from torch import Tensor

    from fcfd_viz.analysis.probe.perturb_result import PerturbationResult

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


def _panels(
    cells: Sequence[tuple[int, int]],
    rows: int,
    cols: int,
    titles: Sequence[str],
    gap: tuple[float, float] = (0.03, 0.12),
) -> tuple[dict, list[str]]:
    """Axes for panels at ``cells`` ((row, col), 0-based) of a ``rows`` x ``cols`` grid,
    built in one layout dict (far cheaper than ``make_subplots`` plus updates: these
    figures redraw on every eps change). Returns the layout and each panel's axis suffix."""
    hgap, vgap = gap
    width, height = (1 - hgap * (cols - 1)) / cols, (1 - vgap * (rows - 1)) / rows
    layout: dict = {"annotations": []}
    suffixes = []
    clip = lambda v: min(1.0, max(0.0, v))  # noqa: E731 - rounding at the edges
    for i, ((r, c), title) in enumerate(zip(cells, titles)):
        k = "" if i == 0 else str(i + 1)
        x0, y1 = c * (width + hgap), 1 - r * (height + vgap)
        layout[f"xaxis{k}"] = dict(domain=[clip(x0), clip(x0 + width)], anchor=f"y{k}")
        layout[f"yaxis{k}"] = dict(domain=[clip(y1 - height), clip(y1)], anchor=f"x{k}")
        note = dict(text=title, x=x0 + width / 2, y=y1, xref="paper", yref="paper")
        layout["annotations"].append(
            dict(note, xanchor="center", yanchor="bottom", showarrow=False, font_size=11)
        )
        suffixes.append(k)
    return layout, suffixes


def probabilities_figure(
    res: PerturbationResult,
    class_names: Sequence[str] | None = None,
    top: int = MAX_CLASSES,
    log_y: bool = False,
) -> go.Figure:
    """The teacher's class probabilities without perturbation and under each of the four,
    one bar chart per panel side by side (the clean prediction's bar outlined in each);
    ``log_y``: a log axis, where the small changes of a confident prediction show."""
    shown = _shown_classes(res, top)
    name = lambda c: str(class_names[c]) if class_names else str(c)  # noqa: E731
    names = [name(c) for c in shown]
    clean = res.clean_class
    rows = [np.asarray(res.clean_probs)] + list(np.asarray(res.probs))
    titles = [f"unperturbed<br>class {name(clean)}"] + [
        f"{label}<br>KL {float(kl):.3g}" + (f", now {name(p)}" if p != clean else "")
        for label, kl, p in zip(res.labels, res.kl, res.predictions)
    ]  # ", now c": the top-1 class changed
    colors = [CLEAN_COLOR] + [DIRECTION_COLORS[n] for n in res.names]
    layout, axes = _panels([(0, j) for j in range(len(rows))], 1, len(rows), titles)
    if log_y:
        low = min(float(np.min(p[shown])) for p in rows)
        yaxis = dict(type="log", range=[np.log10(max(low, 1e-12)) - 0.3, 0.05])
        yaxis.update(exponentformat="power")
    else:
        yaxis = dict(range=[0, 1])
    outline = [2.5 if c == clean else 0 for c in shown]
    data = []
    for j, (p, color, k) in enumerate(zip(rows, colors, axes)):
        data.append(
            dict(
                type="bar",
                x=names,
                y=[float(p[c]) for c in shown],
                xaxis=f"x{k}",
                yaxis=f"y{k}",
                marker=dict(color=color, line=dict(color="black", width=outline)),
                showlegend=False,
                hovertemplate="class %{x}<br>p = %{y:.3f}<extra></extra>",
            )
        )
        layout[f"xaxis{k}"].update(type="category", tickangle=0 if len(shown) <= 10 else -45)
        layout[f"yaxis{k}"].update(yaxis, showticklabels=j == 0, matches="y" if j else None)
    layout["yaxis"]["title"] = "probability"
    title = f"Same L2 norm, different function: class probabilities ({_size(res)})"
    if len(shown) < res.probs.shape[-1]:
        title += f"; the {len(shown)} most probable of {res.probs.shape[-1]} classes"
    layout.update(template=TEMPLATE, title=title, height=340, margin=dict(t=110))
    return go.Figure(data=data, layout=layout)


def _heat(z: Tensor, k: str, zrange: tuple[float, float], scale: str, hover: str, show: bool):
    return dict(
        type="heatmap",
        z=np.asarray(z)[::-1],  # image rows top-down
        xaxis=f"x{k}",
        yaxis=f"y{k}",
        zmin=zrange[0],
        zmax=zrange[1],
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
    d, cols = len(res.names), 1 + len(res.names)
    cells = [(0, j + 1) for j in range(d)] + [(1, j) for j in range(cols)]  # none above clean
    titles = [*res.short_labels, "unperturbed", *["perturbed"] * d]
    layout, axes = _panels(cells, 2, cols, titles)
    hi = float(deltas.max()) if deltas.size else 0.0
    lo, top = float(feats.min()), float(feats.max())
    data = [
        _heat(deltas[j], axes[j], (0.0, hi or 1.0), "Reds", "|delta| per position", j == 0)
        for j in range(d)
    ]
    frange = (lo, top if top > lo else lo + 1)
    data += [
        _heat(feats[j], axes[d + j], frange, "Viridis", "channel mean", j == 0) for j in range(cols)
    ]
    for k in axes:
        layout[f"xaxis{k}"].update(showticklabels=False, showgrid=False, zeroline=False)
        layout[f"yaxis{k}"].update(showticklabels=False, showgrid=False, zeroline=False)
        if feats.shape[1] > 1:  # square pixels for conv maps
            layout[f"yaxis{k}"]["scaleanchor"] = f"x{k}"
    layout[f"yaxis{axes[0]}"]["title"] = dict(text="|delta| per position", font_size=11)
    layout[f"yaxis{axes[d]}"]["title"] = dict(text="channel mean", font_size=11)
    title = "Where each perturbation lives; the features it leaves"
    layout.update(template=TEMPLATE, title=title, height=460, margin=dict(t=90))
    return go.Figure(data=data, layout=layout)


def kl_figure(res: PerturbationResult) -> go.Figure:
    """KL(unperturbed || perturbed) of each direction, on a log axis."""
    kl = [max(float(v), 0.0) for v in res.kl]
    bar = dict(
        type="bar",
        x=res.short_labels,
        y=[v if v > 0 else None for v in kl],
        marker_color=[DIRECTION_COLORS[n] for n in res.names],
        text=[f"{v:.3g}" for v in kl],
        textposition="outside",
        hovertemplate="%{x}<br>KL %{y:.3g}<extra></extra>",
    )
    most, least = kl[0], kl[1]
    if res.eps == 0:
        ratio = "eps = 0, no change"
    elif least > 0:
        ratio = f"most / least channel {most / least:.3g}x"
    else:
        ratio = "the least sensitive channel changes nothing"
    layout = dict(
        template=TEMPLATE,
        title=f"KL per direction: {ratio}",
        height=380,
        showlegend=False,
        yaxis=dict(type="log", title="KL(unperturbed || perturbed)", exponentformat="power"),
    )
    return go.Figure(data=[bar], layout=layout)


def perturbation_figures(
    res: PerturbationResult, class_names: Sequence[str] | None = None, log_y: bool = False
) -> list[go.Figure]:
    """Every figure of the explorer: probabilities, maps, KL."""
    probs = probabilities_figure(res, class_names, log_y=log_y)
    return [probs, perturbation_maps_figure(res), kl_figure(res)]


def thumbnail(image: Tensor) -> np.ndarray:
    """An input image (C, H, W), normalised any way, as (H, W, 3) floats in [0, 1] for
    display (min-max scaled; one channel is shown grey)."""
    x = np.asarray(image, dtype=np.float32)
    x = np.repeat(x[:1], 3, 0) if x.shape[0] != 3 else x
    lo, hi = float(x.min()), float(x.max())
    return ((x - lo) / (hi - lo if hi > lo else 1.0)).transpose(1, 2, 0)
