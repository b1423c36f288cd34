"""The probe report: what ``fcfd probe`` prints and the Sensitivity page shows.

A :class:`ProbeReport` holds an anisotropy probe (:class:`~fcfd_viz.analysis.Anisotropy`),
optionally a captum attribution (:class:`~fcfd_viz.analysis.Attribution`) with each
method's Spearman agreement with the channel sensitivities, the Jacobian spectrum and the
feature maps of the most / least sensitive channels for a few images.

:func:`probe_report` computes it in one call (the CLI). The parts can also be computed apart
and joined with :func:`combine_probe`: the app caches each on what it depends on, and the
Jacobian spectrum (:func:`jacobian_spectrum`) and the attribution depend on neither eps nor
the mode, so changing those recomputes neither.

>>> images, _ = probe_images(ckpt, 32)                                        # doctest: +SKIP
>>> report = probe_report(net, images, 2, attribution=["grad_x_act"], maps=3)  # doctest: +SKIP
>>> report.spearman["grad_x_act"], report.to_dict(full=False)["anisotropy_ratio"]  # doctest: +SKIP
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace

import torch
from torch import Tensor, nn

from fcfd_viz.analysis.base import Result, finite, require, to_list, to_tensor
from fcfd_viz.analysis.probe.anisotropy import Anisotropy
from fcfd_viz.analysis.probe.anisotropy_result import AnisotropyResult
from fcfd_viz.analysis.probe.attribution import Attribution, AttributionResult, parse_methods
from fcfd_viz.errors import UserError
from fcfd_viz.models.batchnorm import frozen

MAP_IMAGES = 3  # images shown beside their channels' maps
MAP_CHANNELS = 2  # channels at each end: the most and the least sensitive
JACOBIAN_K = 4  # singular values at each end of the spectrum probed apart
JACOBIAN_IMAGES = 4  # images it is probed apart on (it is per image and costs the most)


@dataclass
class FeatureMaps(Result):
    """A few input images beside the feature maps of chosen channels."""

    images: Tensor  # (n, H, W) the inputs' first colour plane
    maps: Tensor  # (n, K, h, w) the maps of ``channels``
    channels: list[int]
    kinds: list[str]  # "most" / "least" per channel
    sensitivity: list[float]  # per channel

    def to_dict(self) -> dict:
        return {
            "images": to_list(self.images),
            "maps": to_list(self.maps),
            "channels": list(self.channels),
            "kinds": list(self.kinds),
            "sensitivity": list(self.sensitivity),
        }

    @classmethod
    def from_dict(cls, d: dict) -> FeatureMaps:
        return cls(
            to_tensor(d["images"], torch.float32),
            to_tensor(d["maps"], torch.float32),
            [int(c) for c in d["channels"]],
            list(d["kinds"]),
            [float(s) for s in d["sensitivity"]],
        )


def feature_maps(
    model: nn.Module,
    stage: int | None,
    images: Tensor,
    sensitivity: Tensor,
    per_end: int = MAP_CHANNELS,
    layer: str | None = None,
) -> FeatureMaps | None:
    """``images`` beside the maps of their ``per_end`` most and least sensitive channels of the
    cut (a stage, or a ``layer``); None when its feature is not (N, C, H, W) maps."""
    order = sensitivity.argsort(descending=True).tolist()
    chans = order[:per_end] + order[-per_end:]
    with frozen(model):
        feats = Anisotropy(model, stage, layer=layer).features(images)
    if feats.dim() != 4:
        return None
    return FeatureMaps(
        images[:, 0].detach().cpu().float(),
        feats[:, chans].detach().cpu().float(),
        chans,
        ["most"] * per_end + ["least"] * per_end,
        [float(sensitivity[c]) for c in chans],
    )


@dataclass
class ProbeReport(Result):
    """Anisotropy probe, attribution with Spearman, Jacobian spectrum and feature maps.

    ``jacobian`` is set when the spectrum was probed apart (the app: fewer images, no eps);
    otherwise :attr:`spectrum` is ``anisotropy`` itself when it probed the Jacobian family.
    """

    anisotropy: AnisotropyResult
    jacobian: AnisotropyResult | None = None
    attribution: AttributionResult | None = None
    maps: FeatureMaps | None = None
    ckpt: str | None = None
    arch: str | None = None
    dataset: str | None = None

    @property
    def spectrum(self) -> AnisotropyResult | None:
        """The result holding the Jacobian spectrum, or None when it was not probed."""
        for r in (self.jacobian, self.anisotropy):
            if r is not None and r.jacobian_top_values is not None:
                return r
        return None

    @property
    def spearman(self) -> dict[str, float | None]:
        """Each attribution method's rank correlation with the channel sensitivities (None
        where undefined: a constant side or a non-finite sensitivity)."""
        sens = self.anisotropy.channel_sensitivity
        if self.attribution is None or sens is None:
            return {}
        if not bool(torch.isfinite(sens).all()):
            return dict.fromkeys(self.attribution.channels)
        return {m: finite(v) for m, v in self.attribution.spearman_with(sens).items()}

    def to_dict(self, full: bool = True) -> dict:
        """The keys of ``fcfd probe --json``: ``ckpt``, ``arch``, ``dataset``, the probe's
        summary (:meth:`AnisotropyResult.to_dict`), ``attribution`` ({method: per-channel
        importance}) and ``spearman``; ``full`` (the default, what :meth:`from_dict` reads)
        adds every part whole under ``"parts"``."""
        spec, attr = self.spectrum, self.attribution
        out = {"ckpt": self.ckpt, "arch": self.arch, "dataset": self.dataset}
        out.update(self.anisotropy.to_dict(per_image=False))
        out["jacobian"] = None if spec is None else spec.to_dict(per_image=False)["jacobian"]
        out["attribution"] = (
            {} if attr is None else {m: to_list(v) for m, v in attr.channels.items()}
        )
        out["spearman"] = self.spearman
        if full:
            out["parts"] = {
                name: None if part is None else part.to_dict()
                for name, part in (
                    ("anisotropy", self.anisotropy),
                    ("jacobian", self.jacobian),
                    ("attribution", attr),
                    ("maps", self.maps),
                )
            }
        return out

    @classmethod
    def from_dict(cls, d: dict) -> ProbeReport:
        parts = require(d, "parts", "a probe report")

        def part(name: str, kind: type[Result]):
            return None if parts.get(name) is None else kind.from_dict(parts[name])

        return cls(
            AnisotropyResult.from_dict(parts["anisotropy"]),
            part("jacobian", AnisotropyResult),
            part("attribution", AttributionResult),
            part("maps", FeatureMaps),
            d.get("ckpt"),
            d.get("arch"),
            d.get("dataset"),
        )


def test_split(ckpt: dict, dataset: str | None = None, data_dir: str | None = None):
    """``(test dataset, data info)``: the test split of the checkpoint's dataset (or
    ``dataset``) at the checkpoint's image size; a :class:`UserError` when its number of
    classes is not the checkpoint's."""
    from fcfd_viz.data.datasets import DataConfig, build_datasets

    name = dataset or ckpt.get("dataset")
    if name is None:
        raise UserError("the checkpoint names no dataset; pass --dataset")
    shape = list(ckpt.get("input_shape") or [3, 16, 16])
    _, test, info = build_datasets(
        DataConfig(dataset=name, data_dir=data_dir, image_size=shape[-1])
    )
    classes = ckpt["model"]["num_classes"]
    if info.num_classes != classes:
        raise UserError(f"checkpoint has {classes} classes but {info.name} has {info.num_classes}")
    return test, info


