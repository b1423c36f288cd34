"""Closed-form (ridge least-squares) fit of a bridge's MSE, on frozen features.

A bridge (:class:`fcfd_viz.distill.bridges.Bridge`) is ``conv -> BN [-> LeakyReLU]``. With its
BN on fixed statistics (eval mode) the part before the LeakyReLU is an affine map of the im2col
rows of its source feature: ``out[n, :, p] = X[n, p] @ W + b`` with ``X[n, p]`` the
``C_src * k * k`` source values under the kernel at output position ``p`` (:func:`design`).
Fitting it to a target ``Y`` by MSE is least squares: accumulate the centred normal equations
``X^T X`` (D x D), ``X^T Y`` (D x C_dst) and the column sums in float64 over the rows, chunk by
chunk (:class:`NormalEquations`: memory D^2, whatever the number of rows), then solve
``(Cov(X) + lambda I) W = Cov(X, Y)`` with a small ridge ``lambda = ridge * trace(Cov X) / D``
(a dead channel, all zero, makes ``Cov X`` singular: the ridge keeps the solve defined and
gives that channel zero weight), and ``b = mean(Y) - mean(X) W``.

**Which objective.** The loop (:mod:`fcfd_viz.analysis.gap.connectors`) trains the bridges with
BN on *batch* statistics, then sets the running statistics to the average over the fit data;
the gap then runs the bridges on running statistics (``bn="eval"``) or on the test batches'
statistics (``bn="batch"``). The closed form minimises the MSE of the eval-mode bridge over
the fit data: exactly the quantity the eval regime reads (its appearance gap, on the
training split), and what the loop's train-mode loss approximates.

**The BN fold** (:func:`load_affine`). With ``z = X W`` (the conv, no bias) and ``m``, ``v``
the per-channel mean and (population) variance of ``z`` over the fit data, computed from the
same sums, BN gets ``running_mean = m``, ``running_var = v``, ``weight = sqrt(v + eps)``,
``bias = m + b``. In eval mode ``weight * (z - m) / sqrt(v + eps) + bias = z + b``: the solved
map, exactly. On batch statistics the batch's ``(m_B, v_B)`` replace ``(m, v)``: the bridge is
then the solved map up to the batch-to-population difference, the same approximation every
loop-fitted bridge makes. (Folding into ``running_mean = 0, running_var = 1 - eps, weight = 1``
would be exact in eval mode too, but in the batch regime BN would standardise ``z`` and the
bridge would be far from the solution.)
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import torch
import torch.nn.functional as F
from torch import Tensor, nn


def design(conv: nn.Module, x: Tensor) -> Tensor:
    """im2col rows (N * L, D) of ``conv`` (a bridge's Conv2d or ConvTranspose2d, no bias,
    no groups) on ``x`` (N, C_src, H, W): ``conv(x)`` viewed as (N * L, C_dst) equals
    ``design(conv, x) @ weight_matrix(conv)`` (L output positions, row-major)."""
    k, s, p = conv.kernel_size, conv.stride, conv.padding
    if isinstance(conv, nn.ConvTranspose2d):
        # a transposed conv is a stride-1 conv over the input with s - 1 zeros inserted between
        # pixels, padded by k - 1 - p, with the kernel flipped and its in/out axes swapped
        n, c, h, w = x.shape
        up = x.new_zeros(n, c, (h - 1) * s[0] + 1, (w - 1) * s[1] + 1)
        up[:, :, :: s[0], :: s[1]] = x
        ph, pw = k[0] - 1 - p[0], k[1] - 1 - p[1]
        oph, opw = conv.output_padding
        x, s, p = F.pad(up, (pw, pw + opw, ph, ph + oph)), (1, 1), (0, 0)
    cols = F.unfold(x, k, padding=p, stride=s)  # (N, C_src * kh * kw, L)
    return cols.transpose(1, 2).reshape(-1, cols.shape[1])  # (N * L, D)


def target_rows(y: Tensor) -> Tensor:
    """(N, C, H, W) -> (N * H * W, C): the rows :func:`design` is fitted to."""
    return y.flatten(2).transpose(1, 2).reshape(-1, y.shape[1])


def weight_matrix(conv: nn.Module, w: Tensor | None = None) -> Tensor:
    """``conv``'s weight (or ``w``, a tensor of its shape: its gradient) as the (D, C_dst)
    matrix of :func:`design`."""
    w = conv.weight if w is None else w
    if isinstance(conv, nn.ConvTranspose2d):  # (C_src, C_dst, k, k) -> the equivalent conv's
        w = w.flip(2, 3).transpose(0, 1)
    return w.reshape(w.shape[0], -1).T


def set_weight_matrix(conv: nn.Module, wm: Tensor) -> None:
    """Inverse of :func:`weight_matrix`: write the (D, C_dst) matrix ``wm`` into ``conv``."""
    if isinstance(conv, nn.ConvTranspose2d):
        c_src, c_dst, kh, kw = conv.weight.shape
        w = wm.T.reshape(c_dst, c_src, kh, kw).transpose(0, 1).flip(2, 3)
    else:
        w = wm.T.reshape(conv.weight.shape)
    with torch.no_grad():
        conv.weight.copy_(w.to(conv.weight))


@dataclass
class Affine:
    """A solved map ``Y ~ X @ w + b`` and what the BN fold needs."""

    w: Tensor  # (D, C) float64
    b: Tensor  # (C,) float64
    z_mean: Tensor  # (C,) mean of X @ w over the rows
    z_var: Tensor  # (C,) population variance of X @ w over the rows
    mse: float  # mean over rows and channels of (X @ w + b - Y)^2, from the sums
    rows: int


class NormalEquations:
    """Sums of one least-squares problem, accumulated chunk by chunk in float64.

    The rows are shifted by the first chunk's column means before the products (any constant
    shift leaves the solution unchanged and keeps ``X^T X`` far from the cancellation that
    uncentred, post-ReLU features would cause). Each chunk's products run in the features'
    dtype (float32: the bulk of the cost, twice as fast as float64) over at most
    ``chunk_rows`` rows; the sums across chunks are float64.
    """

    def __init__(self, chunk_rows: int = 8192) -> None:
        self.chunk_rows = chunk_rows
        self.n = 0
        self.x0 = self.y0 = None  # (D,), (C,) the shift
        self.sx = self.sy = self.yy = self.xx = self.xy = None
        self.cxx = self.mean_x = self._solve = None  # set by solve()

    @torch.no_grad()
    def add(self, x: Tensor, y: Tensor) -> None:
        """Accumulate rows ``x`` (R, D) with targets ``y`` (R, C)."""
        if self.x0 is None:
            d, c, dev = x.shape[1], y.shape[1], x.device
            self.x0, self.y0 = x.mean(0), y.mean(0)
            f64 = dict(dtype=torch.float64, device=dev)
            self.sx, self.sy, self.yy = (
                torch.zeros(d, **f64),
                torch.zeros(c, **f64),
                torch.zeros(c, **f64),
            )
            self.xx, self.xy = torch.zeros(d, d, **f64), torch.zeros(d, c, **f64)
        for i in range(0, len(x), self.chunk_rows):
            xs = x[i : i + self.chunk_rows] - self.x0  # (r, D)
            ys = y[i : i + self.chunk_rows] - self.y0  # (r, C)
            self.n += len(xs)
            # chunk sums in the features' dtype over shifted (near-centred) rows: exact enough,
            # and converting whole chunks to float64 first would cost more than the products
            self.sx += xs.sum(0).double()
            self.sy += ys.sum(0).double()
            self.yy += (ys * ys).sum(0).double()
            self.xx += (xs.T @ xs).double()
            self.xy += (xs.T @ ys).double()

    @torch.no_grad()
    def solve(self, ridge: float) -> Affine:
        """The ridge solution (``lambda = ridge * trace(Cov X) / D``; see the module docstring).
        Keeps the factorisation for :meth:`step`."""
        if not self.n:
            raise ValueError("no rows to solve on")
        n, d = self.n, self.xx.shape[0]
        mx, my = self.sx / n, self.sy / n  # means of the shifted rows
        self.cxx = self.xx / n - torch.outer(mx, mx)  # (D, D)
        cxy = self.xy / n - torch.outer(mx, my)  # (D, C)
        cyy = self.yy / n - my.pow(2)  # (C,)
        self.mean_x = mx + self.x0.double()  # (D,) unshifted
        lam = ridge * float(self.cxx.diagonal().sum()) / d
        lam = lam if lam > 0 else (1.0 if ridge > 0 else 0.0)  # all-zero X: w = 0
        a = self.cxx + lam * torch.eye(d, dtype=self.cxx.dtype, device=self.cxx.device)
        chol, info = torch.linalg.cholesky_ex(a)
        if int(info) == 0:
            self._solve = lambda rhs: torch.cholesky_solve(rhs, chol)
        else:  # singular without a ridge (ridge=0): the minimum-norm solution
            pinv = torch.linalg.pinv(a, hermitian=True)
            self._solve = lambda rhs: pinv @ rhs
        w = self._solve(cxy)
        mse = float((cyy - 2 * (w * cxy).sum(0) + (w * (self.cxx @ w)).sum(0)).sum() / len(cyy))
        b = self.y0.double() + my - self.mean_x @ w  # back to unshifted coordinates
        return replace(self.affine(w, b), mse=max(mse, 0.0))

    def affine(self, w: Tensor, b: Tensor) -> Affine:
        """The :class:`Affine` of the map ``X @ w + b`` on these rows (after :meth:`solve`;
        ``mse`` NaN: it depends on the targets' fit, not on these sums alone)."""
        z_var = (w * (self.cxx @ w)).sum(0).clamp_min(0)
        return Affine(w, b, self.mean_x @ w, z_var, float("nan"), self.n)

    def step(self, sum_xr: Tensor, sum_r: Tensor) -> tuple[Tensor, Tensor]:
        """The least-squares change ``(dw (D, C), db (C,))`` that fits residuals with sums
        ``sum_xr = sum X^T r`` (D, C) and ``sum_r`` (C,) over these rows (after :meth:`solve`;
        the same ridge): ``dw = (Cov X + lambda I)^-1 Cov(X, r)``, ``db = mean(r) - mean(X) dw``."""
        mr = sum_r.double() / self.n
        dw = self._solve(sum_xr.double() / self.n - torch.outer(self.mean_x, mr))
        return dw, mr - self.mean_x @ dw


@torch.no_grad()
def load_affine(bridge: nn.Sequential, sol: Affine) -> None:
    """Write ``sol`` into ``bridge`` (conv, BN, optional LeakyReLU) so that its eval-mode
    pre-activation is ``X @ w + b`` exactly (the fold of the module docstring)."""
    conv, bn = bridge[0], bridge[1]
    set_weight_matrix(conv, sol.w)
    var = sol.z_var.to(bn.running_var)
    bn.running_mean.copy_(sol.z_mean)
    bn.running_var.copy_(var)
    bn.weight.copy_((var + bn.eps).sqrt())
    bn.bias.copy_(sol.z_mean + sol.b)
    if bn.num_batches_tracked is not None:
        bn.num_batches_tracked.fill_(sol.rows)
