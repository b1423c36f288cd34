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

CHUNK_ROWS = 8192  # rows per float32 product of the normal equations (see NormalEquations)


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


def conv_weight_grad(conv: nn.Module, x: Tensor, g: Tensor) -> Tensor:
    """The gradient of ``sum(conv(x) * g)`` with respect to ``conv``'s weight (its shape),
    without autograd: ``x`` (B, C_src, H, W), ``g`` (B, C_dst, H', W'). As a matrix
    (:func:`weight_matrix`) it is ``design(conv, x)^T @ target_rows(g)``."""
    kw = dict(stride=conv.stride, padding=conv.padding, dilation=conv.dilation)
    if isinstance(conv, nn.ConvTranspose2d):
        # a transposed conv is the adjoint of the conv with its weight: sum(conv_t(x) * g)
        # = sum(x * conv(g)), whose weight gradient has the transposed conv's weight shape
        return torch.nn.grad.conv2d_weight(g, conv.weight.shape, x, groups=conv.groups, **kw)
    return torch.nn.grad.conv2d_weight(x, conv.weight.shape, g, groups=conv.groups, **kw)


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


GRAM_BLOCK = 128  # column block of the Gram's products (see _add_upper_gram)


def _add_upper_gram(xx: Tensor, xs: Tensor) -> None:
    """Add ``xs^T xs`` (xs (r, D)) to ``xx`` (D, D, float64) on and above the diagonal
    blocks only: ``X^T X`` is symmetric, so block row ``i`` needs columns from block ``i``
    on, about (1 + 1/k) / 2 of the products for ``k`` blocks (the D^2 product is the bulk of
    the closed-form fit's cost; :meth:`NormalEquations.solve` mirrors the upper triangle).
    """
    d = xs.shape[1]
    for i in range(0, d, GRAM_BLOCK):
        # (b, r) @ (r, D - i): a strided view, no copy
        xx[i : i + GRAM_BLOCK, i:] += (xs[:, i : i + GRAM_BLOCK].T @ xs[:, i:]).double()


@dataclass
class Gram:
    """The source side of the sums: the shift ``x0`` (D,), the row count, ``sum (x - x0)``
    (D,) and ``sum (x - x0)^T (x - x0)`` (D, D, float64; its upper triangle is the sum, the
    part below the diagonal blocks stays zero). It depends on the rows alone, so
    problems with the same rows (one teacher feature, many students' targets) share it."""

    x0: Tensor
    n: int
    sx: Tensor
    xx: Tensor


