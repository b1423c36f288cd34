"""FitNets (Romero et al., 2015): a hint loss at one stage through a connector, plus CE."""

from __future__ import annotations

from dataclasses import dataclass

import torch.nn.functional as F
from torch import Tensor

from fcfd_viz.distill.base import Distiller, MethodConfig
from fcfd_viz.distill.bridges import make_bridges
from fcfd_viz.distill.knob import knob
from fcfd_viz.errors import UserError


@dataclass
class FitNetConfig(MethodConfig):
    """The upper bound of ``hint_stage`` depends on the pair: the distiller checks it."""

    hint_stage: int = knob(
        -1, "stage whose feature the hint matches; -1: the middle stage, FitNets' choice", low=-1
    )
    hint_weight: float = knob(
        1.0, "weight of the hint, the MSE of the connected student feature to the teacher's", low=0
    )


class FitNet(Distiller):
    """CE + ``MSE(connector(s_k), t_k)`` at the hint stage k; the connector is an s->t bridge."""

    method = "fitnet"
    Config = FitNetConfig
    cfg: FitNetConfig

    def __init__(
        self, student, teacher=None, cfg: FitNetConfig | None = None, input_shape=(3, 32, 32)
    ):
        super().__init__(student, teacher, cfg, input_shape)
        s_shapes = student.feature_shapes(self.input_shape)
        n = len(s_shapes)
        k = self.cfg.hint_stage if self.cfg.hint_stage >= 0 else n // 2
        if not 1 <= k < n:
            raise UserError(
                f"hint_stage must be in 1..{n - 1} for this pair, got {self.cfg.hint_stage}"
            )
        self.hint_stage = k
        teacher = self.need_teacher()
        self.s2t = make_bridges(
            s_shapes, teacher.feature_shapes(self.input_shape), teacher.post_relu, [k]
        )

    def forward_train(self, images: Tensor, labels: Tensor) -> tuple[Tensor, dict[str, Tensor]]:
        k = self.hint_stage
        t_feats, _ = self.teacher_outputs(images)
        s_feats = self.student.forward_features(images)
        logits = self.student.head(s_feats[-1])
        return logits, {
            "ce": self.cfg.ce_weight * F.cross_entropy(logits, labels),
            f"hint/stage{k}": self.cfg.hint_weight
            * F.mse_loss(self.s2t[str(k)](s_feats[k]), t_feats[k]),
        }
