"""Plotly figures shared by the CLI, the app and notebooks (no UI framework here).

Every figure function returns a ``plotly.graph_objects.Figure``. Methods keep one colour
everywhere (:data:`METHOD_COLORS`, :func:`method_color`). Analysis figures take results
(:class:`~fcfd_viz.analysis.AnisotropyResult`, :class:`~fcfd_viz.analysis.ProbeReport`,
:class:`~fcfd_viz.analysis.GapResult`), never their dicts: a dict from JSON comes back
through the result's ``from_dict``. :func:`probe_figures` and :func:`gap_figures` are the
figure sets ``fcfd probe --html`` and ``fcfd gap --html`` write. Nothing here imports torch
(the dashboard's Home page imports this module and must start fast).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING

import plotly.graph_objects as go

if TYPE_CHECKING:
    from fcfd_viz.analysis.gap.result import GapResult
    from fcfd_viz.analysis.probe.anisotropy_result import AnisotropyResult
    from fcfd_viz.analysis.reports.probe import ProbeReport

METHOD_COLORS: dict[str, str] = {
    "teacher": "#444444",
    "ce": "#7f7f7f",
    "kd": "#1f77b4",
    "fitnet": "#2ca02c",
    "dkd": "#9467bd",
    "fcfd": "#d62728",
    "fcfd+dkd": "#ff7f0e",
}
_FALLBACK = ("#17becf", "#bcbd22", "#8c564b", "#e377c2", "#393b79", "#637939")
FAMILY_COLORS = {
    "channel": "#1f77b4",
    "random": "#7f7f7f",
    "jacobian top": "#d62728",
    "jacobian bottom": "#2ca02c",
}
TEMPLATE = "plotly_white"


def method_color(name: str) -> str:
    """Colour of a method or of a run named after one (``"KD"``, ``"fcfd+dkd-seed1"``)."""
    key = name.lower()
    if key in METHOD_COLORS:
        return METHOD_COLORS[key]
    for m in sorted(METHOD_COLORS, key=len, reverse=True):  # "fcfd+dkd" before "fcfd"
        if key.startswith(m) and not key[len(m) : len(m) + 1].isalnum():
            return METHOD_COLORS[m]
    return _FALLBACK[sum(map(ord, key)) % len(_FALLBACK)]


def _layout(fig: go.Figure, title: str, x: str, y: str, log_y: bool = False) -> go.Figure:
    fig.update_layout(
        title=title,
        template=TEMPLATE,
        xaxis_title=x,
        yaxis_title=y,
        legend=dict(orientation="h", y=-0.2),
    )
    if log_y:
        fig.update_yaxes(type="log")
    return fig


def _fmt(v: float | None) -> str:
    return "n/a" if v is None else f"{v:.3g}"


def _line(x, y, name: str, color: str | None = None, **kw) -> go.Scatter:
    x, y = list(x), list(y)
    kw.setdefault("mode", "lines" if len(x) > 1 else "markers")  # one epoch: a visible point
    return go.Scatter(x=x, y=y, name=name, line=dict(color=color), marker=dict(color=color), **kw)


# ---------------------------------------------------------------- probe figures
def channel_sensitivity_figure(result: AnisotropyResult) -> go.Figure:
    """Channel sensitivities sorted high to low, with the random-direction p5..p95 band."""
    d = result.to_dict(per_image=False)
    sens = d.get("channel_sensitivity") or []
    order = sorted(range(len(sens)), key=lambda i: -(sens[i] or 0.0))
    bars = go.Bar(
        x=list(range(1, len(order) + 1)),
        y=[sens[i] for i in order],
        customdata=order,
        hovertemplate="channel %{customdata}<br>sensitivity %{y:.3g}<extra></extra>",
        name="channel directions",
        marker_color=FAMILY_COLORS["channel"],
    )
    fig = go.Figure(bars)
    if d.get("random_p5") is not None and order:
        x = [0.5, len(order) + 0.5]
        band = "rgba(127,127,127,0.25)"
        fig.add_trace(_line(x, [d["random_p5"]] * 2, "random p5", showlegend=False, line_width=0))
        fig.add_trace(_line(x, [d["random_p95"]] * 2, "random directions p5..p95", fill="tonexty"))
        fig.data[-1].update(fillcolor=band, line_width=0)
        fig.add_trace(_line(x, [d["random_median"]] * 2, "random median", FAMILY_COLORS["random"]))
        fig.data[-1].line.dash = "dash"
    title = (
        f"{_where(d)} channel sensitivity ({d.get('divergence')}, eps={d.get('eps')}, "
        f"{d.get('mode')}): max/min {_fmt(d.get('anisotropy_ratio'))}, "
        f"p95/p5 {_fmt(d.get('p95_p5_ratio'))}"
    )
    return _layout(fig, title, "channel (sorted by sensitivity)", "sensitivity", log_y=True)


def _where(d: dict) -> str:
    """``"Stage 2"`` or ``"Layer layer3.1"``: where a probe cut the network."""
    return f"Stage {d.get('stage')}" if d.get("layer") is None else f"Layer {d['layer']}"


def jacobian_spectrum_figure(result: AnisotropyResult) -> go.Figure:
    """Top-k and bottom-k singular values of the Jacobian of rest() (mean over images)."""
    d = result.to_dict(per_image=False)
    jac = d.get("jacobian") or {}
    top, bot = jac.get("top_singular_values") or [], jac.get("bottom_singular_values") or []
    rank = jac.get("rank") or len(top)
    mode = "markers+lines"
    fig = go.Figure()
    fig.add_trace(
        _line(range(1, len(top) + 1), top, "top", FAMILY_COLORS["jacobian top"], mode=mode)
    )
    bottom_x = [rank - i for i in range(len(bot))]
    fig.add_trace(_line(bottom_x, bot, "bottom", FAMILY_COLORS["jacobian bottom"], mode=mode))
    metric = "Fisher metric" if d.get("divergence") == "kl" else "logits"
    title = f"{_where(d)} Jacobian spectrum ({metric}, per image, mean)"
    return _layout(fig, title, "singular value index", "singular value", log_y=True)


def sensitivity_vs_attribution_figure(report: ProbeReport, method: str) -> go.Figure:
    """One point per channel: perturbation sensitivity against ``method``'s importance."""
    sens = report.anisotropy.channel_sensitivity.tolist()
    attr = report.attribution.channels[method].tolist()
    hover = "channel %{customdata}<br>attribution %{x:.3g}<br>sensitivity %{y:.3g}<extra></extra>"
    points = go.Scatter(
        x=attr,
        y=sens,
        mode="markers",
        customdata=list(range(len(sens))),
        name=method,
        hovertemplate=hover,
    )
    fig = go.Figure(points)
    fig.update_xaxes(type="log")
    spearman = report.spearman.get(method)
    rho = "" if spearman is None else f" (Spearman {spearman:.2f})"
    title = f"Sensitivity vs {method}{rho}"
    return _layout(fig, title, f"{method} |attribution|", "sensitivity", log_y=True)


