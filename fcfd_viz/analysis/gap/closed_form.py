"""The closed-form connector fit (``FitConfig(method="lstsq")``, the default).

1. One pass over the frozen features accumulates every bridge's normal equations
   (:class:`~fcfd_viz.analysis.gap.lstsq.NormalEquations`); each bridge is solved by ridge least
   squares and written into the bridge so that its eval-mode map is the solution
   (:func:`~fcfd_viz.analysis.gap.lstsq.load_affine`; the objective and the BN fold are explained
   in :mod:`fcfd_viz.analysis.gap.lstsq`). A bridge without a LeakyReLU is done. ``X^T Y`` is the
   conv's weight gradient (no im2col copy); ``X^T X`` of a teacher-source bridge is taken
   from an earlier student's fit of the same teacher and images inside
   :func:`~fcfd_viz.analysis.gap.shared_teacher.shared_teacher` (exact: the same sums).
2. A bridge with a LeakyReLU computes ``leaky(X w + b)``, not an affine map. The linear
   solution is its start (fitting the linear part to ``leaky^-1(Y)`` instead would change
   nothing: a bridge has a LeakyReLU only when its target is post-ReLU, ``Y >= 0``, where
   ``leaky^-1(Y) = Y``), then at most ``refine_steps`` (and ``max_epochs - 1``) full-batch
   steps minimise the eval-mode MSE ``mean((leaky(X w + b) - Y)^2)`` itself: each step is one
   pass (a forward and a weight-gradient conv per bridge, no im2col) giving the residual
   ``r = leaky'(z) * (Y - leaky(z))``; the loss's curvature in ``z`` is at most 1, so
   ``(Cov X + lambda I)^-1 Cov(X, r)`` (the Gram already factorised) is the step of a quadratic
   majoriser; it is over-relaxed by :data:`OVERRELAX` with heavy-ball :data:`MOMENTUM`
   (measured on the seed-0 default students: 8 steps reach the MSE of 100 Adam epochs, or
   lower, where the plain majoriser step needs about 30). A bridge stops early on the loop's
   plateau rule (no relative improvement of ``rel_tol`` for 2 steps) and keeps its best
   iterate.
3. ``refine_epochs`` (default 0) epochs of the Adam loop at ``refine_lr`` may follow; the
   bridge keeps whichever state has the lower eval-mode MSE.

Each bridge's record: ``curve`` = the eval-mode MSE of every iterate (the solution first),
then any Adam epochs' losses; ``kept_mse`` the eval-mode MSE of the bridge as kept;
``converged`` True (a solve has no budget to hit).
"""

from __future__ import annotations

import copy
import math
import time
from dataclasses import replace

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from fcfd_viz.analysis.gap.feature_pairs import FeaturePairs, _rows
from fcfd_viz.analysis.gap.fit_config import BridgeFit, FitConfig, FitInfo
from fcfd_viz.analysis.gap.lstsq import (
    CHUNK_ROWS,
    NormalEquations,
    conv_weight_grad,
    load_affine,
    set_weight_matrix,
    weight_matrix,
)
from fcfd_viz.analysis.gap.shared_teacher import active, gram_key
from fcfd_viz.models.batchnorm import freeze

OVERRELAX, MOMENTUM = 1.9, 0.5  # the refinement's step scale and heavy-ball momentum


def _src_dst(task, t, s):
    _, _, from_t, k = task
    return (t[k], s[k]) if from_t else (s[k], t[k])


@torch.no_grad()
def eval_mse(tasks: list, feats: FeaturePairs) -> list[float]:
    """Each task's bridge's mean squared error over every element of the fit data, with the
    bridge in eval mode (what the eval regime of the gap runs)."""
    modes = [b.training for _, b, _, _ in tasks]
    for _, b, _, _ in tasks:
        b.eval()
    sums, count = [0.0] * len(tasks), 0
    for t, s in feats.epoch(shuffle=False):
        for j, task in enumerate(tasks):
            src, dst = _src_dst(task, t, s)
            e = task[1](src) - dst  # (B, C, H, W)
            # the sum of per-image means; float32's cascaded sum is exact enough, and a float64
            # copy of a wide target costs more than the bridge
            sums[j] += float(e.pow_(2).sum()) / e[0].numel()
        count += _rows(t)
    for (_, b, _, _), was in zip(tasks, modes):
        b.train(was)
    return [v / max(1, count) for v in sums]


