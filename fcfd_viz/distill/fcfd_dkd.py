"""FCFD + DKD: FCFD's feature and mixed-path terms with DKD as the student's logit term.

The paper notes FCFD combines with logit methods; here only the student's own KD term is
replaced by DKD (TCKD + NCKD). Mixed-path outputs keep the plain KD pull towards the
teacher, which is what "function consistent" measures.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch.nn.functional as F
from torch import Tensor

from fcfd_viz.distill.dkd import DKDConfig, dkd_loss
from fcfd_viz.distill.fcfd import FCFD, FCFDConfig


@dataclass
class FCFDDKDConfig(DKDConfig, FCFDConfig):
    """FCFD's knobs and DKD's (``alpha``, ``beta``, ``warmup_epochs``), declared where they are."""


class FCFDDKD(FCFD):
    method = "fcfd+dkd"
    Config = FCFDDKDConfig
    cfg: FCFDDKDConfig

    def logit_losses(self, s_logits: Tensor, t_logits: Tensor, labels: Tensor) -> dict[str, Tensor]:
        c = self.cfg  # a DKDConfig too: DKD's loss reads its knobs from it
        return {
            "ce": c.ce_weight * F.cross_entropy(s_logits, labels),
            **dkd_loss(s_logits, t_logits, labels, c, self.epoch),
        }
