"""The central abstraction: a :class:`Distiller` holds a student and a frozen teacher.

``forward_train(images, labels)`` returns ``(student_logits, losses)`` where ``losses`` maps a
name (``ce``, ``kd``, ``app/stage2``, ``func_kl/TTSS`` ...) to a scalar tensor. The trainer
sums the dict and logs every term; it knows nothing else about the method.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import ClassVar

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from fcfd_viz.distill.knob import config_knobs, knob
from fcfd_viz.errors import UserError
from fcfd_viz.models.base import StagedNet
from fcfd_viz.models.batchnorm import freeze, keep_running_stats


@dataclass
class MethodConfig:
    """Knobs shared by every method; subclasses add their own, each declared with
    :func:`~fcfd_viz.distill.knob.knob` (default, help, bounds or choices)."""

    ce_weight: float = knob(1.0, "weight of the cross-entropy on the labels", low=0)

    def validate(self) -> None:
        """Every knob's value against its declaration: one :class:`UserError` line naming
        the first knob whose value is of the wrong type, out of bounds or not a choice."""
        for k in config_knobs(type(self)):
            k.check(getattr(self, k.name))


def temperature_knob(default: float = 4.0) -> float:
    """The softmax temperature field that KD-style methods share."""
    return knob(
        default,
        "softmax temperature T of the distillation KL, which is scaled by T^2",
        low=0,
        strict=True,
    )


def kd_loss(student_logits: Tensor, teacher_logits: Tensor, temperature: float) -> Tensor:
    """Hinton KD: ``KL(softmax(t/T) || softmax(s/T)) * T^2``, batch mean. (N, K), (N, K) -> ()."""
    t = temperature
    log_p_s = F.log_softmax(student_logits / t, dim=1)
    log_p_t = F.log_softmax(teacher_logits / t, dim=1)
    return F.kl_div(log_p_s, log_p_t, log_target=True, reduction="batchmean") * (t * t)


class Distiller(nn.Module):
    """Base class of every method. Subclasses set ``method`` and ``Config`` and implement
    :meth:`forward_train`.

    Modules registered on the distiller other than ``student`` and ``teacher`` (bridges,
    connectors) are *extras*: they are trained with the student and saved with it.
    """

    method: ClassVar[str] = "base"
    Config: ClassVar[type[MethodConfig]] = MethodConfig
    needs_teacher: ClassVar[bool] = True  # the one answer; check_teacher the one check of it

    @classmethod
    def check_teacher(cls, teacher) -> None:
        """The one check that a method distilling from a teacher was given one (the
        distiller, the pipeline and the app's form all call it before any work)."""
        if cls.needs_teacher and teacher is None:
            raise UserError(
                f"method {cls.method!r} needs a teacher checkpoint: pass --teacher CKPT "
                "(train one with `fcfd train-teacher`)"
            )

    def __init__(
        self,
        student: StagedNet,
        teacher: StagedNet | None = None,
        cfg: MethodConfig | None = None,
        input_shape: tuple[int, int, int] = (3, 32, 32),
    ):
        super().__init__()
        self.input_shape = tuple(input_shape)  # (C, H, W): methods with bridges size them from it
        self.check_teacher(teacher)
        self.cfg = cfg if cfg is not None else self.Config()
        self.cfg.validate()  # a config built by hand gets the checks make_config gives
        self.student = student
        self.teacher = freeze(teacher) if teacher is not None else None
        self.epoch, self.epochs = 0, 1
        # teacher BN: "frozen" = eval mode (running stats); "batch" = batch statistics, as the
        # FCFD authors' code leaves the teacher in train mode. Running stats never change.
        self.teacher_bn = "frozen"
        if self.teacher is not None:
            keep_running_stats(self.teacher)

    # -- the trainer's interface -------------------------------------------------------
    def forward_train(self, images: Tensor, labels: Tensor) -> tuple[Tensor, dict[str, Tensor]]:
        raise NotImplementedError

    def forward(self, images: Tensor, labels: Tensor | None = None):
        """``labels`` given: :meth:`forward_train` (so DDP wraps the whole step); else student logits."""
        if labels is not None:
            return self.forward_train(images, labels)
        return self.student(images)

    def start_epoch(self, epoch: int, epochs: int) -> None:
        """Called by the trainer before each epoch (0-based): for warm-ups and ramps."""
        self.epoch, self.epochs = epoch, epochs

    def train(self, mode: bool = True) -> Distiller:
        super().train(mode)
        if self.teacher is not None:
            self.teacher.train(mode and self.teacher_bn == "batch")
        return self

    # -- saving --------------------------------------------------------------------------
    def extras(self) -> dict[str, nn.Module]:
        """Trainable modules besides the student (bridges, connectors)."""
        return {n: m for n, m in self.named_children() if n not in ("student", "teacher")}

    def checkpoint_state(self) -> dict:
        """What a checkpoint keeps of this distiller: the student (spec and weights), the
        extra modules (bridges, connectors), the method's name and its config."""
        return {
            "model": self.student.spec(),
            "state_dict": self.student.state_dict(),
            "extras": self.extras_state_dict(),
            "method": self.method,
            "method_config": self.config_dict(),
        }

    def load_checkpoint_state(self, ckpt: dict) -> None:
        """Load what :meth:`checkpoint_state` saved: student weights and extra modules.

        Bridges saved before the stage-cut change are refused when either network's cuts
        moved (:func:`fcfd_viz.models.legacy.check_extras`).
        """
        from fcfd_viz.models import legacy

        teacher_arch = self.teacher.arch if self.teacher is not None else None
        legacy.check_extras(ckpt, self.student.arch, teacher_arch)
        self.student.load_state_dict(ckpt["state_dict"])
        self.load_extras_state_dict(ckpt.get("extras", {}))

    def extras_state_dict(self) -> dict[str, dict[str, Tensor]]:
        return {n: m.state_dict() for n, m in self.extras().items()}

    def load_extras_state_dict(self, state: dict[str, dict[str, Tensor]]) -> None:
        for n, m in self.extras().items():
            if n in state:
                m.load_state_dict(state[n])

    def trainable_parameters(self) -> list[nn.Parameter]:
        params = list(self.student.parameters())
        for m in self.extras().values():
            params += list(m.parameters())
        return [p for p in params if p.requires_grad]

    def config_dict(self) -> dict:
        """The method's knobs by name (``method_config`` in config.json and checkpoints): they
        load back into the same config on ``--resume``. The name is kept apart, in ``method``."""
        return asdict(self.cfg)

    @torch.no_grad()
    def teacher_outputs(self, images: Tensor) -> tuple[list[Tensor], Tensor]:
        """Teacher stage features and logits (no graph: the teacher is frozen)."""
        feats = self.teacher.forward_features(images)
        return feats, self.teacher.head(feats[-1])
