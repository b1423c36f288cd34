"""Where a student's appearance error lives along the teacher's sensitivity spectrum.

Feature distillation minimises ``l2 = ||e||^2`` for the bridged student feature
``e = bridge(s) - t``, treating every direction alike; the teacher's tail does not. To second
order the functional KL the tail turns ``e`` into is

    ``fisher = 1/2 e^T F e``,  ``F = J^T (diag p - p p^T) J``,

with ``J`` the Jacobian of the teacher's logits at its own feature ``t`` and ``p`` its output
distribution: one forward-mode product ``u = J e`` per image gives
``fisher = 1/2 (sum_k p_k u_k^2 - (sum_k p_k u_k)^2)``. Where the error sits is read off the
singular directions of ``G = A J`` (``A^T A = diag p - p p^T``; :mod:`~fcfd_viz.analysis.probe.jacobian`):
the share of the error energy in the top-``k`` of them, ``||P_k e||^2 / ||e||^2`` for
``k = 1..r``, against ``k / D`` for an isotropic error of the same size. The cheap view ranks
channels by a per-channel sensitivity (the probe's) instead of singular directions.

The expansion needs a tail differentiable at ``t``. Where the tail starts with a ReLU on a
feature with exact zeros (the last stage of the CIFAR ResNets: a post-ReLU feature into a head
that applies ReLU again), an error that pushes a zero up passes and one that pushes it down is
clipped; the JVP counts neither, so ``fisher`` misses that part of the KL however small the
error (resnet8's last stage: fisher/KL 0.44 for a per-channel shift of 1e-3, 0.99-1.00 at the
other stages; tests/analysis/test_spectra.py).

>>> s = error_spectrum(lambda f: teacher.forward_from(f, 2), t_feat, bridged)  # doctest: +SKIP
>>> s.fisher.mean(), s.kl.mean(), s.share[:, :5].mean(0)                      # doctest: +SKIP
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import Tensor
from torch.func import jvp
from torch.nn.attention import SDPBackend, sdpa_kernel

from fcfd_viz.analysis.probe.jacobian import jacobian_svd
from fcfd_viz.errors import UserError

Rest = Callable[[Tensor], Tensor]  # feature (N, ...) -> logits (N, K)


@dataclass
class ErrorSpectrum:
    """Per-image measurements of one student's bridged error at one cut (N images)."""

    l2: Tensor  # (N,) ||e||^2
    fisher: Tensor  # (N,) 1/2 e^T F e: the second-order prediction of ``kl``
    kl: Tensor  # (N,) KL(p(rest(t + e)) || p(rest(t))), measured
    share: Tensor  # (N, k) energy share of e in the top-1..k singular directions of A J
    isotropic: Tensor  # (k,) the share an isotropic error would have: (1..k) / D
    channel_share: Tensor | None  # (N, C) share in the top-1..C channels by sensitivity

    def means(self) -> dict[str, float]:
        """Image means of the scalar measurements."""
        return {k: float(getattr(self, k).double().mean()) for k in ("l2", "fisher", "kl")}


def fisher_quadratic(rest: Rest, t: Tensor, e: Tensor) -> tuple[Tensor, Tensor]:
    """``(1/2 e^T F e, logits at t)`` per image, by one Jacobian-vector product.

    ``t``, ``e``: (N, ...) the teacher's feature and the error. Returns (N,) float64, (N, K).
    """
    with warnings.catch_warnings(), sdpa_kernel(SDPBackend.MATH):
        # forward AD: only the math attention kernel has it; its set-up still calls jit.script
        warnings.filterwarnings("ignore", message=".*torch.jit.script.*", category=FutureWarning)
        out = jvp(rest, (t.detach(),), (e.detach(),))
    z, u = out[0], out[1]  # (N, K) logits and J e
    p = torch.softmax(z.detach().double(), dim=1)
    u = u.detach().double()
    mean_u = (p * u).sum(1)  # (N,)
    return 0.5 * ((p * u * u).sum(1) - mean_u**2), z.detach()


