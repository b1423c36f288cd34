"""Probing any layer through hooks: same numbers as the staged probe, analytic answers on
linear maps, transformer blocks, skip connections and shared modules, clear refusals."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from fcfd_viz import models
from fcfd_viz.analysis import Anisotropy, Attribution
from fcfd_viz.analysis.cuts import StageCut, channel_axis, make_cut
from fcfd_viz.analysis.probe.anisotropy import divergence_fn
from fcfd_viz.errors import UserError

# tiny tensors: one thread avoids OpenMP spin-waits when the CPU is shared; a warning that a
# layer cut falls back to recomputing everything before the layer fails a test
pytestmark = [
    pytest.mark.usefixtures("one_thread_module"),
    pytest.mark.filterwarnings("error:layer:UserWarning"),
]

FAMILIES = ("channel_per_image", "random_per_image", "jacobian_top_per_image")
FAMILIES += ("jacobian_bottom_per_image", "jacobian_top_values", "jacobian_bottom_values")


def gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


@pytest.fixture(scope="module")
def resnet8():
    torch.manual_seed(0)
    return models.create("resnet8", num_classes=10).eval()


@pytest.mark.parametrize("mode", ["exact", "fisher"])
@pytest.mark.parametrize("layer", ["stages.1", "stages.1.0"])  # the stage, its last block
def test_hooked_probe_equals_staged_probe(resnet8, mode, layer):
    x = torch.randn(3, 3, 16, 16, generator=gen(1))
    opts = dict(mode=mode, n_random=5, k_jacobian=2, seed=3)
    staged = Anisotropy(resnet8, 1).compute(x, **opts)
    hooked = Anisotropy(resnet8, layer=layer).compute(x, **opts)
    assert hooked.layer == layer and hooked.stage is None and staged.layer is None
    assert hooked.feature_shape == staged.feature_shape == (16, 16, 16)
    for name in FAMILIES:
        torch.testing.assert_close(getattr(hooked, name), getattr(staged, name))


class Pooled(nn.Module):
    """prefix -> ``layer`` (identity) -> mean over the middle axis (if any) -> linear W."""

    def __init__(self, w: torch.Tensor, tokens: bool) -> None:
        super().__init__()
        d = w.shape[1]
        self.prefix = nn.Sequential(nn.Linear(d, d), nn.Tanh())
        self.layer = nn.Identity()
        self.head = nn.Linear(d, w.shape[0])
        self.tokens = tokens
        with torch.no_grad():
            self.head.weight.copy_(w)

    def forward(self, x):  # (N, D) or (N, T, D)
        f = self.layer(self.prefix(x))
        return self.head(f.mean(1) if self.tokens else f)


@pytest.mark.parametrize("mode", ["exact", "fisher"])
@pytest.mark.parametrize("tokens", [0, 5])
def test_linear_map_after_the_layer_gives_column_norms(mode, tokens):
    """logits = W mean_t(f): channel d moves them by eps / sqrt(T) * W[:, d] (T = 1 for a
    vector), and the Jacobian's singular values are those of W / sqrt(T)."""
    w = torch.randn(4, 6, generator=gen(2))
    net = Pooled(w, tokens > 0).eval()
    x = torch.randn(3, *([tokens] if tokens else []), 6, generator=gen(3))
    eps, t = 0.1, max(tokens, 1)
    res = Anisotropy(net, layer="layer").compute(
        x, eps=eps, relative=False, divergence="l2", mode=mode, n_random=3, k_jacobian=2
    )
    expect = eps * w.double().norm(dim=0) / t**0.5
    torch.testing.assert_close(res.channel_sensitivity, expect, rtol=1e-4, atol=1e-7)
    sv = torch.linalg.svdvals(w.double()) / t**0.5
    torch.testing.assert_close(res.top_singular_values, sv[:2], rtol=1e-4, atol=1e-6)
    assert res.feature_shape == ((tokens, 6) if tokens else (6,))


