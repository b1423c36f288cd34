"""Connectors fitted post hoc between a frozen teacher and a frozen student.

Students trained without bridges (CE, KD, DKD, FitNet) have no way to send a feature into
the teacher's space, so the functional gap needs connectors fitted after training: bridges of
the same architecture as FCFD's (:func:`fcfd_viz.distill.bridges.make_bridges`), with both
networks frozen in eval mode, fitted on a training split:

* ``s2t[k]``: ``MSE(s2t[k](student_k), teacher_k)``, stages 1..N-1;
* ``t2s[k]``: ``MSE(t2s[k](teacher_k), student_k)``, stages 1..N-2 (as FCFD builds them).

By default (``FitConfig.method="lstsq"``) each bridge is solved in closed form, ridge least
squares on the cached features, and only the bridges with a LeakyReLU take a few epochs of
the loop below (:mod:`fcfd_viz.analysis.gap.closed_form`); ``method="adam"`` is the loop alone,
Adam (lr 1e-2 by default) from a random start.

**The loop.** Each bridge is independent of the others, so each gets its own learning rate and its own
stopping rule. **Stopping rule** (a plateau, not a fixed budget): an epoch *improves* when its
mean training loss is below ``best * (1 - rel_tol)``; after ``patience`` epochs without
improvement the learning rate is divided by 10, up to ``lr_drops`` times, and the next such
plateau stops the bridge. ``max_epochs`` caps everything (the bridge is then reported as not
converged). Afterwards each bridge's BatchNorm running statistics are re-estimated on the fit
data (cumulative average, no gradient), so the eval-mode bridge matches what it learned.

The frozen networks' features are computed once (one pass over the loader, whatever
augmentation that pass draws) and cached when they fit in ``cache_mb``; every epoch then
costs only the bridges. Otherwise both networks run again at every epoch.

The loop itself (:func:`fit_bridges` over :class:`FeaturePairs`) knows no network: features
may be lists by stage or dicts by FPN level, so detectors' post-hoc connectors
(:mod:`fcfd_viz.detection.gap`) are fitted by the same rule.
"""

from __future__ import annotations

import math
import os
import time

import torch
import torch.nn.functional as F
from torch import nn

from fcfd_viz.analysis.gap.closed_form import fit_closed_form
from fcfd_viz.analysis.gap.feature_pairs import FeaturePairs, _rows, _staged_pairs
from fcfd_viz.analysis.gap.fit_config import BridgeFit, FitConfig, FitInfo
from fcfd_viz.distill.bridges import make_bridges
from fcfd_viz.io.files import atomic_write_with
from fcfd_viz.models.base import StagedNet
from fcfd_viz.models.batchnorm import cumulative_running_stats, freeze, frozen


class _Plateau:
    """The stopping rule of one bridge."""

    def __init__(self, cfg: FitConfig, group: dict) -> None:
        self.cfg, self.group = cfg, group
        self.best, self.wait, self.drops = math.inf, 0, 0
        self.curve: list[float] = []
        self.drop_epochs: list[int] = []
        self.done = False

    def update(self, loss: float) -> None:
        cfg = self.cfg
        self.curve.append(loss)
        if loss < self.best * (1 - cfg.rel_tol):
            self.best, self.wait = loss, 0
        else:
            self.wait += 1
        if self.wait >= cfg.patience and len(self.curve) >= cfg.min_epochs:
            if self.drops < cfg.lr_drops:
                self.drops += 1
                self.group["lr"] *= 0.1
                self.drop_epochs.append(len(self.curve))
                self.wait = 0
            else:
                self.done = True


def new_bridges(
    teacher: StagedNet, student: StagedNet, input_shape, seed: int = 0
) -> tuple[nn.ModuleDict, nn.ModuleDict]:
    """Freshly initialised (s2t, t2s) bridges for a pair, seeded, as FCFD builds them."""
    s_shapes = student.feature_shapes(input_shape)
    t_shapes = teacher.feature_shapes(input_shape)
    n = len(s_shapes)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        s2t = make_bridges(s_shapes, t_shapes, teacher.post_relu, range(1, n))
        t2s = make_bridges(t_shapes, s_shapes, student.post_relu, range(1, n - 1))
    return s2t, t2s


# one bridge to fit: (name, bridge, its source is the teacher?, stage index or level key)
FitTask = tuple[str, nn.Module, bool, "int | str"]


def fit_bridges(
    tasks: list[FitTask],
    feats: FeaturePairs,
    cfg: FitConfig,
    progress: bool = False,
    desc: str = "fit connectors",
) -> FitInfo:
    """Fit every bridge of ``tasks`` to the MSE between its source and target features of
    ``feats`` by ``cfg.method``: ``"lstsq"`` in closed form
    (:func:`~fcfd_viz.analysis.gap.closed_form.fit_closed_form`), ``"adam"`` by the loop (the
    module docstring); the bridges end frozen in eval mode. ``cfg`` is already validated;
    returns the fit record."""
    if cfg.method == "lstsq":
        return fit_closed_form(tasks, feats, cfg, _fit_adam, progress, desc)
    return _fit_adam(tasks, feats, cfg, progress, desc)


