"""Plain cross-entropy training: the no-teacher baseline (and how teachers are trained)."""

from __future__ import annotations

import torch.nn.functional as F
from torch import Tensor

from fcfd_viz.distill.base import Distiller, MethodConfig


class CE(Distiller):
    """Student trained on labels alone."""

    method = "ce"
    Config = MethodConfig
    needs_teacher = False

    def forward_train(self, images: Tensor, labels: Tensor) -> tuple[Tensor, dict[str, Tensor]]:
        logits = self.student(images)  # (N, K)
        return logits, {"ce": self.cfg.ce_weight * F.cross_entropy(logits, labels)}
