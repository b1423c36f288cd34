"""The closed-form connector fit (``FitConfig(method="lstsq")``, the default).

1. One pass over the frozen features accumulates every bridge's normal equations
   (:class:`~fcfd_viz.analysis.lstsq.NormalEquations`), then each bridge is solved by ridge
   least squares and written into the bridge so that its eval-mode map is the solution
   (:func:`~fcfd_viz.analysis.lstsq.load_affine`; the objective and the BN fold are explained
   in :mod:`fcfd_viz.analysis.lstsq`).
2. Bridges with a LeakyReLU are not affine: the linear solution is their start (with targets
   >= 0, as post-ReLU features are, the LeakyReLU only shrinks the solution's error), then
   they take at most ``refine_epochs`` epochs of the Adam loop at ``refine_lr`` under the
   loop's plateau rule, and keep whichever of the two states has the lower eval-mode MSE on
   the fit data (so the refinement can never make a fit worse).

Each bridge's record: ``curve = [eval-mode MSE of the solution, *refinement epochs' losses]``,
``kept_mse`` the eval-mode MSE of the bridge as kept, ``converged`` True (a solve has no
budget to hit; the refinement's cap is part of the method).
"""

from __future__ import annotations

import copy
import time
from dataclasses import replace

import torch
from torch import nn

from fcfd_viz.analysis.feature_pairs import FeaturePairs, _rows
from fcfd_viz.analysis.fit_config import BridgeFit, FitConfig, FitInfo
from fcfd_viz.analysis.lstsq import NormalEquations, design, load_affine, target_rows
from fcfd_viz.bn import freeze


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
            sums[j] += float((task[1](src) - dst).double().pow(2).flatten(1).mean(1).sum())
        count += _rows(t)
    for (_, b, _, _), was in zip(tasks, modes):
        b.train(was)
    return [v / max(1, count) for v in sums]


def _leaky(bridge: nn.Module) -> bool:
    return any(isinstance(m, nn.LeakyReLU) for m in bridge.modules())


def fit_closed_form(
    tasks: list, feats: FeaturePairs, cfg: FitConfig, refine, progress=False, desc="fit"
) -> FitInfo:
    """Fit every bridge of ``tasks`` (``(name, bridge, from_teacher, key)``) in closed form
    (the module docstring); ``refine(tasks, feats, cfg, progress, desc) -> FitInfo`` is the
    Adam loop the LeakyReLU bridges are refined with. Returns the fit record; every bridge
    ends frozen in eval mode."""
    t0 = time.perf_counter()
    eqs = [NormalEquations() for _ in tasks]
    batches = feats.epoch(shuffle=False)
    if progress:
        from tqdm.auto import tqdm

        batches = tqdm(batches, desc=f"{desc} (solve)", unit="batch", leave=False)
    with torch.no_grad():
        for t, s in batches:
            for task, eq in zip(tasks, eqs):
                src, dst = _src_dst(task, t, s)
                eq.add(design(task[1][0], src), target_rows(dst))  # (R, D), (R, C)
    for (_, bridge, _, _), eq in zip(tasks, eqs):
        load_affine(bridge, eq.solve(cfg.ridge))
    solved = eval_mse(tasks, feats)
    fits = {name: BridgeFit([m], True, [], kept_mse=m) for (name, *_), m in zip(tasks, solved)}
    epochs = min(cfg.refine_epochs, cfg.max_epochs)
    leaky = [task for task in tasks if _leaky(task[1])]
    if leaky and epochs > 0:
        start = {task[0]: copy.deepcopy(task[1].state_dict()) for task in leaky}
        sub = replace(
            cfg, max_epochs=epochs, lr=cfg.refine_lr, min_epochs=min(cfg.min_epochs, epochs)
        )
        info = refine(leaky, feats, sub, progress, f"{desc} (refine)")
        after = eval_mse(leaky, feats)
        for (name, bridge, *_), m in zip(leaky, after):
            f, r = fits[name], info.bridges[name]
            f.curve += r.curve
            f.lr_drop_epochs = [e + 1 for e in r.lr_drop_epochs]  # epoch 1 is the solve
            if m < f.kept_mse:
                f.kept_mse = m
            else:  # the refinement did not help: back to the solution
                bridge.load_state_dict(start[name])
    for _, b, _, _ in tasks:
        freeze(b.eval())
    return FitInfo(fits, feats.n, feats.cached, time.perf_counter() - t0, cfg)
