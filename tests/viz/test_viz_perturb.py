"""The perturbation explorer's figures: what each panel holds, read back from the Figure."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from fcfd_viz.analysis.probe.perturb import PerturbationExplorer
from fcfd_viz.models.base import Head, StagedNet
from fcfd_viz.viz import perturb as viz_perturb

pytestmark = pytest.mark.usefixtures("one_thread_module")


def explorer(classes: int = 5, seed: int = 0) -> PerturbationExplorer:
    torch.manual_seed(seed)
    stages = [nn.Identity(), nn.Sequential(nn.Conv2d(4, 6, 3, padding=1), nn.Tanh())]
    net = StagedNet(stages, Head(6, classes, relu=False), arch="toy", num_classes=classes)
    image = torch.randn(4, 3, 3, generator=torch.Generator().manual_seed(seed))
    return PerturbationExplorer(net.eval(), stage=0).prepare(image)


@pytest.fixture(scope="module")
def prepared():
    return explorer()


def test_probabilities_side_by_side_with_the_clean_prediction(prepared):
    res = prepared(0.5)
    fig = viz_perturb.probabilities_figure(res, class_names=list("abcde"))
    assert [t.type for t in fig.data] == ["bar"] * 5
    clean = np.asarray(res.clean_probs)
    np.testing.assert_allclose(fig.data[0].y, clean)
    np.testing.assert_allclose(fig.data[4].y, np.asarray(res.probs[3]))
    assert list(fig.data[0].x) == list("abcde")
    outlined = [w > 0 for w in fig.data[2].marker.line.width]
    assert outlined == [c == res.clean_class for c in range(5)]
    titles = [a.text for a in fig.layout.annotations]
    assert titles[0] == f"unperturbed<br>class {'abcde'[res.clean_class]}"
    for j, pred in enumerate(res.predictions):  # a changed top-1 class is named
        assert (f", now {'abcde'[pred]}" in titles[j + 1]) == (pred != res.clean_class)
    assert fig.layout.yaxis.range == (0, 1)
    log = viz_perturb.probabilities_figure(res, log_y=True)
    assert log.layout.yaxis.type == "log" and log.layout.yaxis2.matches == "y"


def test_many_classes_show_the_most_probable_ones(prepared):
    res = explorer(classes=30)(0.3)
    fig = viz_perturb.probabilities_figure(res, top=6)
    shown = [int(x) for x in fig.data[0].x]
    best = np.maximum(np.asarray(res.clean_probs), np.asarray(res.probs).max(0))
    assert shown == sorted(np.argsort(-best)[:6].tolist())
    assert "the 6 most probable of 30 classes" in fig.layout.title.text


def test_maps_share_a_colour_scale_per_row_and_kl_bars(prepared):
    res = prepared(0.4)
    fig = viz_perturb.perturbation_maps_figure(res)
    heat = [t for t in fig.data if t.type == "heatmap"]
    assert len(heat) == 9  # four perturbations, then the clean and four perturbed features
    assert {(t.zmin, t.zmax) for t in heat[:4]} == {(0.0, float(res.delta_maps.max()))}
    assert len({(t.zmin, t.zmax) for t in heat[4:]}) == 1
    np.testing.assert_allclose(heat[0].z, np.asarray(res.delta_maps[0])[::-1])
    kl = viz_perturb.kl_figure(res)
    np.testing.assert_allclose(kl.data[0].y, np.asarray(res.kl))
    assert kl.layout.yaxis.type == "log" and "most / least channel" in kl.layout.title.text
    assert "no change" in viz_perturb.kl_figure(prepared(0.0)).layout.title.text


def test_thumbnail_scales_any_normalisation_to_unit_range():
    img = viz_perturb.thumbnail(torch.linspace(-3, 5, 3 * 4 * 5).view(3, 4, 5))
    assert img.shape == (4, 5, 3) and img.min() == 0 and img.max() == 1
    grey = viz_perturb.thumbnail(torch.ones(1, 2, 2))
    assert grey.shape == (2, 2, 3) and float(grey.max()) == 0