@pytest.fixture(scope="module")
def vit():
    from torchvision.models import VisionTransformer

    torch.manual_seed(0)
    net = VisionTransformer(16, 4, 2, 2, 32, 64, num_classes=10)
    nn.init.normal_(net.heads.head.weight, std=0.5)  # torchvision starts it at zero
    return net.eval()


def test_transformer_block_channels_are_hidden_dims_across_tokens(vit):
    x = torch.randn(3, 3, 16, 16, generator=gen(4))
    layer = "encoder.layers.encoder_layer_0"
    eps = 0.05
    res = Anisotropy(vit, layer=layer).compute(x, eps=eps, divergence="l2", n_random=4)
    assert res.feature_shape == (17, 32) and res.channel_per_image.shape == (3, 32)
    assert res.jacobian_top_values.shape == (3, 5) and bool((res.random_per_image > 0).all())
    # by hand: add eps * ||f|| / sqrt(T) to hidden dimension d of every token
    block = vit.get_submodule(layer)
    with torch.no_grad():
        z0 = vit(x)
        f = {}
        handle = block.register_forward_hook(lambda m, i, o: f.setdefault("f", o))
        vit(x)
        handle.remove()
        norm = f["f"].reshape(3, -1).norm(dim=1)
        for d in (0, 7, 31):
            delta = torch.zeros(3, 17, 32)
            delta[:, :, d] = (eps * norm / 17**0.5)[:, None]
            handle = block.register_forward_hook(lambda m, i, o, delta=delta: o + delta)
            z = vit(x)
            handle.remove()
            by_hand = divergence_fn(z, z0, "l2")
            torch.testing.assert_close(res.channel_per_image[:, d], by_hand, rtol=1e-4, atol=1e-6)
    # second order agrees at a small eps, and captum attributes to the block too
    small = dict(eps=1e-3, directions="channel")
    exact = Anisotropy(vit, layer=layer).compute(x, **small).channel_sensitivity
    fisher = Anisotropy(vit, layer=layer).compute(x, mode="fisher", **small).channel_sensitivity
    torch.testing.assert_close(exact, fisher, rtol=0.02, atol=0.0)
    attr = Attribution(vit, layer=layer).compute(x, "grad_x_act,ablation")
    assert attr.layer == layer and attr.channels["ablation"].shape == (32,)


def test_report_and_figures_of_a_transformer_block(vit):
    from fcfd_viz.analysis import ProbeReport, probe_report
    from fcfd_viz.viz import figures as viz

    x = torch.randn(2, 3, 16, 16, generator=gen(11))
    layer = "encoder.layers.encoder_layer_1"
    opts = dict(mode="fisher", n_random=3, k_jacobian=2)
    rep = probe_report(vit, x, layer=layer, attribution="grad_x_act", maps=2, **opts)
    assert rep.maps is None and rep.attribution.channels["grad_x_act"].shape == (32,)
    d = rep.to_dict(full=False)
    assert d["layer"] == layer and d["stage"] is None and d["feature_shape"] == [17, 32]
    again = ProbeReport.from_dict(rep.to_dict())
    assert again.to_dict() == rep.to_dict() and again.anisotropy.layer == layer
    titles = [f.layout.title.text for f in viz.probe_figures(rep)]
    assert any(t.startswith(f"Layer {layer} channel sensitivity") for t in titles)


class SkipShared(nn.Module):
    """``act`` runs three times: inside ``pre`` and on its own before the layer, then after
    it; ``h`` (from before the layer) is added after the layer (a skip connection)."""

    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(5)
        self.act = nn.Tanh()
        self.pre = nn.Sequential(nn.Linear(6, 8), self.act)
        self.layer = nn.Linear(8, 8)
        self.out = nn.Linear(8, 5)

    def forward(self, x):
        h = self.act(self.pre(x) * 2)
        return self.out(self.act(self.layer(h)) + h)

    def rest(self, g, h):  # what the probe must compute from a replaced layer output g
        return self.out(torch.tanh(g) + h)


