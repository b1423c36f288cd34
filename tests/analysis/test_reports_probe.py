"""The probe report: one call (the CLI) or parts joined by ``combine_probe`` (the app), its
Spearman and feature maps, the round trip of its dict, and test images for a checkpoint."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
import torch

from fcfd_viz import models
from fcfd_viz.analysis import (
    Anisotropy,
    Attribution,
    ProbeReport,
    combine_probe,
    probe_images,
    probe_report,
)
from fcfd_viz.analysis.reports.probe import feature_maps, jacobian_spectrum
from fcfd_viz.errors import UserError

pytestmark = pytest.mark.usefixtures("one_thread_module")

# the keys of `fcfd probe --json`, as docs/analysis.md lists them (section "Probe and gap")
CLI_KEYS = {
    "stage", "eps", "relative", "mode", "divergence", "feature_shape", "num_images",
    "feature_norm_mean", "channel_sensitivity", "anisotropy_ratio", "p95_p5_ratio",
    "random_sensitivity", "random_p5", "random_median", "random_p95", "jacobian", "seconds",
    "ckpt", "arch", "dataset", "attribution", "spearman", "layer", "num_classes", "top_classes",
    "neglected_mass",
}  # fmt: skip
OPTIONS = dict(eps=0.1, mode="fisher", n_random=6, k_jacobian=2)


def test_docs_list_the_cli_keys():
    """docs/analysis.md's paragraph on ``fcfd probe --json`` names every key, no other."""
    doc = (Path(__file__).resolve().parents[2] / "docs" / "analysis.md").read_text()
    section = doc.split("## Probe and gap", 1)[1].split("## ", 1)[0]
    para = next(p for p in section.split("\n\n") if p.startswith("`fcfd probe CKPT"))
    named = set(re.findall(r"`(\w+)`", para.split("prints, with", 1)[1]))
    assert CLI_KEYS <= named, sorted(CLI_KEYS - named)


@pytest.fixture(scope="module")
def net():
    torch.manual_seed(0)
    return models.create("resnet8", num_classes=10).eval()


@pytest.fixture(scope="module")
def images():
    return torch.randn(4, 3, 16, 16, generator=torch.Generator().manual_seed(2))


@pytest.fixture(scope="module")
def report(net, images):
    return probe_report(
        net, images, 2, attribution="grad_x_act,ablation", maps=2, ckpt="x.pt", **OPTIONS
    )


def test_one_call_report(report, net, images):
    sens = report.anisotropy.channel_sensitivity
    assert report.spectrum is report.anisotropy and report.jacobian is None
    attr = report.attribution
    assert attr.methods == ["grad_x_act", "ablation"]
    expect = {m: pytest.approx(v) for m, v in attr.spearman_with(sens).items()}
    assert report.spearman == expect and all(-1 <= v <= 1 for v in report.spearman.values())
    maps = report.maps  # the 2 most and 2 least sensitive channels, for 2 images
    order = sens.argsort(descending=True).tolist()
    assert maps.channels == order[:2] + order[-2:] and maps.kinds == ["most"] * 2 + ["least"] * 2
    assert maps.sensitivity == pytest.approx([float(sens[c]) for c in maps.channels])
    feats = Anisotropy(net, 2).features(images[:2])
    assert torch.equal(maps.maps, feats[:, maps.channels]) and maps.images.shape == (2, 16, 16)
    d = report.to_dict(full=False)
    assert set(d) == CLI_KEYS and d["arch"] == "resnet8" and d["ckpt"] == "x.pt"
    assert d["attribution"]["ablation"] == attr.channels["ablation"].tolist()
    assert d["jacobian"] == report.anisotropy.to_dict()["jacobian"]


def test_round_trip(report):
    d = json.loads(json.dumps(report.to_dict(), allow_nan=False))
    again = ProbeReport.from_dict(d)
    assert again.to_dict() == report.to_dict()
    assert torch.is_tensor(again.maps.maps) and torch.equal(again.maps.maps, report.maps.maps)
    assert torch.equal(
        again.attribution.channels["grad_x_act"], report.attribution.channels["grad_x_act"]
    )
    with pytest.raises(UserError, match="summary"):
        ProbeReport.from_dict(report.to_dict(full=False))


def test_parts_computed_apart_combine_like_one_call(report, net, images):
    # the app: the spectrum on fewer images and the attribution, each cached on its own
    others = probe_report(net, images, 2, maps=2, directions="channel,random", **OPTIONS)
    spectrum = jacobian_spectrum(net, 2, images[:2], k=2)
    attr = Attribution(net, 2).compute(images, ["ablation"])
    joined = combine_probe(others, spectrum, attr)
    assert joined.spectrum is spectrum and joined.anisotropy is others.anisotropy
    torch.testing.assert_close(
        joined.anisotropy.channel_sensitivity, report.anisotropy.channel_sensitivity
    )
    assert joined.spearman["ablation"] == pytest.approx(report.spearman["ablation"])
    d = joined.to_dict(full=False)
    assert set(d) == CLI_KEYS and d["jacobian"] == spectrum.to_dict()["jacobian"]
    assert spectrum.num_images == 2 and spectrum.channel_per_image is None
    again = ProbeReport.from_dict(json.loads(json.dumps(joined.to_dict())))
    assert again.to_dict() == joined.to_dict() and again.jacobian is not None
    # only the spectrum: it is the report's probe; no attribution without channels
    alone = combine_probe(None, spectrum, attr)
    assert alone.anisotropy is spectrum and alone.attribution is None and alone.spearman == {}
    random_only = probe_report(net, images, 2, directions="random", **OPTIONS)
    assert combine_probe(random_only, None, attr).attribution is None
    with pytest.raises(UserError, match="direction family"):
        combine_probe(None)


def test_no_attribution_or_maps_without_the_channel_family(net, images):
    rep = probe_report(net, images, 1, attribution="grad_x_act", maps=2, directions="random")
    assert rep.attribution is None and rep.maps is None and rep.spearman == {}
    d = rep.to_dict(full=False)
    assert d["attribution"] == {} and d["spearman"] == {} and d["jacobian"] is None
    with pytest.raises(UserError, match="lime"):
        probe_report(net, images, 1, attribution="lime")


def test_feature_maps_restores_modes(net, images):
    net.train()
    try:
        maps = feature_maps(net, 1, images[:1], torch.arange(16.0))
        assert maps.channels == [15, 14, 1, 0] and net.training
    finally:
        net.eval()


def test_probe_images_for_a_checkpoint():
    ckpt = {"dataset": "digits", "input_shape": [3, 16, 16], "model": {"num_classes": 10}}
    images, info = probe_images(ckpt, 5)
    assert images.shape == (5, 3, 16, 16) and info.name == "digits"
    first, _ = probe_images(ckpt, 1)
    assert torch.equal(first[0], images[0])  # evenly spread, from the first test image on
    with pytest.raises(UserError, match="--dataset"):
        probe_images({"model": {"num_classes": 10}}, 2)
    with pytest.raises(UserError, match="100 classes but digits has 10"):
        probe_images({**ckpt, "model": {"num_classes": 100}}, 2)
    with pytest.raises(UserError, match="at least one image"):
        probe_images(ckpt, 0)