def _slope(bridge: nn.Module) -> float | None:
    """The bridge's LeakyReLU slope, None without one."""
    return next((m.negative_slope for m in bridge.modules() if isinstance(m, nn.LeakyReLU)), None)


def _conv(conv: nn.Module, x: Tensor, bias: Tensor) -> Tensor:
    """``conv(x) + bias`` (a bridge's conv has no bias of its own), the add fused into it."""
    if isinstance(conv, nn.ConvTranspose2d):
        return F.conv_transpose2d(
            x, conv.weight, bias, conv.stride, conv.padding, conv.output_padding, conv.groups
        )
    return F.conv2d(x, conv.weight, bias, conv.stride, conv.padding, conv.dilation, conv.groups)


@torch.no_grad()
def _refine_batch(j: dict, src: Tensor, dst: Tensor) -> None:
    """One batch of a refinement pass: adds the batch's squared error to ``j["sse"]`` and the
    gradients of half of it, ``-sum X^T r`` (weight-shaped) and ``-sum r`` (C,), to
    ``j["gw"]``, ``j["gb"]``. By hand rather than autograd: three fused passes over the
    (B, C, H, W) output instead of autograd's temporaries, which cost as much as the convs
    on a wide target (benchmarks/connector_fit.py)."""
    conv, k = j["task"][1][0], j["slope"]
    z = _conv(conv, src, j["bias"])  # (B, C, H, W) pre-activation, the bias added by the conv
    a = F.leaky_relu_(z, k)  # in place: z's sign is kept, which is all the backward needs
    e = a - dst  # (B, C, H, W)
    flat = e.view(-1)
    j["sse"] += float(torch.dot(flat, flat))
    j["count"] += e.numel()
    e = torch.ops.aten.leaky_relu_backward(e, a, k, True)  # leaky'(z) (leaky(z) - dst) = -r
    gw = conv_weight_grad(conv, src, e)  # -sum X^T r, weight-shaped
    j["gw"] = gw if j["gw"] is None else j["gw"] + gw
    j["gb"] = j["gb"] + e.sum((0, 2, 3))  # (C,) -sum r


def _refine(jobs: list, feats: FeaturePairs, steps: int, rel_tol: float) -> None:
    """Step 2 of the module docstring on ``jobs``: dicts with ``task``, ``eq`` (solved),
    ``w``, ``b`` (the start); sets each job's ``curve`` and ``best`` ``(mse, w, b)``."""
    for j in jobs:
        j.update(curve=[], best=(math.inf, j["w"], j["b"]), wait=0, done=False)
        j["vw"], j["vb"] = torch.zeros_like(j["w"]), torch.zeros_like(j["b"])
    for _ in range(steps):
        active = [j for j in jobs if not j["done"]]
        if not active:
            return
        for j in active:
            set_weight_matrix(j["task"][1][0], j["w"])  # the pass adds the bias itself
            j["bias"] = j["b"].float()  # (C,)
            j["sse"], j["count"] = 0.0, 0
            j["gw"], j["gb"] = None, 0.0
        for t, s in feats.epoch(shuffle=False):
            for j in active:
                _refine_batch(j, *_src_dst(j["task"], t, s))
        for j in active:
            mse = j["sse"] / j["count"]  # of the iterate (w, b) this pass ran
            j["curve"].append(mse)
            if mse < j["best"][0]:
                improved = mse < j["best"][0] * (1 - rel_tol)
                j["best"] = (mse, j["w"], j["b"])
                j["wait"] = 0 if improved else j["wait"] + 1
            else:
                j["wait"] += 1
            j["done"] = j["wait"] >= 2
            sum_xr = -weight_matrix(j["task"][1][0], j["gw"])  # (D, C)
            dw, db = j["eq"].step(sum_xr, -j["gb"])
            j["vw"] = MOMENTUM * j["vw"] + OVERRELAX * dw
            j["vb"] = MOMENTUM * j["vb"] + OVERRELAX * db
            j["w"], j["b"] = j["w"] + j["vw"], j["b"] + j["vb"]
    for j in jobs:  # the last iterate, for the caller to measure
        load_affine(j["task"][1], j["eq"].affine(j["w"], j["b"]))


