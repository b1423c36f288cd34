"""The result of a perturbation-anisotropy probe (:class:`AnisotropyResult`).

Per-image tensors hold the divergence of every (image, direction) pair; the summary
properties average them over images. Jacobian directions are per image: the ``i``-th top
direction of one image is not the ``i``-th of another, so their "sensitivity" averages the
``i``-th largest response over images.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, fields

import torch
from torch import Tensor

from fcfd_viz.analysis.base import Result, finite, require, to_list, to_tensor


@dataclass
class AnisotropyResult(Result):
    """Sensitivities of one probe; per-image tensors are (N, M), summaries average over N."""

    stage: int | None  # None for a layer cut
    eps: float
    relative: bool
    mode: str
    divergence: str
    feature_shape: tuple[int, ...]  # one image's: (C, H, W), (T, D), ...
    feature_norm: Tensor  # (N,) ||f|| per image
    eps_abs: Tensor  # (N,) the perturbation norm actually used per image
    channel_per_image: Tensor | None = None  # (N, C)
    random_per_image: Tensor | None = None  # (N, R)
    jacobian_top_values: Tensor | None = None  # (N, k) singular values, largest first
    jacobian_bottom_values: Tensor | None = None  # (N, k) smallest first
    jacobian_top_per_image: Tensor | None = None  # (N, k) sensitivities along those vectors
    jacobian_bottom_per_image: Tensor | None = None  # (N, k)
    jacobian_steps: int | None = None
    jacobian_rank: int | None = None
    seconds: float = 0.0
    layer: str | None = None  # the dotted module name of a layer cut
    num_classes: int | None = None  # K, the network's output classes
    top_classes: int | None = None  # m classes kept for the Jacobian / Fisher (None: all)
    neglected_mass: Tensor | None = None  # (N,) clean probability outside the top m

    @property
    def num_images(self) -> int:
        return int(self.feature_norm.shape[0])

    @staticmethod
    def _mean(t: Tensor | None) -> Tensor | None:
        return None if t is None else t.double().mean(0)

    @property
    def channel_sensitivity(self) -> Tensor | None:
        """(C,) mean over images of each channel direction's divergence."""
        return self._mean(self.channel_per_image)

    @property
    def random_sensitivity(self) -> Tensor | None:
        return self._mean(self.random_per_image)

    @property
    def jacobian_top_sensitivity(self) -> Tensor | None:
        return self._mean(self.jacobian_top_per_image)

    @property
    def jacobian_bottom_sensitivity(self) -> Tensor | None:
        return self._mean(self.jacobian_bottom_per_image)

    @property
    def top_singular_values(self) -> Tensor | None:
        return self._mean(self.jacobian_top_values)

    @property
    def bottom_singular_values(self) -> Tensor | None:
        return self._mean(self.jacobian_bottom_values)

    @property
    def anisotropy_ratio(self) -> float | None:
        """max / min channel sensitivity (inf when a channel has exactly zero effect)."""
        s = self.channel_sensitivity
        if s is None:
            return None
        lo, hi = float(s.min()), float(s.max())
        return hi / lo if lo > 0 else math.inf

    @property
    def p95_p5_ratio(self) -> float | None:
        """95th / 5th percentile of the channel sensitivities (robust to single outliers)."""
        s = self.channel_sensitivity
        if s is None:
            return None
        lo, hi = (float(torch.quantile(s, q)) for q in (0.05, 0.95))
        return hi / lo if lo > 0 else math.inf

    @property
    def families(self) -> dict[str, Tensor]:
        """The (N, M) per-image divergences of every probed family, by its figure label."""
        fams = {
            "channel": self.channel_per_image,
            "random": self.random_per_image,
            "jacobian top": self.jacobian_top_per_image,
            "jacobian bottom": self.jacobian_bottom_per_image,
        }
        return {k: v for k, v in fams.items() if v is not None}

    def random_quantile(self, q: float) -> float | None:
        s = self.random_sensitivity
        return None if s is None else float(torch.quantile(s, q))

    def to_dict(self, per_image: bool = True) -> dict:
        """JSON-ready (non-finite numbers become None): the summary, and with ``per_image`` (the
        default, what :meth:`from_dict` reads) every tensor field under ``"per_image"``."""
        out = {
            "stage": self.stage,
            "layer": self.layer,
            "eps": self.eps,
            "relative": self.relative,
            "mode": self.mode,
            "divergence": self.divergence,
            "feature_shape": list(self.feature_shape),
            "num_images": self.num_images,
            "feature_norm_mean": float(self.feature_norm.double().mean()),
            "channel_sensitivity": to_list(self.channel_sensitivity),
            "anisotropy_ratio": finite(self.anisotropy_ratio),
            "p95_p5_ratio": finite(self.p95_p5_ratio),
            "random_sensitivity": to_list(self.random_sensitivity),
            "random_p5": self.random_quantile(0.05),
            "random_median": self.random_quantile(0.5),
            "random_p95": self.random_quantile(0.95),
            "jacobian": None
            if self.jacobian_top_values is None
            else {
                "top_singular_values": to_list(self.top_singular_values),
                "bottom_singular_values": to_list(self.bottom_singular_values),
                "top_sensitivity": to_list(self.jacobian_top_sensitivity),
                "bottom_sensitivity": to_list(self.jacobian_bottom_sensitivity),
                "steps": self.jacobian_steps,
                "rank": self.jacobian_rank,
                "per_image": True,
            },
            "seconds": self.seconds,
            "num_classes": self.num_classes,
            "top_classes": self.top_classes,
            "neglected_mass": None
            if self.neglected_mass is None
            else float(self.neglected_mass.double().mean()),
        }
        if per_image:
            out["per_image"] = {
                fl.name: to_list(getattr(self, fl.name))
                for fl in fields(self)
                if isinstance(getattr(self, fl.name), Tensor)
            }
        return out

    @classmethod
    def from_dict(cls, d: dict) -> AnisotropyResult:
        """Rebuild from :meth:`to_dict` (with ``per_image``); tensors come back as float64."""
        tensors = {k: to_tensor(v) for k, v in require(d, "per_image", "a probe").items()}
        jac = d.get("jacobian") or {}
        return cls(
            stage=None if d["stage"] is None else int(d["stage"]),
            eps=float(d["eps"]),
            relative=bool(d["relative"]),
            mode=d["mode"],
            divergence=d["divergence"],
            feature_shape=tuple(d["feature_shape"]),
            **tensors,
            jacobian_steps=jac.get("steps"),
            jacobian_rank=jac.get("rank"),
            seconds=float(d["seconds"]),
            layer=d.get("layer"),
            num_classes=d.get("num_classes"),
            top_classes=d.get("top_classes"),
        )
