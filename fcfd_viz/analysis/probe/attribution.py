"""Per-channel importance at a cut with captum (:class:`Attribution`), and rank agreement
with sensitivities (:func:`spearman`).

Every method attributes the logit of the predicted (or given) class to the output of
``model.stages[stage]`` (or of the layer named by its dotted path); the attribution becomes
one number per channel (:func:`~fcfd_viz.analysis.cuts.cut.channel_axis`): the mean of
``|attribution|`` over images and positions (or tokens). Methods (captum's; all but
``conductance`` are evaluated through the cut's rest of the network, the layers before the
cut run once: the same numbers at a fraction of the cost, see
:mod:`~fcfd_viz.analysis.probe.cut_attribution`; ``captum=True`` runs captum itself):

- ``grad_x_act``: ``LayerGradientXActivation``;
- ``integrated_gradients``: ``LayerIntegratedGradients`` (zero-image baseline);
- ``conductance``: ``LayerConductance`` (zero-image baseline);
- ``ablation``: ``LayerFeatureAblation`` with one group per channel (the channel is replaced
  by 0 and the drop in the target logit is its attribution).
"""

from __future__ import annotations

import time
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import torch
from torch import Tensor, nn

from fcfd_viz.analysis.base import Result, require, to_list, to_tensor
from fcfd_viz.analysis.cuts import CutAnalysis, channel_axis
from fcfd_viz.analysis.probe import cut_attribution
from fcfd_viz.errors import UserError
from fcfd_viz.models.batchnorm import frozen

DEFAULT_METHODS = ("grad_x_act", "integrated_gradients", "ablation")


def _grad_x_act(model: nn.Module, layer: nn.Module, x: Tensor, target: Tensor, **kw) -> Tensor:
    from captum.attr import LayerGradientXActivation

    return LayerGradientXActivation(model, layer).attribute(x, target=target)


def _integrated_gradients(model, layer, x, target, n_steps: int = 16, **kw) -> Tensor:
    from captum.attr import LayerIntegratedGradients

    return LayerIntegratedGradients(model, layer).attribute(
        x, baselines=torch.zeros_like(x), target=target, n_steps=n_steps
    )


def _conductance(model, layer, x, target, n_steps: int = 16, **kw) -> Tensor:
    from captum.attr import LayerConductance

    return LayerConductance(model, layer).attribute(
        x, baselines=torch.zeros_like(x), target=target, n_steps=n_steps
    )