def test_skip_connections_and_modules_called_more_than_once():
    net, eps = SkipShared().eval(), 0.3
    x = torch.randn(4, 6, generator=gen(6))
    res = Anisotropy(net, layer="layer").compute(x, eps=eps, relative=False, divergence="l2")
    with torch.no_grad():
        h = torch.tanh(net.pre(x) * 2)
        f = net.layer(h)
        by_hand = torch.stack(
            [divergence_fn(net.rest(f + eps * e, h), net.rest(f, h), "l2") for e in torch.eye(8)]
        ).T
    torch.testing.assert_close(res.channel_per_image, by_hand, rtol=1e-5, atol=1e-6)
    again = Anisotropy(net, layer="layer").compute(x, eps=eps, relative=False, divergence="l2")
    torch.testing.assert_close(again.channel_per_image, by_hand, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("mode", ["exact", "fisher"])
def test_in_place_ops_after_the_layer_change_nothing(mode):
    def net(inplace: bool) -> nn.Module:
        torch.manual_seed(9)
        layers = [nn.Linear(5, 6), nn.Linear(6, 6), nn.ReLU(inplace), nn.Linear(6, 3)]
        return nn.Sequential(*layers).eval()

    x = torch.randn(4, 5, generator=gen(10))
    opts = dict(mode=mode, n_random=4, k_jacobian=2)
    res = Anisotropy(net(True), layer="1").compute(x, **opts)
    expect = Anisotropy(net(False), layer="1").compute(x, **opts)
    for name in FAMILIES:
        torch.testing.assert_close(getattr(res, name), getattr(expect, name))


class SequenceFirst(nn.Module):
    """Mixes tokens in a module that returns (T, N, D), the batch second (as a sequence-first
    attention module does), and reuses that output after the layer: it cannot be replayed."""

    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(7)
        self.mix = nn.Linear(4, 4)
        self.layer = nn.Linear(4, 4)
        self.head = nn.Linear(4, 3)

    def forward(self, x):  # (N, T, 4)
        s = self.mix(x.transpose(0, 1)).transpose(0, 1)  # self.mix's output is (T, N, 4)
        return self.head((torch.tanh(self.layer(s)) + s).mean(1))


def test_an_output_with_the_batch_second_falls_back_to_recomputing():
    net = SequenceFirst().eval()
    x = torch.randn(3, 2, 4, generator=gen(8))
    with pytest.warns(UserWarning, match="recomputing"):
        res = Anisotropy(net, layer="layer").compute(x, n_random=3, k_jacobian=2)
    plain = Anisotropy(net, layer="layer")
    plain.cut.replay = False  # the plain hook: everything before the layer in every pass
    expect = plain.compute(x, n_random=3, k_jacobian=2)
    for name in FAMILIES:
        torch.testing.assert_close(getattr(res, name), getattr(expect, name))


class TwoOutputs(nn.Module):
    def forward(self, x):
        return x, x


class Model(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.body = nn.Sequential(nn.Linear(4, 4), nn.ReLU())
        self.pair = TwoOutputs()
        self.twice = nn.Linear(4, 4)
        self.unused = nn.Linear(4, 4)
        self.head = nn.Linear(4, 2)

    def forward(self, x):
        a, _ = self.pair(self.body(x))
        return self.head(self.twice(self.twice(a)))


@pytest.mark.parametrize(
    "layer, match",
    [
        ("bodi", "close names: body"),
        ("body.2", "close names: body.1, body.0"),
        ("", "dotted path"),
        ("pair", "returns a tuple, not one tensor"),
        ("twice", "runs 2 times"),
        ("unused", "does not run"),
    ],
)
def test_refusals(layer, match):
    with pytest.raises(UserError, match=match):
        Anisotropy(Model(), layer=layer).compute(torch.randn(2, 4), n_random=2)


def test_cut_choice_and_channel_axis(resnet8):
    assert isinstance(make_cut(resnet8, stage=1), StageCut)
    assert make_cut(resnet8, layer="stages.1").label == "stages.1"
    with pytest.raises(UserError, match="exactly one"):
        make_cut(resnet8, 1, "stages.1")
    with pytest.raises(UserError, match="has no stages"):
        Anisotropy(Model(), 1)
    assert [channel_axis(s) for s in [(16, 8, 8), (17, 32), (6,)]] == [0, 1, 0]
