"""Decoupled Knowledge Distillation (Zhao et al., CVPR 2022).

KD splits into a target-class term (TCKD: the binary "target vs the rest" distributions) and
a non-target term (NCKD: the distribution over the other classes); DKD weights them
``alpha`` and ``beta`` and ramps the sum over ``warmup_epochs``.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor

from fcfd_viz.distill.base import Distiller, MethodConfig, temperature_knob
from fcfd_viz.distill.knob import knob


@dataclass
class DKDConfig(MethodConfig):
    temperature: float = temperature_knob()
    alpha: float = knob(1.0, "weight of TCKD, the target-vs-rest term", low=0)
    beta: float = knob(8.0, "weight of NCKD, the term over the non-target classes", low=0)
    warmup_epochs: int = knob(
        20, "epochs over which the DKD terms ramp up linearly; 0: no ramp", low=0
    )


def dkd_terms(
    s_logits: Tensor, t_logits: Tensor, labels: Tensor, temperature: float
) -> tuple[Tensor, Tensor]:
    """(TCKD, NCKD), each ``KL(teacher || student) * T^2`` with batch mean. (N, K), (N, K), (N,)."""
    t = temperature
    gt = F.one_hot(labels, s_logits.shape[1]).bool()  # (N, K)
    p_s, p_t = F.softmax(s_logits / t, dim=1), F.softmax(t_logits / t, dim=1)
    # binary distributions [p(target), p(not target)]: (N, 2)
    b_s = torch.stack([(p_s * gt).sum(1), (p_s * ~gt).sum(1)], dim=1).clamp_min(1e-12)
    b_t = torch.stack([(p_t * gt).sum(1), (p_t * ~gt).sum(1)], dim=1).clamp_min(1e-12)
    tckd = (b_t * (b_t.log() - b_s.log())).sum(1).mean() * t * t
    # distributions over the non-target classes: mask the target logit out
    log_q_s = F.log_softmax(s_logits / t - 1000.0 * gt, dim=1)
    log_q_t = F.log_softmax(t_logits / t - 1000.0 * gt, dim=1)
    nckd = F.kl_div(log_q_s, log_q_t, log_target=True, reduction="batchmean") * t * t
    return tckd, nckd


def dkd_loss(
    s_logits: Tensor, t_logits: Tensor, labels: Tensor, cfg: DKDConfig, epoch: int
) -> dict[str, Tensor]:
    """The named DKD terms, warm-up included (epoch is 0-based)."""
    ramp = min(1.0, (epoch + 1) / cfg.warmup_epochs) if cfg.warmup_epochs > 0 else 1.0
    tckd, nckd = dkd_terms(s_logits, t_logits, labels, cfg.temperature)
    return {"dkd/tckd": ramp * cfg.alpha * tckd, "dkd/nckd": ramp * cfg.beta * nckd}


class DKD(Distiller):
    """CE + decoupled KD."""

    method = "dkd"
    Config = DKDConfig
    cfg: DKDConfig

    def forward_train(self, images: Tensor, labels: Tensor) -> tuple[Tensor, dict[str, Tensor]]:
        _, t_logits = self.teacher_outputs(images)
        logits = self.student(images)
        losses = {"ce": self.cfg.ce_weight * F.cross_entropy(logits, labels)}
        losses.update(dkd_loss(logits, t_logits, labels, self.cfg, self.epoch))
        return logits, losses
