"""A reduced output space for the probe's per-class costs: the top-``m`` classes plus "rest".

The Jacobian Lanczos (:mod:`.jacobian`) and the Fisher mode (:mod:`.fisher`) pay per output
class: the operator ``G`` has rank ``K - 1`` under ``kl``, so the Lanczos needs up to ``K - 1``
steps and the Fisher mode ``K - 1`` backward passes. A 1000-class ImageNet network makes both
slow. :class:`OutputReduction` replaces the ``K`` logits of each image by ``m + 1``:

- ``kl``: the ``m`` most probable classes of the clean image (chosen once, per image) and one
  "rest" class whose logit is ``logsumexp`` of the others. Its softmax is the *merged*
  distribution (the ``m`` probabilities kept, the rest summed), exactly. By the chain rule of
  the KL, ``KL(p'||p) = KL(merged p'||merged p) + p'_rest KL(p'(.|rest)||p(.|rest))``, so the
  reduced KL is a lower bound of the full one (data-processing inequality), and likewise the
  reduced Fisher metric ``F_m <= F`` (``d^T F_m d <= d^T F d`` for every direction). What it
  misses is the reshuffling *inside* the merged classes, weighted by their mass: the clean
  mass outside the top ``m`` is reported (:attr:`neglected_mass`) as the size of that blind
  spot; where it is small the reduction is nearly exact. The "rest" class keeps the mass that
  moves between the kept classes and the others, so even a near-uniform softmax (a random
  network: most mass neglected) keeps most of the signal.
- ``l2``: the ``m`` top logits only, a coordinate projection: ``||P dz|| <= ||dz||``.

With ``m >= K`` the reduction is the identity and every result equals the full computation.
The exact mode's forward-pass KL costs the same for any ``K`` and is never reduced.

``top_classes`` is ``"auto"`` (all classes up to :data:`AUTO_ALL` classes, else the top
:data:`AUTO_TOP`), ``"all"`` / ``None``, or a positive integer.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor

from fcfd_viz.errors import UserError

AUTO_ALL = 100  # "auto": networks with at most this many classes keep them all (exact)
AUTO_TOP = 32  # "auto": larger heads keep their top AUTO_TOP classes (plus "rest" under kl)


def parse_top_classes(value: int | str | None) -> int | str | None:
    """Validate ``top_classes``: ``"auto"``, ``"all"`` / ``None`` (every class) or an int >= 1."""
    if value is None or value == "all":
        return None
    if value == "auto":
        return "auto"
    given = value
    if isinstance(value, str):
        try:
            value = int(value)
        except ValueError:
            value = None
    if not isinstance(value, int) or isinstance(value, bool) or value < 1:
        raise UserError(f"classes must be auto, all or a positive integer, got {given!r}")
    return value


def resolve_top_classes(value: int | str | None, num_classes: int) -> int | None:
    """The number of classes kept for a ``num_classes`` head; None: all (no reduction)."""
    value = parse_top_classes(value)
    if value == "auto":
        value = None if num_classes <= AUTO_ALL else AUTO_TOP
    if value is None or int(value) >= num_classes:
        return None
    return int(value)


class OutputReduction:
    """Logits (N, K) of ``N`` images -> the reduced (N, m + 1) (``kl``) or (N, m) (``l2``).

    Args:
        z0: (N, K) clean logits; the kept classes are each image's ``m`` most probable.
        m: classes kept (``None`` or ``>= K``: all, the identity).
        divergence: ``"kl"`` (top ``m`` plus a logsumexp "rest") or ``"l2"`` (top ``m``).
    """

    def __init__(self, z0: Tensor, m: int | None, divergence: str) -> None:
        n, k = z0.shape
        self.num_classes = k
        self.m = None if m is None or m >= k else int(m)
        self.divergence = divergence
        p = torch.softmax(z0.detach().double(), dim=1)  # (N, K)
        if self.m is None:
            self.top = None
            self.neglected_mass = torch.zeros(n, dtype=torch.float64, device=z0.device)
            return
        self.top = p.topk(self.m, dim=1).indices  # (N, m)
        kept = torch.zeros_like(p, dtype=torch.bool).scatter_(1, self.top, True)
        self.others = ~kept  # (N, K)
        self.neglected_mass = (p * self.others).sum(1)  # (N,) clean mass outside the top m

    def __call__(self, z: Tensor) -> Tensor:
        """(N, K) logits -> reduced logits; identity without a reduction."""
        if self.top is None:
            return z
        kept = z.gather(1, self.top)  # (N, m)
        if self.divergence != "kl":
            return kept
        rest = z.masked_fill(~self.others, float("-inf")).logsumexp(1, keepdim=True)  # (N, 1)
        return torch.cat([kept, rest], dim=1)

    def wrap(self, rest: Callable[[Tensor], Tensor]) -> Callable[[Tensor], Tensor]:
        """``rest`` (features of the same N images -> logits) followed by the reduction."""
        if self.top is None:
            return rest
        return lambda f: self(rest(f))