def _ablation(
    model, layer, x, target, mask: Tensor, perturbations_per_eval: int = 8, **kw
) -> Tensor:
    from captum.attr import LayerFeatureAblation

    n = x.shape[0]

    def target_logit(inp: Tensor) -> Tensor:
        # captum tiles the batch when it ablates several channels per pass; a tensor target
        # is not tiled with it, so select each row's target logit here (tiled the same way)
        t = target.repeat(inp.shape[0] // n)
        return model(inp).gather(1, t[:, None]).squeeze(1)

    return LayerFeatureAblation(target_logit, layer).attribute(
        x, layer_mask=mask, perturbations_per_eval=perturbations_per_eval
    )


METHODS: dict[str, Callable[..., Tensor]] = {
    "grad_x_act": _grad_x_act,
    "integrated_gradients": _integrated_gradients,
    "conductance": _conductance,
    "ablation": _ablation,
}


def spearman(a: Sequence[float] | Tensor, b: Sequence[float] | Tensor) -> float:
    """Spearman rank correlation of ``a`` and ``b`` (flattened, equal lengths):
    ``scipy.stats.spearmanr``, i.e. the Pearson correlation of their ranks, tied values
    sharing their average rank. NaN when either side is constant, has fewer than 2 values or
    holds a NaN (scipy's ``nan_policy="propagate"``)."""
    from scipy import stats  # here: scipy.stats takes ~1 s to import

    a, b = torch.as_tensor(a).flatten(), torch.as_tensor(b).flatten()
    if a.numel() != b.numel():
        raise UserError(f"spearman needs equal lengths, got {a.numel()} and {b.numel()}")
    if a.numel() < 2:
        return float("nan")
    with warnings.catch_warnings():  # a constant side: NaN, said by the docstring
        warnings.simplefilter("ignore", stats.ConstantInputWarning)
        rho = stats.spearmanr(a.detach().double().cpu().numpy(), b.detach().double().cpu().numpy())
    return float(rho.statistic)


@dataclass
class AttributionResult(Result):
    """One (C,) importance vector per method, plus the targets that were attributed."""

    stage: int | None
    channels: dict[str, Tensor]
    target: Tensor  # (N,) class per image
    seconds: dict[str, float] = field(default_factory=dict)
    layer: str | None = None  # the dotted module name of a layer cut

    @property
    def methods(self) -> list[str]:
        return list(self.channels)

    def spearman_with(self, sensitivity: Sequence[float] | Tensor) -> dict[str, float]:
        """Rank correlation of every method's channel importance with ``sensitivity``."""
        return {m: spearman(v, sensitivity) for m, v in self.channels.items()}

    def to_dict(self) -> dict:
        return {
            "stage": self.stage,
            "num_images": int(self.target.numel()),
            "channels": {m: to_list(v) for m, v in self.channels.items()},
            "target": self.target.tolist(),
            "seconds": dict(self.seconds),
            "layer": self.layer,
        }

    @classmethod
    def from_dict(cls, d: dict) -> AttributionResult:
        channels = {m: to_tensor(v, torch.float32) for m, v in d["channels"].items()}
        target = torch.tensor(require(d, "target", "an attribution"), dtype=torch.long)
        stage = None if d["stage"] is None else int(d["stage"])
        return cls(stage, channels, target, dict(d.get("seconds") or {}), d.get("layer"))


def parse_methods(methods: str | Sequence[str]) -> list[str]:
    """``"grad_x_act,ablation"`` or a sequence -> validated list (``"none"`` or empty: [])."""
    items = methods.split(",") if isinstance(methods, str) else list(methods)
    out = list(dict.fromkeys(m.strip().lower() for m in items if m.strip()))
    if out == ["none"]:
        return []
    bad = [m for m in out if m not in METHODS]
    if bad:
        raise UserError(
            f"unknown attribution method {', '.join(bad)}; choose from {', '.join(METHODS)} or none"
        )
    return out


class Attribution(CutAnalysis[AttributionResult]):
    """Captum channel importance of ``model.stages[stage]``'s output, or of the output of the
    layer at dotted path ``layer`` of any network; weights never change.

    Args:
        model: a staged network (with ``stage``), or any network (with ``layer``).
        stage: the stage whose output is attributed (0 .. num_stages-1).
        layer: or the submodule whose output is attributed (e.g. ``"layer3.1"``).
        eval_mode: evaluate in eval mode (the default); module modes are restored afterwards.

    >>> res = Attribution(model, stage=2).compute(images, methods=["grad_x_act"])  # doctest: +SKIP
    >>> res.channels["grad_x_act"].shape                                          # doctest: +SKIP
    torch.Size([32])
    """

    def compute(
        self,
        images: Tensor,
        methods: str | Sequence[str] = DEFAULT_METHODS,
        target: Tensor | int | None = None,
        n_steps: int = 16,
        perturbations_per_eval: int = 8,
        captum: bool = False,
    ) -> AttributionResult:
        """Attribute the target logit to the cut's feature on ``images`` (N, 3, H, W).

        Args:
            methods: names from :data:`METHODS` (a sequence or a comma list).
            target: class per image (or one for all); default the predicted class.
            n_steps: integration steps for integrated gradients / conductance.
            perturbations_per_eval: channels ablated per forward pass (``ablation`` with
                ``captum``).
            captum: run captum on the whole network for every method, instead of evaluating
                grad_x_act, integrated_gradients and ablation at the cut (same numbers, slower).
        """
        methods = parse_methods(methods)
        if not methods:
            raise UserError(f"choose at least one attribution method from {', '.join(METHODS)}")
        model, layer = self.model, self.cut.module
        out: dict[str, Tensor] = {}
        seconds: dict[str, float] = {}
        with frozen(model, self.eval_mode):
            base = None
            if "integrated_gradients" in methods and not captum:  # the zero image's feature
                base = self.cut.features(torch.zeros_like(images))
            with torch.no_grad():
                feat, rest = self.cut.split(images)
                if target is None:
                    target = rest(feat).argmax(1)
            target = torch.as_tensor(target, device=images.device).expand(images.shape[0]).clone()
            axis = 1 + channel_axis(feat.shape[1:])
            c = feat.shape[axis]
            shape = [1] * feat.dim()
            shape[axis] = c  # (1, C, 1, 1) or (1, 1, D): one ablation group per channel
            mask = torch.arange(c, device=feat.device).view(shape)
            for name in methods:
                t0 = time.perf_counter()
                if name == "conductance" or captum:
                    attr = METHODS[name](
                        model,
                        layer,
                        images,
                        target,
                        n_steps=n_steps,
                        mask=mask,
                        perturbations_per_eval=perturbations_per_eval,
                    )
                elif name == "integrated_gradients" and base is not None:
                    attr = cut_attribution.integrated_gradients(rest, feat, base, target, n_steps)
                else:  # grad_x_act, ablation
                    attr = getattr(cut_attribution, name)(rest, feat, target)
                per_channel = attr.detach().abs().double().movedim(axis, -1).reshape(-1, c)
                out[name] = per_channel.mean(0).float()
                seconds[name] = time.perf_counter() - t0
        return AttributionResult(self.stage, out, target.cpu(), seconds, self.layer)
