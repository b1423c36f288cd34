"""Perturbation explorer: one image, one cut, four same-norm perturbations, side by side.

The paper's opening argument made touchable: push one image's feature at a cut by the same
L2 norm along four directions and compare what the network's output does.

- ``most`` / ``least``: the most / least sensitive channel direction (uniform over that
  channel's map, ``1/sqrt(H W)``; for a token sequence one hidden dimension across all
  tokens), as :class:`~fcfd_viz.analysis.Anisotropy`'s channel family defines them.
  Channels are ranked **for this image** by their Fisher quadratic form ``d^T F d`` (the
  probe's ``mode="fisher"`` sensitivity, :func:`~fcfd_viz.analysis.probe.fisher.fisher_projections`):
  ``KL ~ eps^2 / 2 * d^T F d`` to leading order, so the ranking does not depend on eps;
- ``random``: a seeded Gaussian direction (the probe's first random direction for ``seed``);
- ``jacobian``: the top right-singular vector of the Jacobian of the rest of the network in
  the KL (Fisher) metric (:func:`top_direction`), the direction whose first-order KL is the
  largest of all unit directions, signed so that the clean prediction's probability falls
  along it (the SVD's sign is arbitrary).

Every direction has unit L2 norm over the whole feature and is scaled to the same size:
``||delta|| = eps * ||f||`` (``relative=True``, the probe's convention) or ``eps``.

:meth:`PerturbationExplorer.prepare` does everything that does not depend on eps (the
feature, the clean output, the channel ranking and the four directions);
:meth:`PerturbationExplorer.__call__` then costs one forward pass of the rest of the
network on the four perturbed features, so a slider over eps redraws at once.

>>> explorer = PerturbationExplorer(model, stage=2).prepare(image)  # doctest: +SKIP
>>> res = explorer(0.1)                                              # doctest: +SKIP
>>> dict(zip(res.names, res.kl.tolist()))                            # doctest: +SKIP
"""

from __future__ import annotations

import math
import time

import torch
from torch import Tensor, nn

from fcfd_viz.analysis.cuts import CutAnalysis, Rest, channel_axis
from fcfd_viz.analysis.probe.anisotropy import divergence_fn
from fcfd_viz.analysis.probe.fisher import fisher_projections, fisher_rows
from fcfd_viz.analysis.probe.jacobian import jacobian_svd
from fcfd_viz.analysis.probe.perturb_result import DIRECTIONS, PerturbationResult
from fcfd_viz.errors import UserError
from fcfd_viz.models.batchnorm import frozen
from fcfd_viz.training.runtime import full_precision

__all__ = [
    "DIRECTIONS",
    "PerturbationExplorer",
    "PerturbationResult",
    "channel_direction",
    "top_direction",
]
DENSE_LIMIT = 2**24  # (classes - 1) x feature size up to which the top direction is dense


def channel_direction(shape: tuple[int, ...], channel: int) -> Tensor:
    """The unit direction (``shape``: one image's feature) that raises ``channel`` evenly
    over its map (or, for a token sequence (T, D), hidden dimension ``channel`` on every
    token) and leaves the other channels alone."""
    axis = channel_axis(shape)
    d = torch.zeros(shape)
    spread = d.numel() // shape[axis]
    d.movedim(axis, 0)[channel] = 1 / math.sqrt(spread)
    return d


def top_direction(rest: Rest, f: Tensor, classes: int, seed: int = 0) -> tuple[Tensor, float]:
    """``(v (*feature), sigma)``: the top right-singular vector (unit norm, either sign) and
    value of the Jacobian of ``rest`` at one image's feature ``f`` (1, *feature) in the KL
    metric. With few classes (``(classes - 1) * f.numel() <= DENSE_LIMIT``) it is the top
    of an SVD of the Fisher rows (:func:`~fcfd_viz.analysis.probe.fisher.fisher_rows`: one
    batched backward pass, exact); otherwise Lanczos
    (:func:`~fcfd_viz.analysis.probe.jacobian.jacobian_svd`, as the probe's Jacobian family)."""
    if (classes - 1) * f.numel() <= DENSE_LIMIT:
        rows = fisher_rows(rest, f, "kl")  # (K-1, 1, *feature)
        _, s, vh = torch.linalg.svd(rows.flatten(1).double(), full_matrices=False)
        return vh[0].to(f).view(f.shape[1:]), float(s[0])
    svd = jacobian_svd(rest, f, "kl", k=1, seed=seed)
    return svd.top_vectors[0, 0].to(f), float(svd.top_values[0, 0])


def _against_prediction(rest: Rest, f: Tensor, v: Tensor) -> Tensor:
    """``v`` (*feature) or ``-v``: the sign along which the log-probability of the clean
    prediction falls to first order (one backward pass). A singular vector's sign is
    arbitrary and the KL is even in it only to leading order; at a finite eps the step
    towards an even more confident prediction moves a saturated softmax far less."""
    x = f.detach().clone().requires_grad_(True)  # (1, *feature)
    with torch.enable_grad():
        logp = torch.log_softmax(rest(x), dim=-1)[0]  # (K,)
        (grad,) = torch.autograd.grad(logp[int(logp.argmax())], x)
    return -v if float((grad[0] * v).sum()) > 0 else v


