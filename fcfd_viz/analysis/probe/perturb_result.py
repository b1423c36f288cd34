"""The result of the perturbation explorer (:class:`PerturbationResult`).

One image, one cut, one size: the clean feature, the four same-norm perturbations
(:data:`DIRECTIONS`), the network's class probabilities without and with each, and the KL
divergence ``KL(p(f) || p(f + delta))`` (clean || perturbed) of each.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import Tensor

from fcfd_viz.analysis.base import Result, finite, require, to_list, to_tensor
from fcfd_viz.analysis.cuts import channel_axis

# the direction of each row of a result, in order (see fcfd_viz.analysis.probe.perturb)
DIRECTIONS = ("most", "least", "random", "jacobian")
TENSORS = ("feature", "deltas", "clean_probs", "probs", "kl", "channel_fisher")


@dataclass
class PerturbationResult(Result):
    """Four same-norm perturbations of one image's feature; rows follow :data:`DIRECTIONS`."""

    stage: int | None  # None for a layer cut
    layer: str | None  # the dotted module name of a layer cut
    eps: float
    relative: bool  # eps relative to ||f|| (True) or absolute
    feature: Tensor  # (*feature) the clean feature, (C, H, W), (T, D), ...
    deltas: Tensor  # (D, *feature) the perturbations, each of L2 norm `size`
    clean_probs: Tensor  # (K,) class probabilities of the clean feature
    probs: Tensor  # (D, K) class probabilities under each perturbation
    kl: Tensor  # (D,) KL(clean || perturbed)
    channels: tuple[int, int]  # (most, least) sensitive channel of this image
    channel_fisher: Tensor  # (C,) d^T F d per channel direction: the ranking
    jacobian_value: float  # top singular value of the Jacobian in the KL metric
    seconds: float = 0.0  # of the call (the forward pass), not of prepare

    @property
    def names(self) -> tuple[str, ...]:
        return DIRECTIONS

    @property
    def labels(self) -> list[str]:
        """One label per direction, for people (``"channel 12 (most sensitive)"``)."""
        most, least = self.channels
        return [
            f"channel {most} (most sensitive)",
            f"channel {least} (least sensitive)",
            "random direction",
            "top Jacobian direction",
        ]

    @property
    def short_labels(self) -> list[str]:
        """Short labels for narrow panels (``"most: ch 12"``)."""
        most, least = self.channels
        return [f"most: ch {most}", f"least: ch {least}", "random", "Jacobian"]

    @property
    def size(self) -> float:
        """The L2 norm of every perturbation: ``eps * ||f||`` (relative) or ``eps``."""
        return self.eps * self.feature_norm if self.relative else self.eps

    @property
    def feature_norm(self) -> float:
        return float(self.feature.double().norm())

    @property
    def perturbed(self) -> Tensor:
        """(D, *feature) the perturbed features ``f + delta``."""
        return self.feature[None] + self.deltas

    @property
    def delta_norms(self) -> Tensor:
        """(D,) the L2 norm of each perturbation (all equal to :attr:`size`)."""
        return self.deltas.double().flatten(1).norm(dim=1)

    def _grid(self, t: Tensor) -> Tensor:
        """(B, *feature) -> (B, C, h, w): channels first, the other axes as one 2-D grid
        ((H, W) of a conv map, (1, T) of a token sequence, (1, 1) of a vector)."""
        shape = tuple(self.feature.shape)
        t = t.movedim(1 + channel_axis(shape), 1)  # (B, C, *others)
        others = t.shape[2:]
        h = 1 if len(others) < 2 else math.prod(others[:-1])
        return t.reshape(t.shape[0], t.shape[1], h, -1)

    @property
    def delta_maps(self) -> Tensor:
        """(D, h, w) where each perturbation lives: its L2 norm over channels per position."""
        return self._grid(self.deltas.double()).pow(2).sum(1).sqrt()

    @property
    def feature_maps(self) -> Tensor:
        """(1 + D, h, w) the channel mean of the clean feature, then of each perturbed one."""
        both = torch.cat([self.feature[None], self.perturbed]).double()
        return self._grid(both).mean(1)

    @property
    def clean_class(self) -> int:
        return int(self.clean_probs.argmax())

    @property
    def predictions(self) -> list[int]:
        """The predicted class under each perturbation."""
        return self.probs.argmax(-1).tolist()

    def to_dict(self) -> dict:
        """JSON-ready and lossless (tensors as nested lists; :meth:`from_dict` reads it)."""
        out = {
            "stage": self.stage,
            "layer": self.layer,
            "eps": self.eps,
            "relative": self.relative,
            "directions": list(DIRECTIONS),
            "channels": list(self.channels),
            "jacobian_value": finite(self.jacobian_value),
            "seconds": self.seconds,
        }
        out.update({name: to_list(getattr(self, name)) for name in TENSORS})
        return out

    @classmethod
    def from_dict(cls, d: dict) -> PerturbationResult:
        """Rebuild from :meth:`to_dict`; tensors come back as float64."""
        tensors = {name: to_tensor(require(d, name, "a perturbation")) for name in TENSORS}
        most, least = d["channels"]
        value = d.get("jacobian_value")
        return cls(
            stage=None if d["stage"] is None else int(d["stage"]),
            layer=d.get("layer"),
            eps=float(d["eps"]),
            relative=bool(d["relative"]),
            channels=(int(most), int(least)),
            jacobian_value=float("nan") if value is None else float(value),
            seconds=float(d.get("seconds", 0.0)),
            **tensors,
        )
