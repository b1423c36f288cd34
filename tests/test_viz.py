"""Plotly figures: each builds a Figure with data; colours are consistent per method."""

from __future__ import annotations

import json

import plotly.graph_objects as go
import pytest
import torch

from fcfd_viz import models, viz
from fcfd_viz.analysis import Anisotropy


@pytest.fixture(scope="module")
def probe_result():
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    net = models.create("resnet8", num_classes=10).eval()
    x = torch.randn(2, 3, 16, 16, generator=torch.Generator().manual_seed(0))
    yield Anisotropy(net, 2).compute(x, n_random=10, k_jacobian=2, mode="fisher")
    torch.set_num_threads(before)


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
    for source in (probe_result, json.loads(json.dumps(probe_result.to_dict()))):
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


def test_scatter_and_attribution_figures():
    fig = viz.sensitivity_vs_attribution_figure([1.0, 2.0, 3.0], [0.1, 0.3, 0.2], "grad_x_act", 0.5)
    _has_data(fig)
    assert "0.50" in fig.layout.title.text
    fig = viz.perturbation_scatter_figure(
        [1, 1, 2, 2], [0.1, 0.2, 0.3, 0.4], ["channel", "random", "channel", "random"]
    )
    _has_data(fig)
    assert [t.name for t in fig.data] == ["channel", "random"]


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


def test_figures_to_html():
    html = viz.figures_to_html([viz.perturbation_scatter_figure([1], [1])] * 2, title="a<b")
    assert html.count("plotly") > 2 and "<html>" in html and "a&lt;b" in html
