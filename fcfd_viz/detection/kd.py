"""Plain KD for detection: the student's box head mimics the teacher's at the same
proposals (KL of class logits at T; optionally the MSE of box deltas), plus the student's
own RPN and ROI losses. Terms: ``roi_kd/s``, ``roi_l2/s`` and the four of the student."""

from __future__ import annotations

from dataclasses import dataclass

from fcfd_viz.detection.base import (
    DetectionConfig,
    DetectionDistiller,
    mimic,
    roi_l2_knob,
    temperature_knob,
)
from fcfd_viz.distill.knob import knob


@dataclass
class DetKDConfig(DetectionConfig):
    temperature: float = temperature_knob()
    kd_weight: float = knob(
        1.0, "weight of the KD term, the KL to the teacher's softened output", low=0
    )
    roi_l2_weight: float = roi_l2_knob()


class DetectionKD(DetectionDistiller):
    """Logit (and optionally box) distillation of the ROI head."""

    method = "kd"
    Config = DetKDConfig

    def forward_train(self, images, targets):
        p = self.student_pass(images, targets)
        _, t_logits, t_deltas = self.teacher_pass(p)
        kl, l2 = mimic(p.logits, p.deltas, t_logits, t_deltas, self.cfg.temperature)
        losses = dict(p.losses)
        losses["roi_kd/s"] = self.cfg.kd_weight * kl
        losses["roi_l2/s"] = self.cfg.roi_l2_weight * l2
        return None, losses