def _fit_adam(
    tasks: list[FitTask], feats: FeaturePairs, cfg: FitConfig, progress: bool, desc: str
) -> FitInfo:
    """The Adam loop: one learning rate and one stopping rule per bridge, then each bridge's
    BN statistics re-estimated on the fit data and the bridge frozen (eval mode)."""
    t0 = time.perf_counter()
    for _, b, _, _ in tasks:
        b.train()
    opt = torch.optim.Adam(
        [{"params": list(b.parameters()), "lr": cfg.lr} for _, b, _, _ in tasks],
        weight_decay=cfg.weight_decay,
    )
    rules = [_Plateau(cfg, g) for g in opt.param_groups]
    bar = None
    if progress:
        from tqdm.auto import tqdm

        bar = tqdm(total=cfg.max_epochs, desc=desc, unit="epoch", leave=False)
    try:
        for _ in range(cfg.max_epochs):
            active = [j for j, r in enumerate(rules) if not r.done]
            if not active:
                break
            sums = torch.zeros(len(tasks), dtype=torch.float64)
            count = 0
            for t, s in feats.epoch():
                opt.zero_grad(set_to_none=True)
                total = 0.0
                for j in active:
                    _, bridge, from_t, k = tasks[j]
                    src, dst = (t[k], s[k]) if from_t else (s[k], t[k])
                    loss = F.mse_loss(bridge(src), dst)
                    total = total + loss
                    sums[j] += loss.detach().double().cpu() * len(src)
                total.backward()
                opt.step()
                count += _rows(t)
            for j in active:
                rules[j].update(float(sums[j] / max(1, count)))
            if bar is not None:
                bar.update(1)
                bar.set_postfix(active=len(active), loss=f"{float(sums.sum() / max(1, count)):.4g}")
    finally:
        if bar is not None:
            bar.close()
    # each bridge's running BN statistics: the average over one pass of the fit data
    with cumulative_running_stats([b for _, b, _, _ in tasks]):
        for t, s in feats.epoch(shuffle=False):
            for _, bridge, from_t, k in tasks:
                bridge(t[k] if from_t else s[k])
    for _, b, _, _ in tasks:
        freeze(b.eval())
    return FitInfo(
        bridges={
            name: BridgeFit(r.curve, r.done, r.drop_epochs) for (name, *_), r in zip(tasks, rules)
        },
        num_images=feats.n,
        cached=feats.cached,
        seconds=time.perf_counter() - t0,
        config=cfg,
    )


def fit_connectors(
    teacher: StagedNet,
    student: StagedNet,
    loader,
    input_shape,
    cfg: FitConfig | None = None,
    progress: bool = False,
    desc: str = "fit connectors",
) -> tuple[nn.ModuleDict, nn.ModuleDict, FitInfo]:
    """Fit (s2t, t2s) bridges between frozen ``teacher`` and ``student`` on ``loader``.

    Neither network's parameters, modes or buffers change. Returns the bridges (eval mode,
    on the teacher's device) and the fit's convergence record.
    """
    cfg = cfg or FitConfig()
    cfg.validate()
    t0 = time.perf_counter()
    device = next(teacher.parameters()).device
    s2t, t2s = new_bridges(teacher, student, input_shape, cfg.seed)
    s2t.to(device)
    t2s.to(device)
    tasks: list[FitTask] = [(f"s2t/{k}", b, False, int(k)) for k, b in s2t.items()]
    tasks += [(f"t2s/{k}", b, True, int(k)) for k, b in t2s.items()]
    with frozen(teacher), frozen(student):
        feats = _staged_pairs(teacher, student, loader, input_shape, cfg, device)
        info = fit_bridges(tasks, feats, cfg, progress, desc)
    freeze(s2t.eval())
    freeze(t2s.eval())
    info.seconds = time.perf_counter() - t0
    return s2t, t2s, info


def save_connectors(
    path: str | os.PathLike, s2t: nn.ModuleDict, t2s: nn.ModuleDict, info: FitInfo
) -> None:
    """Write fitted connectors and their fit record to ``path`` (atomically: temp + rename),
    for :func:`load_connectors`; a later session then skips the fit."""
    blob = {"s2t": s2t.state_dict(), "t2s": t2s.state_dict(), "info": info.to_dict()}
    atomic_write_with(path, lambda f: torch.save(blob, f))


def load_connectors(
    path: str | os.PathLike, teacher: StagedNet, student: StagedNet, input_shape
) -> tuple[nn.ModuleDict, nn.ModuleDict, FitInfo]:
    """Connectors saved by :func:`save_connectors` for this pair (eval mode, on the teacher's
    device), ready for :meth:`FunctionalGap.set_fitted`."""
    saved = torch.load(path, map_location="cpu", weights_only=True)
    s2t, t2s = new_bridges(teacher, student, input_shape)
    s2t.load_state_dict(saved["s2t"])
    t2s.load_state_dict(saved["t2s"])
    device = next(teacher.parameters()).device
    return s2t.to(device).eval(), t2s.to(device).eval(), FitInfo.from_dict(saved["info"])