class PerturbationExplorer(CutAnalysis[PerturbationResult]):
    """Same-norm perturbations of one image's feature at a cut; see the module docstring.

    Args:
        model: a staged network (with ``stage``), or any network (with ``layer``).
        stage: cut after ``stages[stage]``.
        layer: or cut after the submodule at this dotted path (``"layer3.1"``).
        eval_mode: run in eval mode (the default; BN on running statistics).
        seed: seeds the random direction and the Lanczos start of the Jacobian SVD.
    """

    def __init__(
        self,
        model: nn.Module,
        stage: int | None = None,
        eval_mode: bool = True,
        *,
        layer: str | None = None,
        seed: int = 0,
    ) -> None:
        super().__init__(model, stage, eval_mode, layer=layer)
        self.seed = seed
        self.prepare_seconds = 0.0  # of the last prepare
        self._rest: Rest | None = None

    @property
    def prepared(self) -> bool:
        """Whether :meth:`prepare` has run (``__call__`` needs it)."""
        return self._rest is not None

    def prepare(self, image: Tensor) -> PerturbationExplorer:
        """Cache what no eps changes for ``image`` (C, H, W), or any input with a batch of
        one (1, ...); returns self.

        Runs the network to the cut once, the clean logits in a pass of four copies of the
        feature (the size of every later pass, so each perturbed row meets its clean twin
        from identical kernels: the rows of one batch can round differently, and eps = 0
        must give KL 0 exactly), the Fisher channel ranking (one batched backward pass), the
        top Jacobian direction (:func:`top_direction`) and its sign (one backward pass).
        """
        if image.dim() == 3:
            image = image.unsqueeze(0)
        if image.dim() < 2 or image.shape[0] != 1:
            raise UserError(f"prepare takes one image, got shape {tuple(image.shape)}")
        t0 = time.perf_counter()
        with full_precision(), frozen(self.model, self.eval_mode):
            f, rest = self.cut.split(image)  # f: (1, *feature)
            shape = tuple(f.shape[1:])
            with torch.no_grad():  # row j is compared with perturbed row j
                clean = rest(f.repeat(len(DIRECTIONS), *[1] * len(shape)))  # (D, K)
            chan_q, _ = fisher_projections(rest, f, "kl", channels=True)  # (1, C)
            assert chan_q is not None  # channels=True always gives it
            sens = chan_q[0]  # (C,) d^T F d of each channel direction
            most, least = int(sens.argmax()), int(sens.argmin())
            gen = torch.Generator(device="cpu").manual_seed(self.seed)
            rand = torch.randn(1, *shape, generator=gen)[0]
            top, value = top_direction(rest, f, clean.shape[1], self.seed)
            dirs = torch.stack(
                [
                    channel_direction(shape, most).to(f),
                    channel_direction(shape, least).to(f),
                    (rand / rand.norm()).to(f),
                    _against_prediction(rest, f, top),
                ]
            )  # (D, *feature) unit norm each
        self._f, self._rest, self._dirs, self._clean = f[0], rest, dirs, clean
        self._sens, self._channels, self._top_value = sens, (most, least), value
        self.prepare_seconds = time.perf_counter() - t0
        return self

    def __call__(self, eps: float, relative: bool = True) -> PerturbationResult:
        """The four perturbations of size ``eps`` (relative to ``||f||`` unless
        ``relative=False``): one forward pass of the rest of the network."""
        if self._rest is None:  # not prepared
            raise UserError("call prepare(image) before asking for a perturbation size")
        if not isinstance(eps, int | float) or not math.isfinite(eps) or eps < 0:
            raise UserError(f"eps must be a number >= 0, got {eps!r}")
        t0 = time.perf_counter()
        f, dirs, rest = self._f, self._dirs, self._rest
        norm = float(f.norm())
        size = float(eps) * norm if relative else float(eps)
        deltas = size * dirs  # (D, *feature), each of norm `size`
        with full_precision(), frozen(self.model, self.eval_mode), torch.no_grad():
            z = rest(f[None] + deltas)  # (D, K)
        clean = self._clean  # (D, K): the same rows unperturbed
        return PerturbationResult(
            stage=self.stage,
            layer=self.layer,
            eps=float(eps),
            relative=relative,
            feature=f.detach().cpu(),
            deltas=deltas.detach().cpu(),
            clean_probs=torch.softmax(clean[0].double(), -1).cpu(),
            probs=torch.softmax(z.double(), -1).cpu(),
            kl=divergence_fn(clean, z, "kl").cpu(),  # KL(clean || perturbed)
            channels=self._channels,
            channel_fisher=self._sens.detach().cpu(),
            jacobian_value=self._top_value,
            seconds=time.perf_counter() - t0,
        )

    def compute(self, image: Tensor, eps: float, relative: bool = True) -> PerturbationResult:
        """:meth:`prepare` then ``self(eps)``: one image, one size."""
        return self.prepare(image)(eps, relative)
