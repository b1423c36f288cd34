"""Plotly figures: each builds a Figure with data; colours are consistent per method."""

from __future__ import annotations

import json

import plotly.graph_objects as go
import pytest
import torch

from fcfd_viz import models
from fcfd_viz.analysis import AnisotropyResult, ProbeReport, probe_report
from fcfd_viz.viz import app as viz_app
from fcfd_viz.viz import figures as viz

# tiny tensors: one thread avoids OpenMP spin-waits when the CPU is shared
pytestmark = pytest.mark.usefixtures("one_thread_module")


@pytest.fixture(scope="module")
def report(one_thread_module):
    net = models.create("resnet8", num_classes=10).eval()
    x = torch.randn(2, 3, 16, 16, generator=torch.Generator().manual_seed(0))
    options = dict(n_random=10, k_jacobian=2, mode="fisher")
    return probe_report(net, x, 2, attribution="grad_x_act,ablation", maps=2, **options)


@pytest.fixture(scope="module")
def probe_result(report):
    return report.anisotropy


def _has_data(fig):
    assert isinstance(fig, go.Figure)
    assert fig.data and any(len(t.y if t.y is not None else []) > 0 for t in fig.data)
    assert fig.layout.title.text


def test_method_colors():
    assert set(viz.METHOD_COLORS) >= {"ce", "kd", "fitnet", "dkd", "fcfd", "fcfd+dkd", "teacher"}
    assert len(set(viz.METHOD_COLORS.values())) == len(viz.METHOD_COLORS)
    assert viz.method_color("KD") == viz.METHOD_COLORS["kd"]
    assert viz.method_color("fcfd+dkd-seed1") == viz.METHOD_COLORS["fcfd+dkd"]
    assert viz.method_color("fcfd_s0") == viz.METHOD_COLORS["fcfd"]
    assert viz.method_color("kdx") != viz.METHOD_COLORS["kd"]  # a prefix alone is no match
    assert viz.method_color("mystery") not in viz.METHOD_COLORS.values()  # fallback palette


def test_probe_figures(probe_result):
    loaded = AnisotropyResult.from_dict(json.loads(json.dumps(probe_result.to_dict())))
    for source in (probe_result, loaded):
        fig = viz.channel_sensitivity_figure(source)
        _has_data(fig)
        assert len(fig.data[0].y) == 32
        ys = list(fig.data[0].y)
        assert ys == sorted(ys, reverse=True)
        assert any(
            getattr(t, "fill", None) == "tonexty" for t in fig.data
        )  # the random-direction band
        spec = viz.jacobian_spectrum_figure(source)
        _has_data(spec)
        assert len(spec.data[0].y) == 2


def test_scatter_and_attribution_figures(report):
    fig = viz.sensitivity_vs_attribution_figure(report, "ablation")
    _has_data(fig)
    assert f"{report.spearman['ablation']:.2f}" in fig.layout.title.text
    assert list(fig.data[0].y) == report.anisotropy.channel_sensitivity.tolist()
    fig = viz.perturbation_scatter_figure(report.anisotropy)
    _has_data(fig)
    assert [t.name for t in fig.data] == ["channel", "random", "jacobian top", "jacobian bottom"]
    assert len(fig.data[1].x) == 2 * 10  # one point per image x random direction
    assert fig.layout.yaxis.title.text == "output KL"


def test_probe_figures_of_a_report_and_its_json(report):
    again = ProbeReport.from_dict(json.loads(json.dumps(report.to_dict())))
    for source in (report, again):
        figs = viz.probe_figures(source)
        # sensitivity, spectrum, two attribution scatters, the perturbation scatter
        assert len(figs) == 5
        for fig in figs:
            _has_data(fig)
    maps = viz_app.feature_maps_figure(again.maps)
    assert len(maps.data) == 2 * (1 + 4)  # 2 images: the input and 4 channels each


def test_curve_figures():
    metrics = [
        {
            "epoch": e,
            "lr": 0.05 / e,
            "loss": 2.0 / e,
            "losses": {"ce": 1.0 / e, "kd": 1.0 / e},
            "train_top1": 50.0 + e,
            "test_top1": 40.0 + e,
        }
        for e in (1, 2, 3)
    ]
    fig = viz.loss_curves_figure(metrics)
    _has_data(fig)
    assert {t.name for t in fig.data} == {"loss", "ce", "kd", "lr"}
    fig = viz.accuracy_curves_figure({"kd": metrics, "fcfd-s0": metrics[:2]})
    _has_data(fig)
    assert fig.data[0].line.color == viz.METHOD_COLORS["kd"]
    assert fig.data[2].line.color == viz.METHOD_COLORS["fcfd"]
    assert fig.layout.yaxis.title.text == "top-1 (%)"

    # a detection run's records carry mAP, not top-1: its test mAP is drawn
    det = [{"epoch": e, "loss": 1.0, "map": 10.0 * e, "map_50": 20.0 * e} for e in (1, 2)]
    fig = viz.accuracy_curves_figure({"kd": det})
    assert [t.name for t in fig.data] == ["kd test mAP"] and list(fig.data[0].y) == [10.0, 20.0]
    assert fig.layout.yaxis.title.text == "mAP (%)"
    fig = viz.accuracy_curves_figure({"kd": metrics, "fcfd": det})
    assert list(fig.data[-1].y) == [10.0, 20.0] and "mAP" in fig.layout.title.text


def test_figures_to_html(probe_result):
    html = viz.figures_to_html([viz.channel_sensitivity_figure(probe_result)] * 2, title="a<b")
    assert html.count("plotly") > 2 and "<html>" in html and "a&lt;b" in html
