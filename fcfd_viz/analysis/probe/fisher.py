"""Second-order ("fisher") sensitivities from a fixed number of backward passes.

Around ``f`` the output change along a unit direction ``d`` scaled by ``eps`` is, to leading
order, ``KL ~ eps^2 / 2 * d^T F d`` with ``F = J^T (diag p - p p^T) J`` (the output Fisher
metric), and ``||logit change|| ~ eps * ||J d||``. Both are ``||B d||`` for a small matrix
``B`` of ``r`` rows per image: the gradients of ``r`` fixed combinations of the logits.

- ``l2``: ``B = J``, the ``K`` logit gradients;
- ``kl``: ``B = Q^T A J`` where ``A = diag(sqrt p)(I - 1 p^T)`` and ``Q`` is an orthonormal
  basis of the ``K - 1`` dimensional complement of ``sqrt p`` (the Fisher metric ignores a
  constant logit shift), i.e. ``K - 1`` sqrt(p)-weighted, centred logit gradients.

Each row is one vector-Jacobian product; all rows of a chunk come from one batched backward
pass (``torch.vmap`` over a single ``torch.func.vjp``), and rows are reduced to direction
projections at once, so memory stays at one chunk. The cost depends on ``K``, never on the
number of directions.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
from torch import Tensor
from torch.func import vjp, vmap
from torch.nn.attention import SDPBackend, sdpa_kernel

from fcfd_viz.analysis.cuts import channel_axis
from fcfd_viz.analysis.probe.jacobian import metric_factor, vjp_pair


def _cotangents(z0: Tensor, divergence: str) -> Tensor:
    """(r, N, K) logit-space cotangents whose vjps are the rows of ``B``."""
    n, k = z0.shape
    if divergence == "l2":
        return torch.eye(k, dtype=z0.dtype, device=z0.device)[:, None, :].expand(k, n, k)
    sp = torch.softmax(z0.double(), dim=1).sqrt()
    proj = torch.eye(k, dtype=sp.dtype, device=sp.device) - sp[:, :, None] * sp[:, None, :]
    _, vecs = torch.linalg.eigh(proj)  # eigenvalues ~ (0, 1, ..., 1): drop the sqrt(p) one
    q = vecs[:, :, 1:].to(z0.dtype)  # (N, K, K-1)
    _, at = metric_factor(z0, divergence)
    rows = [at(q[:, :, j]) for j in range(k - 1)]
    return torch.stack(rows, dim=0)


def fisher_projections(
    rest: Callable[[Tensor], Tensor],
    f: Tensor,
    divergence: str,
    directions: Tensor | None = None,
    channels: bool = True,
    chunk_size: int = 1024,
) -> tuple[Tensor | None, Tensor | None]:
    """Quadratic forms ``||B d||^2`` per image for channel directions and/or given ones.

    Args:
        rest: feature -> logits (per-image).
        f: (N, C, H, W) features, or (N, T, D), ... (channels: :func:`~fcfd_viz.analysis.cuts.cut.channel_axis`).
        divergence: ``"kl"`` or ``"l2"``.
        directions: optional (M, *feature) unit directions shared by all images.
        channels: also return the forms of the C channel directions (uniform over the rest).
        chunk_size: most rows (cotangents x images) per backward pass.

    Returns:
        ``(channel_q (N, C) or None, direction_q (N, M) or None)``.
    """
    f = f.detach()
    n, axis = f.shape[0], 2 + channel_axis(f.shape[1:])  # channel axis of the rows below
    c = f.shape[axis - 1]
    spread = f[0].numel() // c  # positions (or tokens) one channel direction covers
    with sdpa_kernel(SDPBackend.MATH):  # attention: a backward that vmap can batch
        z0, vjp_fn = vjp_pair(vjp(rest, f))
    cot = _cotangents(z0.detach(), divergence)  # (r, N, K)
    per_chunk = max(1, chunk_size // n)
    chan_q = torch.zeros(n, c, dtype=torch.float64, device=f.device) if channels else None
    dir_q = None
    if directions is not None:
        dirs = directions.reshape(directions.shape[0], -1).to(f)
        dir_q = torch.zeros(n, dirs.shape[0], dtype=torch.float64, device=f.device)
    batched = vmap(lambda u: vjp_fn(u)[0])
    for start in range(0, cot.shape[0], per_chunk):
        rows = batched(cot[start : start + per_chunk]).detach()  # (r_chunk, N, *feature)
        if chan_q is not None:
            per_channel = rows.movedim(axis, 2).reshape(rows.shape[0], n, c, spread)
            proj = per_channel.sum(-1) / math.sqrt(spread)  # (r_chunk, N, C)
            chan_q += proj.double().pow(2).sum(0)
        if dir_q is not None:
            proj = torch.einsum("rnd,md->rnm", rows.reshape(rows.shape[0], n, -1), dirs)
            dir_q += proj.double().pow(2).sum(0)
    return chan_q, dir_q


def fisher_rows(rest: Callable[[Tensor], Tensor], f: Tensor, divergence: str) -> Tensor:
    """The rows of ``B`` themselves, (r, N, *feature), from one batched backward pass:
    ``||B d||^2`` is the quadratic form of every direction ``d``, and ``B``'s right singular
    vectors and values are those of the Jacobian in the divergence's metric
    (:func:`~fcfd_viz.analysis.probe.jacobian.jacobian_svd`). Holds ``r`` copies of the feature:
    for small batches and few classes."""
    f = f.detach()
    with sdpa_kernel(SDPBackend.MATH):  # attention: a backward that vmap can batch
        z0, vjp_fn = vjp_pair(vjp(rest, f))
    return vmap(lambda u: vjp_fn(u)[0])(_cotangents(z0.detach(), divergence)).detach()


def linearised(q: Tensor, eps_abs: Tensor, divergence: str) -> Tensor:
    """Leading-order divergence from quadratic forms q (N, M) at per-image sizes eps_abs (N,)."""
    e = eps_abs.double()[:, None]
    if divergence == "kl":
        return 0.5 * e.pow(2) * q.double()
    return e * q.double().clamp_min(0).sqrt()
