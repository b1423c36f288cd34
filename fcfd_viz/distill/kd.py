"""Hinton et al. (2015) knowledge distillation: CE + T^2-scaled KL to the teacher's soft labels."""

from __future__ import annotations

from dataclasses import dataclass

import torch.nn.functional as F
from torch import Tensor

from fcfd_viz.distill.base import Distiller, MethodConfig, kd_loss, temperature_knob
from fcfd_viz.distill.knob import knob


@dataclass
class KDConfig(MethodConfig):
    temperature: float = temperature_knob()
    kd_weight: float = knob(
        1.0, "weight of the KD term, the KL to the teacher's softened output", low=0
    )


class KD(Distiller):
    """Logit distillation with temperature ``T``."""

    method = "kd"
    Config = KDConfig
    cfg: KDConfig

    def forward_train(self, images: Tensor, labels: Tensor) -> tuple[Tensor, dict[str, Tensor]]:
        _, t_logits = self.teacher_outputs(images)
        logits = self.student(images)
        return logits, {
            "ce": self.cfg.ce_weight * F.cross_entropy(logits, labels),
            "kd": self.cfg.kd_weight * kd_loss(logits, t_logits, self.cfg.temperature),
        }