class NormalEquations:
    """Sums of one least-squares problem, accumulated chunk by chunk in float64.

    The rows are shifted by the first chunk's column means before the products (any constant
    shift leaves the solution unchanged and keeps ``X^T X`` far from the cancellation that
    uncentred, post-ReLU features would cause). Each chunk's products run in the features'
    dtype (float32: the bulk of the cost, twice as fast as float64) over at most
    ``chunk_rows`` rows; the sums across chunks are float64.

    ``gram``: a complete :class:`Gram` of the same rows (same values, same order, same
    ``chunk_rows``), from an earlier problem: :meth:`add` then accumulates only the target
    side, skipping ``X^T X`` (the D^2 product), and the solution is the same as without it.
    """

    def __init__(self, chunk_rows: int = CHUNK_ROWS, gram: Gram | None = None) -> None:
        self.chunk_rows = chunk_rows
        self.shared = gram is not None
        self.gram = gram  # own (built by add) or shared (complete)
        self.n = 0  # rows added to this problem
        self.y0 = self.sy = self.yy = self.xy = None  # (C,) shift, (C,), (C,), (D, C)
        self.cxx = self.mean_x = self._solve = None  # set by solve()

    @property
    def x0(self) -> Tensor | None:
        return None if self.gram is None else self.gram.x0

    def _begin(self, x: Tensor | None, y: Tensor, d: int) -> None:
        """Zero the sums on the first rows (``x`` (R, D) or None with a shared Gram)."""
        if self.y0 is not None:
            return
        c, dev = y.shape[1], y.device
        f64 = dict(dtype=torch.float64, device=dev)
        if self.gram is None:
            self.gram = Gram(x.mean(0), 0, torch.zeros(d, **f64), torch.zeros(d, d, **f64))
        self.y0 = y.mean(0)
        self.sy, self.yy = torch.zeros(c, **f64), torch.zeros(c, **f64)
        self.xy = torch.zeros(d, c, **f64)

    def _add_gram(self, x: Tensor) -> None:
        """Own Gram only: ``x`` (R, D) into ``n``, ``sx``, ``X^T X``, chunk by chunk."""
        if self.shared:
            return
        g = self.gram
        for i in range(0, len(x), self.chunk_rows):
            xs = x[i : i + self.chunk_rows] - g.x0  # (r, D)
            g.n += len(xs)
            g.sx += xs.sum(0).double()
            _add_upper_gram(g.xx, xs)

    @torch.no_grad()
    def add(self, x: Tensor, y: Tensor) -> None:
        """Accumulate rows ``x`` (R, D) with targets ``y`` (R, C)."""
        self._begin(x, y, x.shape[1])
        for i in range(0, len(x), self.chunk_rows):
            xs = x[i : i + self.chunk_rows] - self.gram.x0  # (r, D)
            ys = y[i : i + self.chunk_rows] - self.y0  # (r, C)
            self.n += len(xs)
            # chunk sums in the features' dtype over shifted (near-centred) rows: exact enough,
            # and converting whole chunks to float64 first would cost more than the products
            self.sy += ys.sum(0).double()
            self.yy += (ys * ys).sum(0).double()
            self.xy += (xs.T @ ys).double()
        self._add_gram(x)

    @torch.no_grad()
    def add_conv(self, conv: nn.Module, src: Tensor, dst: Tensor) -> None:
        """Accumulate a batch of a bridge's conv: source ``src`` (B, C_src, H, W), target
        ``dst`` (B, C_dst, H', W'); the same sums as ``add(design(conv, src), target_rows(dst))``.

        ``X^T Y`` comes from the conv's weight gradient (the rows of ``src`` against the
        centred targets), never materialising the im2col rows: for a wide source that copy
        costs ten times the product. The rows are built only for an own ``X^T X``.
        """
        x = None if self.shared else design(conv, src)  # (R, D)
        y = target_rows(dst)  # (R, C)
        self._begin(x, y, weight_matrix(conv).shape[0])  # D
        ys = dst - self.y0[:, None, None]  # (B, C, H', W') centred targets
        xty = conv_weight_grad(conv, src, ys)  # sum X^T ys over the batch, weight-shaped
        sy = ys.sum((0, 2, 3)).double()  # (C,)
        # sum (x - x0)^T ys = sum x^T ys - x0 (sum ys)^T
        self.xy += weight_matrix(conv, xty).double() - torch.outer(self.gram.x0.double(), sy)
        self.sy += sy
        self.yy += ys.pow(2).sum((0, 2, 3)).double()
        self.n += len(y)
        if x is not None:
            self._add_gram(x)

    @torch.no_grad()
    def solve(self, ridge: float) -> Affine:
        """The ridge solution (``lambda = ridge * trace(Cov X) / D``; see the module docstring).
        Keeps the factorisation for :meth:`step`."""
        if not self.n:
            raise ValueError("no rows to solve on")
        g, n = self.gram, self.n
        if g.n != n:  # a shared Gram of other rows: a caller's bug, never a silent misfit
            raise ValueError(f"the shared Gram has {g.n} rows, the targets {n}")
        d = g.xx.shape[0]
        mx, my = g.sx / n, self.sy / n  # means of the shifted rows
        xx = g.xx.triu() + g.xx.triu(1).T  # (D, D) the upper blocks, mirrored
        self.cxx = xx / n - torch.outer(mx, mx)  # (D, D)
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
