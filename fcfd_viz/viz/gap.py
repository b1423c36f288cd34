"""Plotly figures of the functional gap over seeds (:mod:`fcfd_viz.analysis.gap.seeds`) and
for one image (:mod:`fcfd_viz.analysis.gap.one_image`).

Bars are means over seeds with the sample standard deviation as error bars; hovering a bar
lists every seed's value, so a reader sees the spread that one run would hide.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING

import plotly.graph_objects as go

from fcfd_viz.viz.figures import TEMPLATE, method_color

if TYPE_CHECKING:
    from fcfd_viz.analysis.gap.one_image import ImagePredictions
    from fcfd_viz.analysis.gap.seeds import PairedGap, SeedGroup


def gap_seeds_figure(groups: Mapping[str, SeedGroup], bn_label: str = "") -> go.Figure:
    """Appearance (MSE) beside functional (KL) gap per stage: one bar per group, mean ± std
    over its seeds. Groups seen through their own bridges are hatched."""
    from plotly.subplots import make_subplots

    titles = ("appearance gap (MSE after the bridge)", "functional gap (KL)")
    fig = make_subplots(rows=1, cols=2, subplot_titles=titles)
    n_seeds = max((len(g.seeds) for g in groups.values()), default=0)
    for name, g in groups.items():
        hatch = "/" if name.endswith("(own bridges)") else ""
        x = [f"stage {k}" for k in g.stages]
        for col, key in ((1, "appearance"), (2, "functional")):
            values = getattr(g, key).tolist()  # (seeds, S)
            hover = [
                ", ".join(f"s{s}: {row[i]:.3g}" for s, row in zip(g.seeds, values))
                for i in range(len(g.stages))
            ]
            bar = go.Bar(
                x=x,
                y=g.mean(key).tolist(),
                error_y=dict(type="data", array=g.std(key).tolist(), visible=len(g.seeds) > 1),
                name=f"{name} · {len(g.seeds)} seed{'s' * (len(g.seeds) > 1)}",
                legendgroup=name,
                showlegend=col == 1,
                customdata=hover,
                hovertemplate="%{x}: %{y:.3g}<br>%{customdata}<extra>" + name + "</extra>",
                marker=dict(color=method_color(name.split(" (")[0]), pattern_shape=hatch),
            )
            fig.add_trace(bar, row=1, col=col)
    spread = f"mean ± std over {n_seeds} seeds" if n_seeds > 1 else "one seed: no spread"
    title = f"Appearance vs functional gap, {spread}" + (f" ({bn_label})" if bn_label else "")
    fig.update_layout(barmode="group", template=TEMPLATE, title=title)
    return fig.update_layout(legend=dict(orientation="h", y=-0.2))


def paired_gap_figure(pair: PairedGap) -> go.Figure:
    """Per seed and stage, how much smaller ``a``'s functional gap is than ``b``'s (%; above
    zero: ``a`` is below ``b``). One line per seed, the mean dashed."""
    fig = go.Figure()
    x = [f"stage {k}" for k in pair.stages]
    for s, row in zip(pair.seeds, pair.reduction_pct.tolist()):
        fig.add_trace(go.Scatter(x=x, y=row, mode="lines+markers", name=f"seed {s}", opacity=0.6))
    if pair.seeds:
        mean = pair.reduction_pct.mean(0).tolist()
        fig.add_trace(
            go.Scatter(
                x=x, y=mean, mode="lines", name="mean", line=dict(color="black", dash="dash")
            )
        )
    fig.add_hline(y=0, line=dict(color="grey", width=1))
    fig.update_layout(
        template=TEMPLATE,
        title=f"{pair.a} vs {pair.b}, paired by seed: functional KL reduction",
        yaxis_title="% smaller than " + pair.b,
    )
    return fig


def one_image_figure(
    pred: ImagePredictions, image=None, class_names: list[str] | None = None
) -> go.Figure:
    """The teacher's class probabilities for one image: from its own feature and from each
    student's bridged feature at ``pred.stage``, with each panel's KL to the teacher's own.
    ``image`` (C, H, W tensor), when given, is drawn first (channel mean, greyscale)."""
    from plotly.subplots import make_subplots

    panels = [
        ("teacher (own feature)", pred.teacher, None),
        *((view, p, pred.kl[view]) for view, p in pred.bridged.items()),
    ]
    titles = [name if kl is None else f"{name}<br>KL {kl:.3g}" for name, _, kl in panels]
    first = 2 if image is not None else 1  # the column of the teacher's panel
    fig = make_subplots(
        rows=1, cols=len(panels) + first - 1, subplot_titles=["image"] * (first - 1) + titles
    )
    if image is not None:
        pixels = image.float().mean(0).flip(0).tolist()  # (H, W), row 0 at the bottom
        fig.add_trace(go.Heatmap(z=pixels, colorscale="gray", showscale=False), row=1, col=1)
        fig.update_xaxes(visible=False, row=1, col=1)
        fig.update_yaxes(visible=False, scaleanchor="x", row=1, col=1)
    classes = class_names or [str(c) for c in range(len(pred.teacher))]
    truth = pred.label
    for col, (name, probs, _) in enumerate(panels, start=first):
        colors = [
            method_color("teacher" if col == first else name.split(" (")[0])
            if c != truth
            else "#2ca02c"
            for c in range(len(classes))
        ]
        fig.add_trace(
            go.Bar(x=classes, y=probs.tolist(), marker_color=colors, name=name, showlegend=False),
            row=1, col=col,
        )  # fmt: skip
    for col in range(first, first + len(panels)):
        fig.update_yaxes(range=[0, 1], row=1, col=col)
    fig.update_yaxes(title_text="probability", row=1, col=first)
    label = "" if truth is None else f" (true class {classes[truth]} in green)"
    fig.update_layout(
        template=TEMPLATE,
        title=f"One image: the teacher's prediction from its own vs bridged stage-{pred.stage} "
        f"features{label}",
        height=330,
    )
    return fig
