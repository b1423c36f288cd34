"""FCFD for detection (the method doc's "Detection" section), on the FPN outputs.

Per FPN level a student->teacher and a teacher->student bridge (3x3 conv without bias +
BatchNorm, no activation: :class:`~fcfd_viz.distill.bridges.Bridge`). Terms per step:

- ``app/p2`` .. ``app/p6``: MSE(bridge_s2t(student level), teacher level) x ``app_weight``;
- the ROI box head four times at the *same* sampled proposals (the student's RPN +
  ``select_training_samples``): student head on student FPN (``s``), teacher head on teacher
  FPN (the target), teacher head on the bridged student FPN (``st``), student head on the
  bridged teacher FPN (``ts``); for x in s, st, ts: ``roi_kd/x`` = KL(class logits vs the
  teacher's, T) x ``kd_weight`` and ``roi_l2/x`` = MSE(box deltas vs the teacher's) x
  ``roi_l2_weight``;
- the student's ``rpn_cls``, ``rpn_box``, ``roi_cls``, ``roi_box``.

Gradients: ``st`` and ``app`` reach the student backbone / FPN and the s2t bridges through
the frozen teacher head; ``ts`` reaches the student's box head and the t2s bridges only.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch.nn.functional as F
from torch import nn

from fcfd_viz.detection.base import (
    DetectionConfig,
    DetectionDistiller,
    Features,
    mimic,
    roi_l2_knob,
    run_head,
    temperature_knob,
)
from fcfd_viz.detection.models import LEVEL_NAMES
from fcfd_viz.distill.bridges import Bridge
from fcfd_viz.distill.knob import knob


@dataclass
class DetFCFDConfig(DetectionConfig):
    temperature: float = temperature_knob()
    app_weight: float = knob(
        1.0,
        "detection: weight of the per-level appearance MSE (bridged student vs teacher)",
        low=0,
    )
    kd_weight: float = knob(
        1.0, "weight of the KD term, the KL to the teacher's softened output", low=0
    )
    roi_l2_weight: float = roi_l2_knob()


def level_bridges(src: int, dst: int, levels) -> nn.ModuleDict:
    """One same-size bridge per FPN level: ``src`` -> ``dst`` channels, keyed by level."""
    return nn.ModuleDict({k: Bridge((src, 1, 1), (dst, 1, 1), leaky=False) for k in levels})


class DetectionFCFD(DetectionDistiller):
    """Function-consistent feature distillation on Faster R-CNN + FPN."""

    method = "fcfd"
    Config = DetFCFDConfig

    def __init__(self, student, teacher=None, cfg=None, input_shape=(3, 64, 64)) -> None:
        super().__init__(student, teacher, cfg, input_shape)
        levels = list(LEVEL_NAMES)
        cs, ct = student.backbone.out_channels, teacher.backbone.out_channels
        self.s2t = level_bridges(cs, ct, levels)  # (B, C_s, H, W) -> (B, C_t, H, W)
        self.t2s = level_bridges(ct, cs, levels)

    def bridged(self, feats: Features, bridges: nn.ModuleDict) -> Features:
        """Every level through its bridge; shapes (B, C_other, H_l, W_l), same keys."""
        return {k: bridges[k](v) for k, v in feats.items()}

    def forward_train(self, images, targets):
        cfg = self.cfg
        p = self.student_pass(images, targets)
        t_feats, t_logits, t_deltas = self.teacher_pass(p)
        st_feats = self.bridged(p.feats, self.s2t)
        ts_feats = self.bridged(t_feats, self.t2s)
        losses = dict(p.losses)
        for k, name in LEVEL_NAMES.items():
            losses[f"app/{name}"] = cfg.app_weight * F.mse_loss(st_feats[k], t_feats[k])
        heads = {
            "s": (p.logits, p.deltas),
            "st": run_head(self.teacher, st_feats, p.proposals, p.image_sizes),
            "ts": run_head(self.student, ts_feats, p.proposals, p.image_sizes),
        }
        for x, (logits, deltas) in heads.items():
            kl, l2 = mimic(logits, deltas, t_logits, t_deltas, cfg.temperature)
            losses[f"roi_kd/{x}"] = cfg.kd_weight * kl
            losses[f"roi_l2/{x}"] = cfg.roi_l2_weight * l2
        return None, losses
