"""The detection distiller: :class:`~fcfd_viz.distill.base.Distiller`'s contract on
torchvision detectors.

``forward_train(images, targets) -> (None, losses)``: ``images`` a list of (3, H, W)
tensors, ``targets`` a list of ``{"boxes", "labels"}``; ``losses`` maps a name to a scalar
tensor that the trainer sums and logs. Every method starts from :meth:`DetectionDistiller.
student_pass`: the student's transform, FPN, RPN and the ROI sampling, whose proposals the
methods then reuse for every head they run. The student's own losses are ``rpn_cls``,
``rpn_box`` (RPN objectness and box regression) and ``roi_cls``, ``roi_box`` (the box
head's classification and regression, torchvision's ``fastrcnn_loss``).

The teacher is frozen (no gradients, eval mode: BN running statistics); bridges and other
extras are trained with the student and saved in its checkpoints, as in classification.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, ClassVar, cast

import torch
import torch.nn.functional as F
from torch import Tensor
from torchvision.models.detection.roi_heads import fastrcnn_loss

from fcfd_viz.distill.base import Distiller, MethodConfig, kd_loss
from fcfd_viz.distill.knob import knob
from fcfd_viz.errors import UserError

if TYPE_CHECKING:
    from fcfd_viz.detection.models import Detector

Features = dict[str, Tensor]  # FPN level name ("0".."3", "pool") -> (B, C, H_l, W_l)


@dataclass
class DetectionConfig:
    """Knobs shared by every detection method (none yet); subclasses add theirs with
    :func:`~fcfd_viz.distill.knob.knob`, as classification configs do."""

    validate = MethodConfig.validate  # every knob against its declaration


def temperature_knob(default: float = 1.0) -> float:
    """The ROI-logit KL's temperature (the paper's detection value is 1)."""
    return knob(
        default,
        "softmax temperature T of the distillation KL, which is scaled by T^2",
        low=0,
        strict=True,
    )


def roi_l2_knob() -> float:
    """The weight of the box-delta MSE to the teacher (1 for R101 -> R18 in the paper)."""
    return knob(0.0, "detection: weight of the MSE of ROI box deltas to the teacher's", low=0)


@dataclass
class StudentPass:
    """What the student computed for one batch: the FPN, the sampled proposals (one
    (R_i, 4) tensor per image), the image sizes after the transform, the sampled labels and
    regression targets, and the student's own four losses."""

    images: Tensor  # (B, 3, H, W): normalised, padded batch (the teacher takes it as is)
    feats: Features
    proposals: list[Tensor]
    image_sizes: list[tuple[int, int]]
    losses: dict[str, Tensor]
    logits: Tensor  # (R, K): the student's box head on its own FPN
    deltas: Tensor  # (R, 4K)


def run_head(net, feats: Features, proposals: list[Tensor], sizes) -> tuple[Tensor, Tensor]:
    """``net``'s ROI box head on ``feats`` at ``proposals``: class logits (R, K) and box
    deltas (R, 4K), R = all images' proposals."""
    heads = net.roi_heads
    pooled = heads.box_roi_pool(feats, proposals, sizes)  # (R, C, 7, 7)
    return heads.box_predictor(heads.box_head(pooled))


def mimic(logits: Tensor, deltas: Tensor, t_logits: Tensor, t_deltas: Tensor, T: float):
    """(KL of class logits vs the teacher's at T, MSE of box deltas vs the teacher's)."""
    return kd_loss(logits, t_logits, T), F.mse_loss(deltas, t_deltas)


class DetectionDistiller(Distiller):
    """Base of every detection method: ``student`` and ``teacher`` are
    :class:`~fcfd_viz.detection.models.Detector`; :meth:`forward` without targets returns
    the student's detections (eval mode) as torchvision does."""

    method: ClassVar[str] = "det-base"
    Config: ClassVar[type] = DetectionConfig
    task: ClassVar[str] = "detection"
    student: Detector
    teacher: Detector | None

    def __init__(self, student, teacher=None, cfg=None, input_shape=(3, 64, 64)) -> None:
        super().__init__(student, teacher, cfg, input_shape)
        if teacher is not None:
            from fcfd_viz.detection.models import check_pair

            check_pair(teacher, student)

    def need_teacher(self) -> Detector:
        return cast("Detector", super().need_teacher())

    @classmethod
    def check_teacher(cls, teacher) -> None:
        if cls.needs_teacher and teacher is None:
            raise UserError(
                f"method {cls.method!r} needs a teacher checkpoint: pass --teacher CKPT "
                "(train one with `fcfd train-teacher --task detection`)"
            )

    def forward(self, images, targets=None):
        """``targets`` given: :meth:`forward_train`; else the student's output."""
        if targets is not None:
            return self.forward_train(images, targets)
        return self.student(images)

    def student_pass(self, images: list[Tensor], targets: list[dict]) -> StudentPass:
        """The student's training forward, split where the methods need its parts."""
        s = self.student
        batch, targets = s.transform(images, targets)
        feats = s.backbone(batch.tensors)
        proposals, rpn = s.rpn(batch, feats, targets)
        proposals, _, labels, reg_targets = s.roi_heads.select_training_samples(proposals, targets)
        logits, deltas = run_head(s, feats, proposals, batch.image_sizes)
        roi_cls, roi_box = fastrcnn_loss(logits, deltas, labels, reg_targets)
        losses = {
            "rpn_cls": rpn["loss_objectness"],
            "rpn_box": rpn["loss_rpn_box_reg"],
            "roi_cls": roi_cls,
            "roi_box": roi_box,
        }
        return StudentPass(
            batch.tensors, feats, proposals, batch.image_sizes, losses, logits, deltas
        )

    @torch.no_grad()
    def teacher_pass(self, p: StudentPass) -> tuple[Features, Tensor, Tensor]:
        """The teacher's FPN on the student's batch and its head at the student's proposals:
        (features, logits (R, K), deltas (R, 4K)); no graph."""
        teacher = self.need_teacher()
        feats = teacher.backbone(p.images)
        return (feats, *run_head(teacher, feats, p.proposals, p.image_sizes))


class DetectionCE(DetectionDistiller):
    """No teacher: the detector's own RPN and ROI losses (what ``train-teacher`` runs; named
    ``ce`` like classification's teacher training)."""

    method = "ce"
    needs_teacher = False

    def forward_train(self, images, targets):
        return None, self.student_pass(images, targets).losses
