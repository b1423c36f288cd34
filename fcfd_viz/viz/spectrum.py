"""Plotly figures of where the students' appearance error lies
(:mod:`fcfd_viz.analysis.gap.spectra`): the cumulative error-energy share along the teacher's
sensitive directions per method, and the two appearance metrics against the functional gap.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

import plotly.graph_objects as go

from fcfd_viz.viz.figures import TEMPLATE, method_color

if TYPE_CHECKING:
    from fcfd_viz.analysis.gap.spectra import SpectrumResult


def _method(view: str, entry) -> str:
    return entry.method or view.split(" (")[0]


def share_figure(results: Sequence[SpectrumResult]) -> go.Figure:
    """Per stage, the share of the error energy in the top-k sensitive directions against k:
    one line per method and bridge kind, mean ± std over ``results`` (one per seed), the share
    of an isotropic error dashed. Above the dashed line: the error sits where the tail looks."""
    from plotly.subplots import make_subplots

    stages = results[0].stages
    fig = make_subplots(rows=1, cols=len(stages), subplot_titles=[f"stage {s}" for s in stages])
    curves: dict[tuple[str, str], list[list[list[float]]]] = {}
    for r in results:
        for view, e in r.entries.items():
            curves.setdefault((_method(view, e), e.bridges), []).append(e.share)
    for col in range(1, len(stages) + 1):
        iso = results[0].entries[next(iter(results[0].entries))].isotropic[col - 1]
        ks = list(range(1, len(iso) + 1))
        fig.add_trace(
            go.Scatter(
                x=ks,
                y=iso,
                name="isotropic error",
                line=dict(dash="dash", color="#888"),
                showlegend=col == 1,
                legendgroup="iso",
            ),
            row=1,
            col=col,
        )
        for (method, bridges), per_seed in curves.items():
            rows = [seed[col - 1] for seed in per_seed]  # (seeds, k)
            mean = [sum(v) / len(v) for v in zip(*rows)]
            std = [
                (sum((x - m) ** 2 for x in v) / max(1, len(v) - 1)) ** 0.5
                for v, m in zip(zip(*rows), mean)
            ]
            name = f"{method} ({bridges}) · {len(rows)} seed{'s' * (len(rows) > 1)}"
            fig.add_trace(
                go.Scatter(
                    x=ks,
                    y=mean,
                    error_y=dict(type="data", array=std, visible=len(rows) > 1),
                    name=name,
                    legendgroup=name,
                    showlegend=col == 1,
                    line=dict(color=method_color(method), dash="dot" if "own" in bridges else None),
                ),
                row=1,
                col=col,
            )
        fig.update_xaxes(title_text="top-k sensitive directions", type="log", row=1, col=col)
    fig.update_yaxes(title_text="share of ||e||^2", range=[0, 1], row=1, col=1)
    fig.update_layout(template=TEMPLATE, title="Where the appearance error lies")
    return fig.update_layout(legend=dict(orientation="h", y=-0.25))


def predictor_figure(results: Sequence[SpectrumResult], predictors: dict) -> go.Figure:
    """``l2`` against the measured KL and ``fisher`` against it, one point per student view
    and stage (log axes), the Spearman correlation and its bootstrap interval in each title
    (``predictors``: :func:`fcfd_viz.analysis.gap.spectra.predictors` of ``results``)."""
    from plotly.subplots import make_subplots

    def title(name: str) -> str:
        p = predictors[name]
        return f"{name} vs KL: Spearman {p['spearman']:.2f} [{p['low']:.2f}, {p['high']:.2f}]"

    fig = make_subplots(rows=1, cols=2, subplot_titles=[title("l2"), title("fisher")])
    shown = set()
    for r in results:
        for view, e in r.entries.items():
            method = _method(view, e)
            for col, key in ((1, "l2"), (2, "fisher")):
                fig.add_trace(
                    go.Scatter(
                        x=e.means[key],
                        y=e.means["kl"],
                        mode="markers",
                        name=method,
                        legendgroup=method,
                        showlegend=method not in shown and col == 1,
                        text=[f"{view}, stage {s}" for s in r.stages],
                        hovertemplate="%{text}<br>x %{x:.3g}, KL %{y:.3g}<extra></extra>",
                        marker=dict(color=method_color(method)),
                    ),
                    row=1,
                    col=col,
                )
            shown.add(method)
    fig.update_xaxes(type="log", title_text="||e||^2", row=1, col=1)
    fig.update_xaxes(type="log", title_text="1/2 e^T F e", row=1, col=2)
    fig.update_yaxes(type="log", title_text="measured KL", row=1, col=1)
    fig.update_layout(template=TEMPLATE, title="Which appearance metric predicts function?")
    return fig
