"""Training settings and their schedule: :class:`TrainConfig` (validated, one-line errors),
:func:`lr_at`, and what counts as a diverged run. Re-exported by :mod:`fcfd_viz.training.trainer`."""

from __future__ import annotations

import math
from dataclasses import dataclass

from fcfd_viz.errors import UserError
from fcfd_viz.io import checks
from fcfd_viz.io.checks import setting

# A step loss beyond this (or NaN/inf) stops training as diverged. Every loss here is a few
# units at the start (CE ~ ln K, KD x T^2 ~ tens); 1e6 is far past any run that recovers.
LOSS_LIMIT = 1e6
SCHEDULES = ("cosine", "step", "constant")
PRECISIONS = ("auto", "fp32", "bf16", "fp16")
AMP = ("auto", "bf16", "fp16", "off")  # --amp, the old name of --precision (off: fp32)


def precision_of_amp(amp: str) -> str:
    """The ``--precision`` of an old ``--amp`` value (``off`` is ``fp32``; others keep their name)."""
    return "fp32" if amp == "off" else amp


def upgrade_train(values: dict) -> dict:
    """A ``train`` section with an old ``amp`` key (config.json before --precision, an
    ``--amp`` flag) as ``precision``; both, disagreeing: a :class:`UserError`."""
    values = dict(values)
    amp = values.pop("amp", None)
    if amp is None:
        return values
    checks.choice("--amp", amp, AMP)
    new = precision_of_amp(amp)
    if values.setdefault("precision", new) != new:
        raise UserError(
            f"--amp {amp} and --precision {values['precision']} disagree; give only --precision"
        )
    return values


@dataclass
class TrainConfig:
    """Optimisation and runtime settings (SGD with momentum 0.9, Nesterov by default)."""

    epochs: int = setting(10, "number of epochs")
    lr: float = setting(0.05, "learning rate (at the global batch size)")
    momentum: float = setting(0.9, "SGD momentum")
    nesterov: bool = setting(True, "Nesterov momentum")
    weight_decay: float = setting(5e-4, "L2 weight decay")
    schedule: str = setting("cosine", "learning-rate schedule", choices=SCHEDULES)
    milestones: list[int] = setting(list, "step schedule: epochs where the lr is x --gamma")
    gamma: float = setting(0.1, "step schedule: lr factor at each milestone")
    warmup_epochs: int = setting(
        0, "epochs of lr warm-up before the schedule (linear, per step)", flag="--lr-warmup-epochs"
    )
    seed: int = setting(0, "seed of everything random (init, shuffling, augmentation, paths)")
    device: str = setting("auto", "auto, cpu, cuda, cuda:N")
    precision: str = setting(
        "auto",
        "autocast precision; auto: bf16 on CUDA (fp16 where bf16 is not supported), on CPU "
        "bf16 where it has bf16 hardware (avx512_bf16/amx_bf16), else fp32",
        choices=PRECISIONS,
    )
    amp: str | None = setting(None, "old name of --precision (off: fp32)", choices=AMP)
    channels_last: bool | None = setting(
        None,
        "channels_last memory format (default: on CUDA, on CPU with bf16/fp16, and on an x86 "
        "CPU in fp32 under --precision auto)",
    )
    compile: bool = setting(False, "torch.compile the training step")

    def validate(self) -> None:
        """Raise a one-line :class:`UserError` for a setting no run can use (NaN included)."""
        if not isinstance(self.epochs, int) or isinstance(self.epochs, bool):
            raise UserError(f"epochs must be an integer > 0, got {self.epochs!r}")
        if self.epochs <= 0:
            raise UserError(f"epochs must be > 0, got {self.epochs}")
        checks.number("--lr", self.lr, 0, strict=True)
        checks.number("momentum", self.momentum, 0)
        checks.number("--weight-decay", self.weight_decay, 0)
        checks.number("gamma", self.gamma, 0, strict=True)
        checks.integer("warmup_epochs", self.warmup_epochs, 0)
        checks.seed("--seed", self.seed)
        checks.choice("--schedule", self.schedule, SCHEDULES)
        if self.amp is not None:  # the old name, given in code: TrainConfig(amp="off")
            given = {"amp": self.amp} | (
                {} if self.precision == "auto" else {"precision": self.precision}
            )
            self.precision, self.amp = upgrade_train(given)["precision"], None
        checks.choice("--precision", self.precision, PRECISIONS)
        if not isinstance(self.milestones, list):
            raise UserError(f"--milestones must be a list of epochs, got {self.milestones!r}")
        for m in self.milestones:
            checks.integer("--milestones", m, 0)
        if not isinstance(self.device, str):
            raise UserError(f"--device must be a name (auto, cpu, cuda:N), got {self.device!r}")


def lr_at(cfg: TrainConfig, epoch: int, done: float = 1.0) -> float:
    """Learning rate for 0-based ``epoch``: warm-up, then the schedule.

    The warm-up ramps linearly per optimizer step: ``done`` is the fraction of the epoch's
    steps taken including this one (``(step + 1) / steps``), so the ramp ends at ``lr`` with
    the warm-up's last step (1.0: the epoch's last step, the value its record keeps). The
    schedule after it changes per epoch."""
    if epoch < cfg.warmup_epochs:
        return cfg.lr * (epoch + done) / cfg.warmup_epochs
    if cfg.schedule == "step":
        return cfg.lr * cfg.gamma ** sum(epoch >= m for m in cfg.milestones)
    if cfg.schedule == "cosine":
        span = max(1, cfg.epochs - cfg.warmup_epochs)
        return 0.5 * cfg.lr * (1 + math.cos(math.pi * (epoch - cfg.warmup_epochs) / span))
    return cfg.lr
