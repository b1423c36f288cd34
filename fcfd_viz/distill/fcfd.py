"""Function-Consistent Feature Distillation (Liu et al., ICLR 2023).

Per step, besides CE + KD on the student's logits:

* appearance: ``MSE(bridge_s2t[k](s_k), t_k)`` at every stage k after the stem, plus the MSE of
  the relu+pooled vectors at the last stage (``app/pooled``);
* a few sampled mixed paths (see :mod:`fcfd_viz.distill.paths`): a student->teacher path
  runs the teacher's remaining stages on the bridged student feature and pulls each of those
  teacher-space features to the teacher's (``func_l2/<path>/stage<j>``), its final feature
  also as relu+pooled vectors (``func_l2_pooled/<path>``: as in the authors' code, the pooled
  MSE covers every teacher-space final feature); every path's output is distilled towards
  the teacher's logits (``func_kl/<path>``).

The feature terms share one weight, ramped linearly over ``feat_warmup_epochs``. Shared
prefixes are computed once: a path's prefix *is* the pure student or teacher pass, and the
bridged student feature of an s->t path is the one the appearance term already computed.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor

from fcfd_viz.distill.base import Distiller, kd_loss
from fcfd_viz.distill.bridges import make_bridges
from fcfd_viz.distill.kd import KDConfig
from fcfd_viz.distill.knob import knob
from fcfd_viz.distill.paths import MODES, MixedPath, candidates, sample_paths
from fcfd_viz.models.batchnorm import running_stats_frozen


@dataclass
class FCFDConfig(KDConfig):
    """FCFD knobs. Defaults suit digits; the CIFAR/ImageNet presets set the authors' values.

    ``teacher_bn``: ``frozen`` (default) runs the teacher in eval mode, so the function the
    student is made consistent with is the one the teacher computes at inference, and the
    bridges learn to feed an eval-mode teacher tail (what analysis and deployment see).
    ``batch`` reproduces the authors' code (teacher BN on batch statistics). Either way the
    teacher's running statistics never change.
    """

    feat_weight: float = knob(
        0.02,
        "weight of the feature terms, appearance and function L2, ramped up over "
        "feat_warmup_epochs",
        low=0,
    )
    feat_warmup_epochs: int = knob(
        20, "epochs over which feat_weight ramps up linearly; 0: no ramp", low=0
    )
    mix_weight: float = knob(1.0, "weight of each mixed path's KL to the teacher's output", low=0)
    paths: str = knob(
        "bi",
        "mixed paths drawn from: bi both directions, s2t student to teacher, t2s teacher to "
        "student, nomix none",
        choices=MODES,
    )
    num_paths: int = knob(2, "distinct mixed paths drawn per step", low=1)
    teacher_bn: str = knob(
        "frozen",
        "teacher BatchNorm in training: frozen runs it in eval mode, batch on batch statistics "
        "as the authors' code does",
        choices=("frozen", "batch"),
    )


class FCFD(Distiller):
    """FCFD with KD on the student's logits (see module docstring)."""

    method = "fcfd"
    Config = FCFDConfig

    def __init__(
        self, student, teacher=None, cfg: FCFDConfig | None = None, input_shape=(3, 32, 32)
    ):
        super().__init__(student, teacher, cfg, input_shape)
        cfg = self.cfg
        self.teacher_bn = cfg.teacher_bn
        s_shapes = student.feature_shapes(self.input_shape)
        t_shapes = self.teacher.feature_shapes(self.input_shape)
        n = len(s_shapes)
        self.s2t = make_bridges(s_shapes, t_shapes, self.teacher.post_relu, range(1, n))
        # the t->s bridge of the last stage would feed no path: it is not built
        self.t2s = make_bridges(t_shapes, s_shapes, student.post_relu, range(1, n - 1))
        self.paths = candidates(n, cfg.paths)
        self.path_rng = torch.Generator()

    def start_epoch(self, epoch: int, epochs: int) -> None:
        super().start_epoch(epoch, epochs)
        # path draws depend only on the trainer's per-epoch seed: identical on every DDP rank
        self.path_rng.manual_seed(torch.initial_seed())

    def feat_weight(self) -> float:
        ramp = (
            min(1.0, (self.epoch + 1) / self.cfg.feat_warmup_epochs)
            if self.cfg.feat_warmup_epochs > 0
            else 1.0
        )
        return self.cfg.feat_weight * ramp

    def logit_losses(self, s_logits: Tensor, t_logits: Tensor, labels: Tensor) -> dict[str, Tensor]:
        """The student's own logit terms (CE + KD here; FCFD+DKD swaps KD for DKD)."""
        return {
            "ce": self.cfg.ce_weight * F.cross_entropy(s_logits, labels),
            "kd": self.cfg.kd_weight * kd_loss(s_logits, t_logits, self.cfg.temperature),
        }

    def sample(self) -> list[MixedPath]:
        return sample_paths(self.paths, self.cfg.num_paths, self.path_rng)

    def forward_train(self, images: Tensor, labels: Tensor) -> tuple[Tensor, dict[str, Tensor]]:
        student, teacher, cfg = self.student, self.teacher, self.cfg
        t_feats, t_logits = self.teacher_outputs(
            images
        )  # no graph: list of (N, C_k, H_k, W_k), (N, K)
        s_feats = student.forward_features(images)
        s_logits = student.head(s_feats[-1])  # (N, K)
        losses = self.logit_losses(s_logits, t_logits, labels)
        w = self.feat_weight()
        last = len(s_feats) - 1
        bridged = {k: self.s2t[str(k)](s_feats[k]) for k in range(1, last + 1)}  # teacher space
        for k, f in bridged.items():
            losses[f"app/stage{k}"] = w * F.mse_loss(f, t_feats[k])
        t_pooled = teacher.head.pooled(t_feats[last])  # (N, C_T)
        losses["app/pooled"] = w * F.mse_loss(teacher.head.pooled(bridged[last]), t_pooled)
        for path in self.sample():
            k = path.switch
            if path.direction == "s2t":
                f = bridged[k]
                for j in range(k + 1, last + 1):
                    f = teacher.stages[j](f)  # grads reach f only: teacher weights are frozen
                    losses[f"func_l2/{path.name}/stage{j}"] = w * F.mse_loss(f, t_feats[j])
                pooled = teacher.head.pooled(f)  # (N, C_T)
                losses[f"func_l2_pooled/{path.name}"] = w * F.mse_loss(pooled, t_pooled)
                out = teacher.head.fc(pooled)
            else:
                f = self.t2s[str(k)](t_feats[k])
                with running_stats_frozen(student):
                    out = student.forward_from(f, k + 1)
            losses[f"func_kl/{path.name}"] = cfg.mix_weight * kd_loss(
                out, t_logits, cfg.temperature
            )
        return s_logits, losses
