"""Plotly figures of detectors: boxes on an image side by side, and the per-level detection
functional gap (:class:`~fcfd_viz.detection.gap_result.DetGapResult`)."""

from __future__ import annotations

from collections.abc import Callable, Mapping

import plotly.graph_objects as go
from torch import Tensor

from fcfd_viz.viz.figures import TEMPLATE, method_color

Boxes = Mapping[str, Tensor]  # "boxes" (N, 4) xyxy, "labels" (N,), optional "scores" (N,)


def digit_name(label: int) -> str:
    """The digit-boxes class name of a detector label (1..10 -> "0".."9")."""
    return str(int(label) - 1)


def _rectangles(boxes: Tensor) -> tuple[list, list]:
    """Closed outlines of (N, 4) xyxy boxes as one line trace's x and y (None between)."""
    xs, ys = [], []
    for x0, y0, x1, y1 in boxes.tolist():
        xs += [x0, x1, x1, x0, x0, None]
        ys += [y0, y0, y1, y1, y0, None]
    return xs, ys


def _panel(fig, col: int, image: Tensor, d: Boxes, threshold: float, color: str, names) -> None:
    """``image`` (3, H, W) or (H, W) in [0, 1] in column ``col`` with the boxes of ``d``
    (those scoring at least ``threshold`` when it has scores), each labelled."""
    grey = image[0] if image.dim() == 3 else image  # (H, W)
    heat = go.Heatmap(z=grey.tolist(), colorscale="gray", showscale=False, hoverinfo="skip")
    fig.add_trace(heat, row=1, col=col)
    scores = d.get("scores")
    keep = slice(None) if scores is None else scores >= threshold
    boxes, labels = d["boxes"][keep], d["labels"][keep]
    xs, ys = _rectangles(boxes)
    line = go.Scatter(x=xs, y=ys, mode="lines", line=dict(color=color, width=2))
    fig.add_trace(line, row=1, col=col)
    kept = scores[keep].tolist() if scores is not None else [None] * len(labels)
    text = [names(int(lab)) + ("" if s is None else f" {s:.2f}") for lab, s in zip(labels, kept)]
    fig.add_trace(
        go.Scatter(
            x=[float(b[0]) for b in boxes],
            y=[float(b[1]) for b in boxes],
            mode="text",
            text=text,
            textposition="top right",
            textfont=dict(color=color, size=11),
        ),
        row=1,
        col=col,
    )
    h, w = grey.shape
    fig.update_xaxes(range=[-0.5, w - 0.5], showticklabels=False, row=1, col=col)
    anchor = "x" if col == 1 else f"x{col}"
    fig.update_yaxes(
        range=[h - 0.5, -0.5], showticklabels=False, scaleanchor=anchor, row=1, col=col
    )


def _count(d: Boxes, threshold: float) -> str:
    scores = d.get("scores")
    n = len(d["boxes"]) if scores is None else int((scores >= threshold).sum())
    return f"{n} box{'es' if n != 1 else ''}"


def detections_figure(
    image: Tensor,
    panels: Mapping[str, Boxes],
    threshold: float = 0.5,
    colors: Mapping[str, str] | None = None,
    names: Callable[[int], str] = digit_name,
) -> go.Figure:
    """``image`` (3, H, W) or (H, W) in [0, 1] once per panel, with that panel's boxes: a
    panel without ``scores`` (the ground truth) shows every box, the others those scoring at
    least ``threshold``, each labelled "class score"."""
    from plotly.subplots import make_subplots

    titles = [f"{name} ({_count(d, threshold)})" for name, d in panels.items()]
    fig = make_subplots(rows=1, cols=len(panels), subplot_titles=titles, horizontal_spacing=0.03)
    for col, (name, d) in enumerate(panels.items(), start=1):
        color = (colors or {}).get(name) or (
            "#2ca02c" if d.get("scores") is None else method_color(name)
        )
        _panel(fig, col, image, d, threshold, color, names)
    title = f"Detections (score >= {threshold:.2f})"
    return fig.update_layout(template=TEMPLATE, title=title, showlegend=False, height=360)


def canvases_figure(dataset, indices, names: Callable[[int], str] = digit_name) -> go.Figure:
    """Images ``indices`` of a detection dataset side by side with their ground-truth boxes
    and class names."""
    from plotly.subplots import make_subplots

    titles = [f"#{i}" for i in indices]
    fig = make_subplots(rows=1, cols=len(titles), subplot_titles=titles, horizontal_spacing=0.03)
    for col, i in enumerate(indices, start=1):
        image, target = dataset[i]
        _panel(fig, col, image, target, 0.0, "#2ca02c", names)
    title = "Test canvases with their boxes"
    return fig.update_layout(template=TEMPLATE, title=title, showlegend=False, height=300)


def det_gap_figure(result) -> go.Figure:
    """Appearance (MSE) beside functional (KL) gap per FPN level, one bar group per student
    view, the all-levels KL as a last group; fitted connectors of a student that also has
    its own bridges are hatched. Levels the box head never reads have no functional bar."""
    from plotly.subplots import make_subplots

    d = result.to_dict(curves=False)
    levels = d["levels"]
    titles = ("appearance gap (MSE after the bridge)", "functional gap (KL, teacher box head)")
    fig = make_subplots(rows=1, cols=2, subplot_titles=titles)
    own = {e["student"] for e in d["students"].values() if e["bridges"] == "own bridges"}
    for name, e in d["students"].items():
        hatch = "/" if e["bridges"] == "fitted" and e["student"] in own else ""
        marker = dict(color=method_color(e.get("method") or name), pattern_shape=hatch)
        app = go.Bar(
            x=levels, y=[e["appearance"][k] for k in levels], name=name, legendgroup=name,
            marker=marker,
        )  # fmt: skip
        func = go.Bar(
            x=[*levels, "all"],
            y=[*(e["functional"][k] for k in levels), e["all"]["functional"]],
            name=name,
            legendgroup=name,
            showlegend=False,
            marker=marker,
            customdata=[*(e["box"][k] for k in levels), e["all"]["box"]],
            hovertemplate="%{x}: KL %{y:.4g}, box-delta MSE %{customdata:.4g}",
        )
        fig.add_trace(app, row=1, col=1)
        fig.add_trace(func, row=1, col=2)
    fig.update_yaxes(type="log")
    title = f"Detection: appearance vs functional gap per FPN level ({d['num_rois']} proposals)"
    fig.update_layout(barmode="group", template=TEMPLATE, title=title)
    return fig.update_layout(legend=dict(orientation="h", y=-0.2))