def probe_images(ckpt: dict, n: int, dataset: str | None = None, data_dir: str | None = None):
    """``(images, data info)``: ``n`` test images, evenly spread over the test split of the
    checkpoint's dataset (or ``dataset``), at the checkpoint's image size."""
    test, info = test_split(ckpt, dataset, data_dir)
    if n < 1:
        raise UserError(f"the probe needs at least one image, got {n}")
    n = min(n, len(test))
    idx = torch.linspace(0, len(test) - 1, n).round().long().tolist()
    return torch.stack([test[i][0] for i in idx]), info


def probe_report(
    model: nn.Module,
    images: Tensor,
    stage: int | None = None,
    *,
    layer: str | None = None,
    attribution: str | Sequence[str] = (),
    maps: int = 0,
    ckpt: str | None = None,
    dataset: str | None = None,
    **probe_options,
) -> ProbeReport:
    """Probe ``model`` cut after ``stage`` (a staged net) or ``layer`` (any network, by
    dotted module name) on ``images`` and report.

    Args:
        attribution: captum methods to compute and rank-correlate with the channel
            sensitivities (only when the channel family is probed).
        maps: how many of ``images`` to show beside their most / least sensitive channels
            (0: none; needs the channel family).
        ckpt, dataset: where the model and images came from (kept in the report).
        probe_options: :meth:`Anisotropy.compute`'s options (eps, directions, mode, ...).
    """
    methods = parse_methods(attribution)
    res = Anisotropy(model, stage, layer=layer).compute(images, **probe_options)
    sens = res.channel_sensitivity
    attr = None
    if methods and sens is not None:
        attr = Attribution(model, stage, layer=layer).compute(images, methods)
    fmaps = None
    if maps > 0 and sens is not None:
        fmaps = feature_maps(model, stage, images[:maps], sens, layer=layer)
    arch = getattr(model, "arch", None)
    return ProbeReport(res, None, attr, fmaps, ckpt, arch, dataset)


def jacobian_spectrum(
    model: nn.Module,
    stage: int | None,
    images: Tensor,
    k: int = JACOBIAN_K,
    layer: str | None = None,
) -> AnisotropyResult:
    """The Jacobian family alone: its singular values depend on neither eps nor the mode, so
    it is probed in the Fisher mode, which needs no forward pass per direction."""
    return Anisotropy(model, stage, layer=layer).compute(
        images, directions=["jacobian"], mode="fisher", k_jacobian=k
    )


def combine_probe(
    report: ProbeReport | None,
    jacobian: AnisotropyResult | None = None,
    attribution: AttributionResult | None = None,
) -> ProbeReport:
    """Join parts computed apart: ``report`` (the probe of the other families, with its
    maps), a spectrum from :func:`jacobian_spectrum` and an attribution. With only the
    spectrum, it is the report's probe."""
    if report is None:
        if jacobian is None:
            raise UserError("pick at least one direction family")
        return ProbeReport(jacobian)
    if report.anisotropy.channel_sensitivity is None:
        attribution = None  # nothing to rank it against
    return replace(
        report,
        jacobian=jacobian if jacobian is not None else report.jacobian,
        attribution=attribution if attribution is not None else report.attribution,
    )
