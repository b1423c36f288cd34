"""Matrix-free extreme singular directions of the Jacobian of ``rest()`` at a feature.

The operator is ``G = A J`` where ``J`` is the Jacobian of the logits with respect to the
feature (one image at a time) and ``A`` is the square root of the output metric of the
divergence:

- ``l2``: ``A = I``, so ``||G d||`` is the first-order logit change along ``d``;
- ``kl``: ``A = diag(sqrt p) (I - 1 p^T)``, so ``A^T A = diag(p) - p p^T`` and
  ``||G d||^2 = d^T F d`` with ``F`` the output Fisher metric: ``KL ~ eps^2 / 2 ||G d||^2``.

``G`` has rank at most ``r = min(K, D)`` (``K - 1`` under ``kl``, which ignores a constant
shift of the logits), so only ``r`` singular values are non-zero; "bottom" means the smallest
of those ``r``. Directions orthogonal to the row space change the output only at second
order and are not reported.

The batch is handled **per image**: every image gets its own singular vectors and values.
The search is a Lanczos process on the small ``K x K`` operator ``G G^T`` with full
re-orthogonalisation in float64, all images in parallel: each step applies ``G^T`` once (a
reusable ``torch.func.vjp``) and ``G`` once (``torch.func.jvp``), one vector per image, so no
Jacobian is ever formed. The feature-space vectors ``y_j = G^T u_j`` are never combined by
subtraction (which would let rounding leak into the null space of ``G``); the singular triplets
are read off the SVD of ``[y_1 .. y_m] = G^T U``. After ``m = r`` steps ``U`` spans the range of
``G`` and the result is exact up to rounding; fewer steps approximate both ends of the
spectrum (top first). Repeated singular values are found once (a Krylov limitation).
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import Tensor
from torch.func import jvp, vjp
from torch.nn.attention import SDPBackend, sdpa_kernel

Rest = Callable[[Tensor], Tensor]


def vjp_pair(out: tuple) -> tuple[Tensor, Callable]:
    """``torch.func.vjp``'s (output, vjp_fn) without aux (its stub also allows a third)."""
    return out[0], out[1]


def metric_rank(num_classes: int, feature_dim: int, divergence: str) -> int:
    """Number of non-zero singular values ``G`` can have."""
    k = num_classes - 1 if divergence == "kl" else num_classes
    return max(1, min(k, feature_dim))


def metric_factor(
    z0: Tensor, divergence: str
) -> tuple[Callable[[Tensor], Tensor], Callable[[Tensor], Tensor]]:
    """``(A, A^T)`` as functions on (N, K) logit-space vectors for base logits ``z0``."""
    if divergence == "l2":
        return (lambda y: y), (lambda u: u)
    p = torch.softmax(z0.detach(), dim=1)
    sp = p.sqrt()

    def a(y: Tensor) -> Tensor:
        return sp * (y - (p * y).sum(1, keepdim=True))

    def at(u: Tensor) -> Tensor:
        s = sp * u
        return s - p * s.sum(1, keepdim=True)

    return a, at


@dataclass
class JacobianSVD:
    """Extreme singular triplets of ``G`` per image (values descending / ascending)."""

    top_values: Tensor  # (N, k) largest first (zero-padded where an image has < k)
    top_vectors: Tensor  # (N, k, *feature) unit norm
    bottom_values: Tensor  # (N, k) smallest first
    bottom_vectors: Tensor  # (N, k, *feature)
    steps: int  # Lanczos steps taken (max over images)
    rank: int  # the bound r on the number of non-zero singular values


def _orthogonalise(x: Tensor, basis: list[Tensor]) -> Tensor:
    """Remove the components of x (N, K) along the orthonormal rows in ``basis`` (twice)."""
    if not basis:
        return x
    b = torch.stack(basis, dim=1)  # (N, j, K)
    for _ in range(2):
        x = x - torch.einsum("njk,nj->nk", b, torch.einsum("njk,nk->nj", b, x))
    return x


def _pad(t: Tensor, k: int) -> Tensor:
    """Zero-pad the first dimension to ``k`` (an image whose Krylov space ran out early)."""
    if len(t) >= k:
        return t
    return torch.cat([t, t.new_zeros(k - len(t), *t.shape[1:])])


