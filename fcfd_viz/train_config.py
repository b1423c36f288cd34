"""Training settings and their schedule: :class:`TrainConfig` and :func:`lr_at`.
Re-exported by :mod:`fcfd_viz.train`."""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from fcfd_viz.errors import UserError


@dataclass
class TrainConfig:
    """Optimisation and runtime settings (SGD with momentum 0.9, Nesterov by default)."""

    epochs: int = 10
    lr: float = 0.05
    momentum: float = 0.9
    nesterov: bool = True
    weight_decay: float = 5e-4
    schedule: str = "cosine"  # "cosine" | "step" | "constant"
    milestones: list[int] = field(default_factory=list)  # step schedule: lr x gamma at these epochs
    gamma: float = 0.1
    warmup_epochs: int = 0
    seed: int = 0
    device: str = "auto"  # "auto" | "cpu" | "cuda" | "cuda:1" ...
    amp: str = "auto"  # "auto" (bf16 on CUDA where supported) | "bf16" | "fp16" | "off"
    channels_last: bool | None = None  # None: on for CUDA
    compile: bool = False

    def validate(self) -> None:
        if self.epochs <= 0:
            raise UserError(f"epochs must be > 0, got {self.epochs}")
        if self.lr <= 0:
            raise UserError(f"lr must be > 0, got {self.lr}")
        if self.schedule not in ("cosine", "step", "constant"):
            raise UserError(f"schedule must be cosine, step or constant, got {self.schedule!r}")
        if self.amp not in ("auto", "bf16", "fp16", "off"):
            raise UserError(f"amp must be auto, bf16, fp16 or off, got {self.amp!r}")


def lr_at(cfg: TrainConfig, epoch: int) -> float:
    """Learning rate for 0-based ``epoch``: warm-up, then the schedule."""
    if epoch < cfg.warmup_epochs:
        return cfg.lr * (epoch + 1) / cfg.warmup_epochs
    if cfg.schedule == "step":
        return cfg.lr * cfg.gamma ** sum(epoch >= m for m in cfg.milestones)
    if cfg.schedule == "cosine":
        span = max(1, cfg.epochs - cfg.warmup_epochs)
        return 0.5 * cfg.lr * (1 + math.cos(math.pi * (epoch - cfg.warmup_epochs) / span))
    return cfg.lr