def fit_closed_form(
    tasks: list, feats: FeaturePairs, cfg: FitConfig, adam, progress=False, desc="fit"
) -> FitInfo:
    """Fit every bridge of ``tasks`` (``(name, bridge, from_teacher, key)``) in closed form
    (the module docstring); ``adam(tasks, feats, cfg, progress, desc) -> FitInfo`` is the
    loop of the optional Adam epochs. Returns the fit record; every bridge ends frozen in
    eval mode."""
    t0 = time.perf_counter()
    share = active()
    pass_key = f"{feats.t_key}/{feats.batch_size}" if share and feats.t_key else None
    keys = [gram_key(pass_key, task, CHUNK_ROWS) for task in tasks]
    # a teacher-source bridge whose rows an earlier fit summed reuses that Gram (exact)
    eqs = [NormalEquations(CHUNK_ROWS, share.grams.get(k) if k else None) for k in keys]
    batches = feats.epoch(shuffle=False)
    if progress:
        from tqdm.auto import tqdm

        batches = tqdm(batches, desc=f"{desc} (solve)", unit="batch", leave=False)
    with torch.no_grad():
        for t, s in batches:
            for task, eq in zip(tasks, eqs):
                src, dst = _src_dst(task, t, s)
                eq.add_conv(task[1][0], src, dst)
    jobs = []
    for task, eq, key in zip(tasks, eqs, keys):
        sol = eq.solve(cfg.ridge)
        if key is not None:
            share.grams[key] = eq.gram
        load_affine(task[1], sol)
        jobs.append({"task": task, "eq": eq, "w": sol.w, "b": sol.b, "slope": _slope(task[1])})
    # each step is one pass, as an epoch: with the solve's, at most max_epochs in the record
    steps = min(cfg.refine_steps, cfg.max_epochs - 1)
    leaky = [j for j in jobs if j["slope"] is not None and steps > 0]
    _refine(leaky, feats, steps, cfg.rel_tol)
    final = eval_mse(tasks, feats)  # of the last iterate (the solution where none ran)
    fits = {}
    for j, m in zip(jobs, final):
        curve, kept = [*j.get("curve", []), m], m
        if "best" in j and j["best"][0] < m:  # an earlier iterate was better: keep it
            kept = j["best"][0]
            load_affine(j["task"][1], j["eq"].affine(*j["best"][1:]))
        fits[j["task"][0]] = BridgeFit(curve, True, [], kept_mse=kept)
    epochs = min(cfg.refine_epochs, cfg.max_epochs)
    if leaky and epochs > 0:
        _adam_epochs([j["task"] for j in leaky], feats, cfg, epochs, adam, fits, progress, desc)
    for _, b, _, _ in tasks:
        freeze(b.eval())
    return FitInfo(fits, feats.n, feats.cached, time.perf_counter() - t0, cfg)


def _adam_epochs(tasks, feats, cfg, epochs, adam, fits, progress, desc) -> None:
    """Step 3: ``epochs`` of the Adam loop; each bridge keeps the better eval-mode state."""
    start = {name: copy.deepcopy(b.state_dict()) for name, b, *_ in tasks}
    for _, b, _, _ in tasks:
        b.requires_grad_(True)
    sub = replace(cfg, max_epochs=epochs, lr=cfg.refine_lr, min_epochs=min(cfg.min_epochs, epochs))
    info = adam(tasks, feats, sub, progress, f"{desc} (refine)")
    for (name, bridge, *_), m in zip(tasks, eval_mse(tasks, feats)):
        f, r = fits[name], info.bridges[name]
        f.lr_drop_epochs = [e + len(f.curve) for e in r.lr_drop_epochs]
        f.curve += r.curve
        if m < f.kept_mse:
            f.kept_mse = m
        else:  # the epochs did not help: back to the closed form
            bridge.load_state_dict(start[name])