def perturbation_scatter_figure(result: AnisotropyResult) -> go.Figure:
    """Feature-space L2 size vs output change of every single perturbation (image x
    direction), coloured by direction family."""
    fig = go.Figure()
    for label, t in result.families.items():
        size = result.eps_abs[:, None].expand_as(t).flatten().tolist()
        marker = dict(size=5, opacity=0.6, color=FAMILY_COLORS.get(label))
        points = go.Scatter(
            x=size, y=t.flatten().tolist(), mode="markers", name=label, marker=marker
        )
        fig.add_trace(points)
    title = "Same L2 size, different function change"
    y = "output KL" if result.divergence == "kl" else "output logit change (L2)"
    return _layout(fig, title, "perturbation L2 norm", y, log_y=True)


def probe_figures(report: ProbeReport) -> list[go.Figure]:
    """Every figure of a probe report (what ``fcfd probe --html`` writes): channel
    sensitivity, Jacobian spectrum, one attribution scatter per method and, for the KL
    divergence, every single perturbation."""
    res, figs = report.anisotropy, []
    if res.channel_sensitivity is not None:
        figs.append(channel_sensitivity_figure(res))
    if report.spectrum is not None:
        figs.append(jacobian_spectrum_figure(report.spectrum))
    for method in report.attribution.channels if report.attribution is not None else ():
        figs.append(sensitivity_vs_attribution_figure(report, method))
    if res.divergence == "kl":
        figs.append(perturbation_scatter_figure(res))
    return figs


# ---------------------------------------------------------------- functional gap
def gap_figure(gap: GapResult) -> go.Figure:
    """Appearance (MSE) beside functional (KL) gap per stage, one bar group per student view;
    fitted connectors of a student also shown with its own bridges are hatched."""
    from plotly.subplots import make_subplots

    d = gap.to_dict(curves=False)
    stages = [str(k) for k in d["stages"]]
    titles = ("appearance gap (MSE after the bridge)", "functional gap (KL)")
    fig = make_subplots(rows=1, cols=2, subplot_titles=titles)
    own = {e.get("student") for e in d["students"].values() if e.get("bridges") == "own bridges"}
    for name, e in d["students"].items():
        hatch = "/" if e.get("bridges") == "fitted" and e.get("student") in own else ""
        color = method_color(e.get("method") or name)
        for col, key in ((1, "appearance"), (2, "functional")):
            bar = go.Bar(
                x=[f"stage {k}" for k in stages],
                y=[e[key].get(k) for k in stages],
                name=name,
                legendgroup=name,
                showlegend=col == 1,
                marker=dict(color=color, pattern_shape=hatch),
            )
            fig.add_trace(bar, row=1, col=col)
    fig.update_yaxes(type="log")
    title = f"Appearance vs functional gap ({d.get('bn_label', d.get('bn'))})"
    fig.update_layout(barmode="group", template=TEMPLATE, title=title)
    return fig.update_layout(legend=dict(orientation="h", y=-0.2))