def jacobian_svd(
    rest: Rest,
    f: Tensor,
    divergence: str = "kl",
    k: int = 5,
    steps: int | None = None,
    seed: int = 0,
    tol: float = 1e-5,
) -> JacobianSVD:
    """Top-``k`` and bottom-``k`` singular values/vectors of ``G = A J`` at ``f``, per image.

    Args:
        rest: feature -> logits, acting on each image independently (eval-mode BN).
        f: (N, C, H, W) features.
        divergence: ``"kl"`` (Fisher metric) or ``"l2"`` (plain logit Jacobian).
        k: how many singular values at each end (clamped to the steps taken).
        steps: Lanczos steps; default ``r`` when ``r <= 64`` (exact), else ``max(64, 4k)``.
        seed: seed of the random start vector.
        tol: an image stops early when ``G G^T u`` is, relative to its norm, this close to
            the Krylov space already built (an invariant subspace: nothing new to find).
    """
    f = f.detach()
    n, shape = f.shape[0], f.shape[1:]
    dim = f[0].numel()
    z0, vjp_fn = vjp_pair(vjp(rest, f))
    z0 = z0.detach()
    rank = metric_rank(z0.shape[1], dim, divergence)
    if steps is None:
        steps = rank if rank <= 64 else max(64, 4 * k)
    steps = max(1, min(int(steps), rank))
    a, at = metric_factor(z0, divergence)
    null = torch.softmax(z0.double(), 1).sqrt() if divergence == "kl" else None  # left null vector

    def g(v: Tensor) -> Tensor:  # (N, D) -> (N, K) in float64
        # attention: only the math kernel of scaled_dot_product_attention has forward AD
        with warnings.catch_warnings(), sdpa_kernel(SDPBackend.MATH):
            # torch's forward-AD set-up still calls torch.jit.script
            warnings.filterwarnings(
                "ignore", message=".*torch.jit.script.*", category=FutureWarning
            )
            out = jvp(rest, (f,), (v.to(f).view(n, *shape),))[1]
        return a(out.detach()).double()

    def gt(u: Tensor) -> Tensor:  # (N, K) -> (N, D)
        return vjp_fn(at(u.to(z0)))[0].detach().reshape(n, dim)

    def unit(w: Tensor, basis: list[Tensor]) -> tuple[Tensor, Tensor]:
        if null is not None:
            w = w - (w * null).sum(1, keepdim=True) * null
        before = w.norm(dim=1)
        w = _orthogonalise(w, basis)
        after = w.norm(dim=1)
        return w / after.clamp_min(1e-300)[:, None], after > tol * before.clamp_min(1e-300)

    gen = torch.Generator(device="cpu").manual_seed(seed)
    v0 = torch.randn(n, dim, generator=gen, dtype=f.dtype).to(f.device)
    u, ok = unit(g(v0), [])  # start inside the range of G
    active = ok.clone()
    us: list[Tensor] = []
    ys: list[Tensor] = []
    count = torch.zeros(n, dtype=torch.long, device=f.device)
    for j in range(steps):
        if j > 0:
            u, ok = unit(g(ys[-1]), us)
            active &= ok
        if not bool(active.any()):
            break
        u = torch.where(active[:, None], u, torch.zeros_like(u))
        count += active.long()
        us.append(u)
        ys.append(gt(u))  # rows of inactive images are G^T 0 = 0 and are dropped below
    k = max(1, min(int(k), len(ys)))
    top_v, top_s, bot_v, bot_s = [], [], [], []
    for i in range(n):
        m = int(count[i])
        s = torch.zeros(0, dtype=torch.float64, device=f.device)
        vecs = torch.zeros(0, *shape, dtype=f.dtype, device=f.device)
        if m > 0:  # m == 0: the output ignores f; values and vectors stay zero
            y = torch.stack([ys[j][i] for j in range(m)], dim=1).double()  # (D, m)
            left, s, _ = torch.linalg.svd(y, full_matrices=False)
            vecs = left.T.to(f.dtype).reshape(-1, *shape)  # (m, *feature), s descending
        top_s.append(_pad(s[:k], k))
        top_v.append(_pad(vecs[:k], k))
        bot_s.append(_pad(s.flip(0)[:k], k))
        bot_v.append(_pad(vecs.flip(0)[:k], k))
    return JacobianSVD(
        top_values=torch.stack(top_s).to(f.dtype),
        top_vectors=torch.stack(top_v),
        bottom_values=torch.stack(bot_s).to(f.dtype),
        bottom_vectors=torch.stack(bot_v),
        steps=len(ys),
        rank=rank,
    )
