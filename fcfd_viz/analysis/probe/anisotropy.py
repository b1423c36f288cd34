"""Perturbation anisotropy of a network cut after a stage or after any named layer.

The cut (:mod:`fcfd_viz.analysis.cuts.cut`) gives the feature ``f`` and ``rest``, the network
after it: for stage ``i`` of a staged net ``f = stages[:i+1](x)`` and ``rest = stages[i+1:] +
head``; for a layer of any ``nn.Module`` (``layer="layer3.1"``) the hooks of
:mod:`fcfd_viz.analysis.cuts.layer`. The sensitivity of a unit direction ``d`` (L2 norm 1 per
image over the whole feature of one image) at size ``eps`` is the mean over images of
``D(rest(f + eps * d), rest(f))`` where ``D`` is ``KL(p(f + eps d) || p(f))`` of the softmax
outputs (``"kl"``) or the Euclidean norm of the logit change (``"l2"``); ``eps`` is relative to
``||f||`` per image by default. Direction families:

- ``channel``: one per channel, uniform over that channel's map (``1/sqrt(H W)``); for a
  token sequence (N, T, D) the channels are the D hidden dimensions, each across all tokens;
- ``random``: Gaussian directions shared by all images (seeded);
- ``jacobian``: per image, the top-k / bottom-k singular vectors of the Jacobian of
  ``rest`` in the divergence's output metric (see :mod:`fcfd_viz.analysis.probe.jacobian`).

``mode="exact"`` evaluates every perturbation with forward passes, many directions stacked
along the batch; ``mode="fisher"`` uses the second-order expansion and needs only a fixed
number of backward passes (see :mod:`fcfd_viz.analysis.probe.fisher`).

>>> res = Anisotropy(model, stage=2).compute(images, eps=0.05, mode="fisher")  # doctest: +SKIP
>>> Anisotropy(vit, layer="encoder.layers.encoder_layer_0").compute(images)  # doctest: +SKIP
>>> res.anisotropy_ratio, res.to_dict()["p95_p5_ratio"]      # doctest: +SKIP

The full report (captum attribution, Spearman, feature maps) is
:func:`fcfd_viz.analysis.reports.probe.probe_report`.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence

import torch
from torch import Tensor

from fcfd_viz.analysis.cuts import CutAnalysis, Rest, channel_axis
from fcfd_viz.analysis.probe.anisotropy_result import AnisotropyResult
from fcfd_viz.analysis.probe.classes import OutputReduction, parse_top_classes, resolve_top_classes
from fcfd_viz.analysis.probe.fisher import fisher_projections, linearised
from fcfd_viz.analysis.probe.jacobian import jacobian_svd
from fcfd_viz.errors import UserError
from fcfd_viz.models.batchnorm import frozen

DIRECTIONS = ("channel", "random", "jacobian")
MODES = ("exact", "fisher")
DIVERGENCES = ("kl", "l2")


# ---------------------------------------------------------------- shared helpers
def parse_directions(directions: str | Sequence[str]) -> tuple[str, ...]:
    """``"channel,random"`` or a sequence -> validated tuple (order kept, no duplicates)."""
    items = directions.split(",") if isinstance(directions, str) else list(directions)
    out = tuple(dict.fromkeys(d.strip().lower() for d in items if d.strip()))
    bad = [d for d in out if d not in DIRECTIONS]
    if bad or not out:
        raise UserError(
            f"unknown direction family {', '.join(bad) or '(none)'}; choose from {', '.join(DIRECTIONS)}"
        )
    return out


def check_options(eps: float, mode: str = "exact", divergence: str = "kl") -> None:
    """Raise :class:`UserError` for eps <= 0 (or not finite) and unknown mode/divergence."""
    if not isinstance(eps, int | float) or not math.isfinite(eps) or eps <= 0:
        raise UserError(f"eps must be a positive number, got {eps!r}")
    if mode not in MODES:
        raise UserError(f"unknown mode {mode!r}; choose exact or fisher")
    if divergence not in DIVERGENCES:
        raise UserError(f"unknown divergence {divergence!r}; choose kl or l2")


def divergence_fn(z: Tensor, z0: Tensor, kind: str) -> Tensor:
    """Per-row divergence of logits z (..., K) from z0 (broadcastable), in float64."""
    z, z0 = z.double(), z0.double()
    if kind == "kl":
        logp, logq = torch.log_softmax(z, -1), torch.log_softmax(z0, -1)
        return (logp.exp() * (logp - logq)).sum(-1).clamp_min(0)
    return (z - z0).norm(dim=-1)


# ---------------------------------------------------------------- the probe
Block = Callable[[int, int], Tensor]  # (start, stop) -> perturbed features (m, N, *feature)


class Anisotropy(CutAnalysis[AnisotropyResult]):
    """Perturbation-anisotropy probe bound to ``(model, stage)`` or ``(model, layer=name)``;
    weights never change.

    Args:
        model: a staged network (with ``stage``), or any network (with ``layer``).
        stage: cut after ``stages[stage]`` (0 .. num_stages-1; the last leaves only the head).
        layer: or cut after the submodule at this dotted path (``"layer3.1"``; hooks).
        eval_mode: run in eval mode (the default; BN uses running statistics and every image
            is independent). With False the modules keep their modes and training-mode BN
            normalises each forward pass with its batch statistics (running statistics are
            left untouched); images then interact, and the Jacobian / Fisher are no longer
            per image, so use it knowingly.
    """

    def rest(self, f: Tensor) -> Tensor:
        """Logits from a feature at the cut (a layer cut: of the batch last probed)."""
        return self.cut.rest(f)

    def features(self, images: Tensor) -> Tensor:
        """The feature at the cut, (N, C, H, W) or (N, T, D) or ... (no gradient)."""
        return self.cut.features(images)

    def compute(
        self,
        images: Tensor,
        eps: float = 0.05,
        relative: bool = True,
        directions: str | Sequence[str] = DIRECTIONS,
        mode: str = "exact",
        divergence: str = "kl",
        n_random: int = 64,
        k_jacobian: int = 5,
        lanczos_steps: int | None = None,
        chunk_size: int | None = None,
        seed: int = 0,
        progress: bool = False,
        top_classes: int | str | None = "auto",
    ) -> AnisotropyResult:
        """Probe the cut on ``images`` (N, 3, H, W), or whatever the model takes.

        Args:
            eps: perturbation size; relative to ``||f||`` per image unless ``relative=False``.
            directions: families to probe (``"channel"``, ``"random"``, ``"jacobian"``).
            mode: ``"exact"`` (forward passes at finite eps) or ``"fisher"`` (second order).
            divergence: ``"kl"`` (softmax KL, perturbed || clean) or ``"l2"`` (logit norm).
            n_random: number of random Gaussian directions (shared by all images).
            k_jacobian: singular directions at each end of the spectrum.
            lanczos_steps: see :func:`~fcfd_viz.analysis.probe.jacobian.jacobian_svd`.
            chunk_size: most feature maps (directions x images) per forward pass. None: 128
                on CPU (batches past a few hundred maps run slower per map there) and 1024
                on a GPU; the Fisher mode's backward passes take 1024 rows.
            seed: seeds the random directions and the Lanczos start.
            progress: show a tqdm bar over forward passes (exact mode).
            top_classes: the output space of the Jacobian and of the Fisher mode (their cost
                grows with the number of classes ``K``): ``"auto"`` (all classes up to 100,
                else the top 32), ``"all"`` / None, or ``m``: each image's ``m`` most probable
                classes plus one merged "rest" class (``kl``; a lower bound of the full
                metric, :mod:`~fcfd_viz.analysis.probe.classes`). The exact mode's KL is
                always over all classes. ``res.neglected_mass`` is the clean mass left out.
        """
        check_options(eps, mode, divergence)
        parse_top_classes(top_classes)
        eps = float(eps)
        families = parse_directions(directions)
        if "random" in families and n_random < 1:
            raise UserError(f"n_random must be >= 1, got {n_random}")
        if "jacobian" in families and k_jacobian < 1:
            raise UserError(f"k_jacobian must be >= 1, got {k_jacobian}")
        if chunk_size is not None and chunk_size < 1:
            raise UserError(f"chunk_size must be >= 1, got {chunk_size}")
        t0 = time.perf_counter()
        with frozen(self.model, self.eval_mode):
            f, rest = self.cut.split(images)
            n, shape = f.shape[0], tuple(f.shape[1:])
            norm = f.reshape(n, -1).norm(dim=1)
            eps_abs = eps * norm if relative else torch.full_like(norm, eps)
            res = AnisotropyResult(
                self.stage, eps, relative, mode, divergence, shape, norm, eps_abs, layer=self.layer
            )
            with torch.no_grad():
                z0 = rest(f)  # (N, K) clean logits: the kept classes
            k = z0.shape[1]
            reduce = OutputReduction(z0, resolve_top_classes(top_classes, k), divergence)
            res.num_classes, res.top_classes = k, reduce.m
            res.neglected_mass = reduce.neglected_mass
            reduced = reduce.wrap(rest)  # feature -> the reduced logits (Jacobian, Fisher)
            rand = None
            if "random" in families:
                gen = torch.Generator(device="cpu").manual_seed(seed)
                rand = torch.randn(n_random, *shape, generator=gen).to(f)
                rand = rand / rand.reshape(n_random, -1).norm(dim=1).view(-1, *[1] * len(shape))
            svd = None
            if "jacobian" in families:
                svd = jacobian_svd(reduced, f, divergence, k_jacobian, lanczos_steps, seed)
                res.jacobian_top_values, res.jacobian_steps = svd.top_values, svd.steps
                res.jacobian_bottom_values, res.jacobian_rank = svd.bottom_values, svd.rank
            channels = "channel" in families
            if mode == "fisher":
                self._fisher(res, f, reduced, channels, rand, svd, chunk_size or 1024)
            else:
                self._exact(res, f, rest, channels, rand, svd, chunk_size, progress)
        res.seconds = time.perf_counter() - t0
        return res

    # ---- fisher: quadratic forms from per-class gradients
    def _fisher(self, res, f, rest: Rest, channels, rand, svd, chunk_size) -> None:
        if channels or rand is not None:
            chan_q, rand_q = fisher_projections(rest, f, res.divergence, rand, channels, chunk_size)
            if chan_q is not None:
                res.channel_per_image = linearised(chan_q, res.eps_abs, res.divergence)
            if rand_q is not None:
                res.random_per_image = linearised(rand_q, res.eps_abs, res.divergence)
        if svd is not None:
            top, bottom = svd.top_values.pow(2), svd.bottom_values.pow(2)
            res.jacobian_top_per_image = linearised(top, res.eps_abs, res.divergence)
            res.jacobian_bottom_per_image = linearised(bottom, res.eps_abs, res.divergence)

    # ---- exact: forward passes with directions stacked along the batch
    def _exact(self, res, f, rest: Rest, channels, rand, svd, chunk_size, progress) -> None:
        n, ones = f.shape[0], [1] * (f.dim() - 1)
        e = res.eps_abs.view(1, n, *ones).to(f)
        jobs: list[tuple[str, int, Block]] = []
        if channels:
            axis = 2 + channel_axis(f.shape[1:])  # of the (m, N, *feature) blocks
            c = f.shape[axis - 1]
            scale = (res.eps_abs / math.sqrt(f[0].numel() // c)).to(f).view(1, n, *ones[1:])

            def channel_block(a: int, b: int) -> Tensor:
                x = f.unsqueeze(0).repeat(b - a, *ones, 1)  # (m, N, *feature)
                xc = x.movedim(axis, 2)  # a view: (m, N, C, *others)
                idx = torch.arange(b - a, device=f.device)
                xc[idx, :, idx + a] += scale.expand(b - a, n, *xc.shape[3:])
                return x

            jobs.append(("channel_per_image", c, channel_block))
        if rand is not None:
            jobs.append(("random_per_image", len(rand), lambda a, b: f[None] + e * rand[a:b, None]))
        if svd is not None:
            top, bot = svd.top_vectors.transpose(0, 1), svd.bottom_vectors.transpose(0, 1)
            jobs.append(("jacobian_top_per_image", len(top), lambda a, b: f[None] + e * top[a:b]))
            jobs.append(
                ("jacobian_bottom_per_image", len(bot), lambda a, b: f[None] + e * bot[a:b])
            )
        if chunk_size is None:
            chunk_size = 1024 if f.device.type == "cuda" else 128
        plans = pass_plan([count for _, count, _ in jobs], max(2, chunk_size // n))
        bar = _bar(sum(len(p) for p in plans), progress, f"probe {self.cut.label}")
        clean: dict[int, Tensor] = {}  # pass size (in blocks of N maps) -> clean logits
        try:
            with torch.no_grad():
                for (name, _, block), plan in zip(jobs, plans):
                    out, a = [], 0
                    for m, ride in plan:
                        x = block(a, a + m)
                        out.append(_pass(rest, f, x, ride, clean, res.divergence))
                        a += m
                        if bar is not None:
                            bar.update(1)
                    setattr(res, name, torch.cat(out).T.contiguous())  # (N, count)
        finally:
            if bar is not None:
                bar.close()


def _pass(rest: Rest, f, x: Tensor, ride: bool, clean: dict, divergence: str) -> Tensor:
    """(m, N) divergences of the perturbed maps x (m, N, *feature) in one forward pass.

    With ``ride`` the clean maps ride along in this pass and their logits are kept for
    every later pass of the same size: the clean and the perturbed logits then always
    come from passes of one size, so batch-size dependent kernels (cuDNN's) cannot put
    rounding noise above a tiny eps's effect.
    """
    m, n = x.shape[:2]
    x = x.reshape(m * n, *x.shape[2:])
    if ride:
        z = rest(torch.cat([f, x]))
        clean[m + 1], z = z[:n], z[n:]
    else:
        z = rest(x)
    return divergence_fn(z.view(m, n, -1), clean[m + ride].unsqueeze(0), divergence)


def pass_plan(counts: Sequence[int], slots: int) -> list[list[tuple[int, bool]]]:
    """Forward passes for jobs of ``counts`` directions, ``slots`` blocks of N maps a pass.

    Each pass is ``(directions, ride)``: with ``ride`` the clean maps take one block, the
    first time a pass of that size runs; later passes of a known size carry directions only.
    """
    known: set[int] = set()
    plans = []
    for count in counts:
        plan, left = [], count
        while left > 0:
            if slots in known and left >= slots:
                m, ride = slots, False
            elif left in known and left < slots:
                m, ride = left, False
            else:
                m, ride = min(left, slots - 1), True
                known.add(m + 1)
            plan.append((m, ride))
            left -= m
        plans.append(plan)
    return plans


def _bar(total: int, enabled: bool, desc: str):
    if not enabled:
        return None
    from tqdm.auto import tqdm

    return tqdm(total=total, desc=desc, unit="pass", leave=False)