def path_accuracy_figure(gap: GapResult) -> go.Figure:
    """Test top-1 of every path (columns, from all-student to all-teacher) per student view."""
    d = gap.to_dict(curves=False)
    names = list(d["students"])
    paths = list(dict.fromkeys(p for e in d["students"].values() for p in e["path_accuracy"]))
    paths.sort(key=lambda p: (p.count("T"), p))  # SSSS first, TTTT last
    z = [[d["students"][n]["path_accuracy"].get(p) for p in paths] for n in names]
    text = [["" if v is None else f"{v:.1f}" for v in row] for row in z]
    heat = go.Heatmap(
        z=z, x=paths, y=names, zmin=0, zmax=100, colorscale="RdYlGn", text=text,
        texttemplate="%{text}", colorbar=dict(title="top-1 %"),
    )  # fmt: skip
    fig = go.Figure(heat)
    title = "Mixed-path test accuracy (S = student stage, T = teacher stage)"
    fig.update_layout(template=TEMPLATE, title=title, height=160 + 45 * len(names))
    return fig.update_layout(yaxis=dict(autorange="reversed"))


def gap_figures(gap: GapResult) -> list[go.Figure]:
    """Every figure of a functional gap (what ``fcfd gap --html`` writes)."""
    return [gap_figure(gap), path_accuracy_figure(gap)]


# ---------------------------------------------------------------- training curves
def loss_curves_figure(metrics: Sequence[Mapping], title: str = "Training losses") -> go.Figure:
    """Total loss and each component per epoch (metrics.jsonl records), lr on a right axis."""
    epochs = [m.get("epoch") for m in metrics]
    fig = go.Figure(_line(epochs, [m.get("loss") for m in metrics], "loss", "black", line_width=3))
    names = list(dict.fromkeys(k for m in metrics for k in (m.get("losses") or {})))
    for name in names:
        fig.add_trace(_line(epochs, [(m.get("losses") or {}).get(name) for m in metrics], name))
    if any(m.get("lr") is not None for m in metrics):
        lr = _line(epochs, [m.get("lr") for m in metrics], "lr", "#999999", yaxis="y2")
        lr.line.dash = "dot"
        fig.add_trace(lr)
        fig.update_layout(yaxis2=dict(title="lr", overlaying="y", side="right", showgrid=False))
    return _layout(fig, title, "epoch", "loss")


def accuracy_curves_figure(runs: Mapping[str, Sequence[Mapping]]) -> go.Figure:
    """Test (solid) and train (dotted) top-1 per epoch for several runs, coloured by method;
    a detection run (records with ``map``, no ``test_top1``) draws its test mAP instead."""
    fig, kinds = go.Figure(), set()
    for name, metrics in runs.items():
        color, epochs = method_color(name), [m.get("epoch") for m in metrics]
        detection = any("map" in m for m in metrics) and all(
            m.get("test_top1") is None for m in metrics
        )
        kinds.add("mAP" if detection else "top-1")
        test = [m.get("map" if detection else "test_top1") for m in metrics]
        label = f"{name} test{' mAP' if detection else ''}"
        fig.add_trace(_line(epochs, test, label, color, legendgroup=name))
        if any(m.get("train_top1") is not None for m in metrics):
            train = [m.get("train_top1") for m in metrics]
            fig.add_trace(_line(epochs, train, f"{name} train", color, legendgroup=name))
            fig.data[-1].line.dash = "dot"
    if kinds == {"mAP"}:
        return _layout(fig, "Test mAP", "epoch", "mAP (%)")
    if len(kinds) > 1:
        return _layout(fig, "Top-1 accuracy and mAP", "epoch", "top-1 / mAP (%)")
    return _layout(fig, "Top-1 accuracy", "epoch", "top-1 (%)")


# ---------------------------------------------------------------- export
def figures_to_html(figures: Sequence[go.Figure], title: str = "fcfd-viz") -> str:
    """One self-contained HTML page (plotly.js inlined once) holding ``figures`` in order
    (:func:`fcfd_viz.viz.report.html_page`)."""
    from fcfd_viz.viz.report import Section, html_page

    return html_page([Section(figures=list(figures))], title)
