"""Connectors fitted post hoc between a frozen teacher and a frozen student.

Students trained without bridges (CE, KD, DKD, FitNet) have no way to send a feature into
the teacher's space, so the functional gap needs connectors fitted after training: bridges of
the same architecture as FCFD's (:func:`fcfd_viz.distill.bridges.make_bridges`), with both
networks frozen in eval mode, trained on a training split with Adam (lr 1e-2 by default):

* ``s2t[k]``: ``MSE(s2t[k](student_k), teacher_k)``, stages 1..N-1;
* ``t2s[k]``: ``MSE(t2s[k](teacher_k), student_k)``, stages 1..N-2 (as FCFD builds them).

Each bridge is independent of the others, so each gets its own learning rate and its own
stopping rule. **Stopping rule** (a plateau, not a fixed budget): an epoch *improves* when its
mean training loss is below ``best * (1 - rel_tol)``; after ``patience`` epochs without
improvement the learning rate is divided by 10, up to ``lr_drops`` times, and the next such
plateau stops the bridge. ``max_epochs`` caps everything (the bridge is then reported as not
converged). Afterwards each bridge's BatchNorm running statistics are re-estimated on the fit
data (cumulative average, no gradient), so the eval-mode bridge matches what it learned.

The frozen networks' features are computed once (one pass over the loader, whatever
augmentation that pass draws) and cached when they fit in ``cache_mb``; every epoch then
costs only the bridges. Otherwise both networks run again at every epoch.
"""

from __future__ import annotations

import math
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from fcfd_viz.bn import cumulative_running_stats, freeze, frozen
from fcfd_viz.distill.bridges import make_bridges
from fcfd_viz.errors import UserError
from fcfd_viz.models.base import StagedNet


@dataclass
class FitConfig:
    """How post-hoc connectors are fitted (see the module docstring for the stopping rule)."""

    max_epochs: int = 400
    min_epochs: int = 10
    lr: float = 1e-2
    rel_tol: float = 1e-3
    patience: int = 8
    lr_drops: int = 1
    batch_size: int = 64
    weight_decay: float = 0.0
    seed: int = 0
    cache_mb: float = 2048.0

    def validate(self) -> None:
        if self.max_epochs < 1:
            raise UserError(f"fit max_epochs must be >= 1, got {self.max_epochs}")
        if self.lr <= 0 or not math.isfinite(self.lr):
            raise UserError(f"fit lr must be > 0, got {self.lr}")
        if self.patience < 1 or self.batch_size < 1 or self.lr_drops < 0 or self.rel_tol < 0:
            raise UserError("fit patience and batch_size must be >= 1, lr_drops and rel_tol >= 0")


@dataclass
class BridgeFit:
    """Convergence of one fitted bridge: the mean training MSE of every epoch."""

    curve: list[float]
    converged: bool  # stopped by the plateau rule (False: hit max_epochs)
    lr_drop_epochs: list[int] = field(default_factory=list)  # 1-based epochs where lr fell

    @property
    def epochs(self) -> int:
        return len(self.curve)

    @property
    def initial_loss(self) -> float:
        return self.curve[0]

    @property
    def final_loss(self) -> float:
        return self.curve[-1]

    def to_dict(self) -> dict:
        return {
            "epochs": self.epochs,
            "converged": self.converged,
            "initial_loss": self.initial_loss,
            "final_loss": self.final_loss,
            "lr_drop_epochs": list(self.lr_drop_epochs),
            "curve": list(self.curve),
        }

    @classmethod
    def from_dict(cls, d: dict) -> BridgeFit:
        return cls(list(d["curve"]), bool(d["converged"]), list(d.get("lr_drop_epochs", [])))


@dataclass
class FitInfo:
    """The fit of all connectors of one student, keyed ``"s2t/1"``, ``"t2s/1"`` ..."""

    bridges: dict[str, BridgeFit]
    num_images: int
    cached: bool
    seconds: float
    config: FitConfig

    @property
    def epochs(self) -> int:
        """Epochs of the longest-running bridge."""
        return max(b.epochs for b in self.bridges.values())

    @property
    def converged(self) -> bool:
        return all(b.converged for b in self.bridges.values())

    def to_dict(self, curves: bool = True) -> dict:
        out = {
            "epochs": self.epochs,
            "converged": self.converged,
            "num_images": self.num_images,
            "cached": self.cached,
            "seconds": self.seconds,
            "config": asdict(self.config),
            "bridges": {k: b.to_dict() for k, b in self.bridges.items()},
        }
        if not curves:
            for b in out["bridges"].values():
                b.pop("curve")
        return out

    @classmethod
    def from_dict(cls, d: dict) -> FitInfo:
        """Inverse of ``to_dict(curves=True)`` (to keep a fit next to its saved bridges)."""
        return cls(
            {k: BridgeFit.from_dict(b) for k, b in d["bridges"].items()},
            int(d["num_images"]),
            bool(d["cached"]),
            float(d["seconds"]),
            FitConfig(**d["config"]),
        )


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


