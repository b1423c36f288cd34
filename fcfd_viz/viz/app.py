"""Plotly figures the dashboard needs beyond :mod:`fcfd_viz.viz.figures` (no UI framework here)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING

import numpy as np
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from fcfd_viz.viz.figures import TEMPLATE, method_color

if TYPE_CHECKING:
    from fcfd_viz.analysis.reports.probe import FeatureMaps


def feature_maps_figure(result: FeatureMaps) -> go.Figure:
    """Input images (rows) beside their feature maps for the result's channels (columns),
    each column titled with its kind ("most" / "least"), channel and sensitivity."""
    images, maps = np.asarray(result.images), np.asarray(result.maps)
    channels, kinds, sensitivity = result.channels, result.kinds, result.sensitivity
    n, k = maps.shape[:2]
    titles = ["input"] + [
        f"{kind}<br>ch {c}" + (f" ({sensitivity[i]:.2g})" if sensitivity else "")
        for i, (c, kind) in enumerate(zip(channels, kinds))
    ]
    fig = make_subplots(
        rows=n,
        cols=k + 1,
        column_titles=titles,
        horizontal_spacing=0.02,
        vertical_spacing=0.03,
    )
    for r in range(n):
        fig.add_trace(
            go.Heatmap(z=images[r][::-1], colorscale="gray_r", showscale=False, hoverinfo="skip"),
            row=r + 1,
            col=1,
        )
        for j in range(k):
            fig.add_trace(
                go.Heatmap(
                    z=maps[r, j][::-1],
                    colorscale="Viridis",
                    showscale=False,
                    hovertemplate=f"image {r}, channel {channels[j]}<br>%{{z:.3g}}<extra></extra>",
                ),
                row=r + 1,
                col=j + 2,
            )
    fig.update_xaxes(showticklabels=False)
    for i in range(1, n * (k + 1) + 1):  # square pixels in every panel
        fig.update_yaxes(
            showticklabels=False,
            scaleanchor=f"x{i if i > 1 else ''}",
            row=(i - 1) // (k + 1) + 1,
            col=(i - 1) % (k + 1) + 1,
        )
    fig.update_annotations(font_size=11)
    fig.update_layout(
        template=TEMPLATE,
        title="Inputs and the maps of their most / least sensitive channels",
        height=120 * n + 120,
        margin=dict(l=20, r=20, t=110, b=20),
    )
    return fig


def metric_compare_figure(
    runs: Mapping[str, Sequence[Mapping]], key: str, title: str | None = None
) -> go.Figure:
    """One curve per run of ``key`` per epoch (``"loss"``, ``"test_top1"`` or a loss term
    from ``losses``), coloured by the method the run's label starts with."""
    fig = go.Figure()
    for name, metrics in runs.items():
        ys = [m.get(key, (m.get("losses") or {}).get(key)) for m in metrics]
        fig.add_trace(
            go.Scatter(
                x=[m.get("epoch") for m in metrics],
                y=ys,
                mode="lines+markers",
                name=name,
                line=dict(color=method_color(name)),
            )
        )
    fig.update_layout(
        title=title or f"{key} per epoch",
        template=TEMPLATE,
        xaxis_title="epoch",
        yaxis_title=key,
        legend=dict(orientation="h", y=-0.2),
    )
    return fig


def progress_figure(jobs: Sequence[Mapping]) -> go.Figure:
    """Horizontal bars of epochs done per job (``name``, ``epoch``, ``epochs``, ``state``)."""
    names = [j["name"] for j in jobs]
    done = [j.get("epoch") or 0 for j in jobs]
    total = [j.get("epochs") or max(1, j.get("epoch") or 1) for j in jobs]
    fig = go.Figure(
        go.Bar(
            y=names,
            x=[100.0 * d / t for d, t in zip(done, total)],
            orientation="h",
            text=[f"{d}/{t} {j.get('state', '')}" for d, t, j in zip(done, total, jobs)],
            marker_color=[method_color(j.get("method") or j["name"]) for j in jobs],
        )
    )
    fig.update_layout(
        title="Progress",
        template=TEMPLATE,
        xaxis=dict(title="% of epochs", range=[0, 100]),
        height=120 + 40 * len(jobs),
        margin=dict(t=50, b=40),
    )
    return fig