def kl_to(logits: Tensor, ref_logits: Tensor) -> Tensor:
    """Per-row ``KL(softmax(logits) || softmax(ref_logits))`` in float64, clamped at 0."""
    logp = torch.log_softmax(logits.double(), -1)
    ref = torch.log_softmax(ref_logits.double(), -1)
    return (logp.exp() * (logp - ref)).sum(-1).clamp_min(0)


def top_k_share(vectors: Tensor, e: Tensor) -> Tensor:
    """Cumulative share of ``e``'s energy along orthonormal ``vectors``.

    ``vectors``: (N, k, *feature) orthonormal per image (zero rows allowed: they add nothing);
    ``e``: (N, *feature). Returns (N, k): ``||P_j e||^2 / ||e||^2`` for j = 1..k (0 where
    ``e`` is 0).
    """
    n, k = vectors.shape[:2]
    coef = torch.einsum("nkd,nd->nk", vectors.reshape(n, k, -1).double(), e.reshape(n, -1).double())
    energy = e.reshape(n, -1).double().pow(2).sum(1, keepdim=True)  # (N, 1)
    return coef.pow(2).cumsum(1) / energy.clamp_min(1e-300)


def channel_share(e: Tensor, sensitivity: Tensor) -> Tensor:
    """Cumulative share of ``e``'s energy in channels ranked by ``sensitivity`` (most
    sensitive first). ``e``: (N, C, ...), ``sensitivity``: (C,). Returns (N, C)."""
    if sensitivity.numel() != e.shape[1]:
        raise UserError(
            f"the channel ranking has {sensitivity.numel()} channels, the feature {e.shape[1]}"
        )
    per_channel = e.double().pow(2).reshape(e.shape[0], e.shape[1], -1).sum(2)  # (N, C)
    order = torch.argsort(sensitivity.double(), descending=True)
    total = per_channel.sum(1, keepdim=True).clamp_min(1e-300)
    return per_channel[:, order].cumsum(1) / total


def error_spectrum(
    rest: Rest,
    t: Tensor,
    bridged: Tensor,
    k: int | None = None,
    steps: int | None = None,
    sensitivity: Tensor | None = None,
    seed: int = 0,
) -> ErrorSpectrum:
    """The decomposition of ``e = bridged - t`` for one batch.

    Args:
        rest: the teacher after the cut, feature -> logits, per image (eval-mode BN, or the
            caller's BN regime).
        t: (N, ...) the teacher's feature at the cut; ``bridged``: the student's feature in
            the teacher's space (after a bridge), same shape.
        k: how many top singular directions the share runs over (default: all ``r``).
        steps: Lanczos steps (default: ``r``, exact; fewer approximate the top first).
        sensitivity: (C,) per-channel sensitivity for the channel view (e.g. the probe's
            exact or Fisher sensitivity of the same cut); None: no channel view.
        seed: the Lanczos start vector's seed.
    """
    if t.shape != bridged.shape:
        raise UserError(
            f"teacher feature {tuple(t.shape)} and bridged {tuple(bridged.shape)} differ"
        )
    t, e = t.detach(), (bridged - t).detach()
    fisher, z = fisher_quadratic(rest, t, e)
    with torch.no_grad():
        kl = kl_to(rest(bridged.detach()), z)
    dim = t[0].numel()
    svd = jacobian_svd(rest, t, "kl", k=k or dim, steps=steps, seed=seed)
    share = top_k_share(svd.top_vectors, e)  # (N, k)
    isotropic = torch.arange(1, share.shape[1] + 1, dtype=torch.float64) / dim
    return ErrorSpectrum(
        l2=e.reshape(len(e), -1).double().pow(2).sum(1),
        fisher=fisher,
        kl=kl,
        share=share,
        isotropic=isotropic,
        channel_share=None if sensitivity is None else channel_share(e, sensitivity),
    )