class _Features:
    """Frozen teacher/student stage features over a loader: cached or recomputed per epoch."""

    def __init__(self, teacher, student, loader, input_shape, cfg: FitConfig, device) -> None:
        self.teacher, self.student, self.loader, self.device = teacher, student, loader, device
        self.batch_size = cfg.batch_size
        self.gen = torch.Generator().manual_seed(cfg.seed)
        per_image = sum(
            math.prod(s)
            for s in teacher.feature_shapes(input_shape) + student.feature_shapes(input_shape)
        )
        n = len(loader.dataset) if hasattr(loader, "dataset") else None
        self.cached = n is not None and n * per_image * 4 / 2**20 <= cfg.cache_mb
        self.t: list[Tensor] = []
        self.s: list[Tensor] = []
        self.n = 0
        if self.cached:
            ts, ss = [], []
            for t, s in self._from_loader():
                ts.append(t)
                ss.append(s)
            if not ts:
                raise UserError("the training loader for the connector fit is empty")
            self.t = [torch.cat([b[k] for b in ts]) for k in range(len(ts[0]))]
            self.s = [torch.cat([b[k] for b in ss]) for k in range(len(ss[0]))]
            self.n = len(self.t[0])

    @torch.no_grad()
    def _from_loader(self) -> Iterator[tuple[list[Tensor], list[Tensor]]]:
        for batch in self.loader:
            x = batch[0].to(self.device)
            yield self.teacher.forward_features(x), self.student.forward_features(x)

    def epoch(self, shuffle: bool = True) -> Iterator[tuple[list[Tensor], list[Tensor]]]:
        if not self.cached:
            n = 0
            for t, s in self._from_loader():
                n += len(t[0])
                yield t, s
            self.n = n
            return
        order = (
            torch.randperm(self.n, generator=self.gen) if shuffle else torch.arange(self.n)
        ).to(self.t[0].device)
        for i in range(0, self.n, self.batch_size):
            idx = order[i : i + self.batch_size]
            yield [f[idx] for f in self.t], [f[idx] for f in self.s]


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
    s2t.to(device).train()
    t2s.to(device).train()
    # (name, bridge, source is teacher?, stage)
    tasks = [(f"s2t/{k}", b, False, int(k)) for k, b in s2t.items()]
    tasks += [(f"t2s/{k}", b, True, int(k)) for k, b in t2s.items()]
    opt = torch.optim.Adam(
        [{"params": list(b.parameters()), "lr": cfg.lr} for _, b, _, _ in tasks],
        weight_decay=cfg.weight_decay,
    )
    rules = [_Plateau(cfg, g) for g in opt.param_groups]
    bar = None
    if progress:
        from tqdm.auto import tqdm

        bar = tqdm(total=cfg.max_epochs, desc=desc, unit="epoch", leave=False)
    with frozen(teacher), frozen(student):
        feats = _Features(teacher, student, loader, input_shape, cfg, device)
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
                    count += len(t[0])
                for j in active:
                    rules[j].update(float(sums[j] / max(1, count)))
                if bar is not None:
                    bar.update(1)
                    bar.set_postfix(
                        active=len(active), loss=f"{float(sums.sum() / max(1, count)):.4g}"
                    )
        finally:
            if bar is not None:
                bar.close()
        # each bridge's running BN statistics: the average over one pass of the fit data
        with cumulative_running_stats([b for _, b, _, _ in tasks]):
            for t, s in feats.epoch(shuffle=False):
                for _, bridge, from_t, k in tasks:
                    bridge(t[k] if from_t else s[k])
    freeze(s2t.eval())
    freeze(t2s.eval())
    info = FitInfo(
        bridges={
            name: BridgeFit(r.curve, r.done, r.drop_epochs) for (name, *_), r in zip(tasks, rules)
        },
        num_images=feats.n,
        cached=feats.cached,
        seconds=time.perf_counter() - t0,
        config=cfg,
    )
    return s2t, t2s, info
