"""The functional gap for one picture: what the teacher predicts from its own stage feature vs
from each student's feature carried over by a bridge.

For a test image ``x`` and a stage ``k``, with every network and bridge in eval mode:

* ``teacher``: ``softmax(T(x))``, the teacher from its own feature;
* ``bridged[view]``: ``softmax(T_tail_k(s2t[k](S_k(x))))``, the teacher's remaining stages and
  head on the student's bridged feature, for each view of :meth:`FunctionalGap.views`
  (``"kd (fitted)"``, ``"fcfd (own bridges)"``, ...);
* ``kl[view]``: ``KL(bridged || teacher)``, this image's share of the functional gap;
* ``student[label]``: the student's own prediction, for reference.

>>> pred = bridged_predictions(gap, image, stage=2)            # doctest: +SKIP
>>> pred.kl["kd (fitted)"], pred.top_class("fcfd (fitted)")     # doctest: +SKIP
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass, field, replace

import torch
from torch import Tensor

from fcfd_viz.analysis.base import Result
from fcfd_viz.analysis.gap.functional import FunctionalGap
from fcfd_viz.analysis.gap.result import OWN
from fcfd_viz.errors import UserError
from fcfd_viz.models.batchnorm import frozen
from fcfd_viz.training.runtime import full_precision


@dataclass
class ImagePredictions(Result):
    """Class probabilities for one image at one stage (every tensor (C,), float64)."""

    stage: int
    teacher: Tensor
    bridged: dict[str, Tensor] = field(default_factory=dict)
    kl: dict[str, float] = field(default_factory=dict)
    student: dict[str, Tensor] = field(default_factory=dict)
    label: int | None = None

    def to_dict(self) -> dict:
        return {
            "stage": self.stage,
            "label": self.label,
            "teacher": self.teacher.tolist(),
            "bridged": {k: v.tolist() for k, v in self.bridged.items()},
            "kl": dict(self.kl),
            "student": {k: v.tolist() for k, v in self.student.items()},
        }

    @classmethod
    def from_dict(cls, d: dict) -> ImagePredictions:
        def t(v) -> Tensor:
            return torch.tensor(v, dtype=torch.float64)

        return cls(
            int(d["stage"]),
            t(d["teacher"]),
            {k: t(v) for k, v in d["bridged"].items()},
            {k: float(v) for k, v in d["kl"].items()},
            {k: t(v) for k, v in d["student"].items()},
            d.get("label"),
        )

    def top_class(self, view: str | None = None) -> int:
        """The arg-max class of ``view``'s bridged prediction (the teacher's own when None)."""
        return int((self.teacher if view is None else self.bridged[view]).argmax())

    def without_own(self, keep: bool = False) -> ImagePredictions:
        """These predictions without the views through a student's own bridges (unless
        ``keep``), as :func:`~fcfd_viz.analysis.gap.seeds.without_own` for a gap result."""
        if keep:
            return self
        views = {v for v in self.bridged if not v.endswith(f"({OWN})")}
        return replace(
            self,
            bridged={v: p for v, p in self.bridged.items() if v in views},
            kl={v: k for v, k in self.kl.items() if v in views},
        )

    def merged(self, other: ImagePredictions) -> ImagePredictions:
        """Both predictions' views side by side (same image, stage and teacher)."""
        if other.stage != self.stage or not torch.allclose(other.teacher, self.teacher):
            raise UserError("predictions of different images, stages or teachers cannot be merged")
        return ImagePredictions(
            self.stage,
            self.teacher,
            {**self.bridged, **other.bridged},
            {**self.kl, **other.kl},
            {**self.student, **other.student},
            self.label,
        )


@torch.no_grad()
def bridged_predictions(
    gap: FunctionalGap, image: Tensor, stage: int, label: int | None = None
) -> ImagePredictions:
    """The teacher's prediction for ``image`` (C, H, W) from its own stage-``stage`` feature and
    from every student view's bridged feature (connectors fitted so far and own bridges)."""
    if stage not in gap.stages:
        raise UserError(f"stage must be one of {gap.stages} (the stages with bridges), got {stage}")
    teacher = gap.teacher
    x = image.unsqueeze(0).to(next(teacher.parameters()).device)  # (1, C, H, W)
    views = gap.views()
    with contextlib.ExitStack() as stack:
        stack.enter_context(full_precision())
        for net in (teacher, *gap.students.values()):
            stack.enter_context(frozen(net))
        for _, _, s2t, _ in views.values():
            stack.enter_context(frozen(s2t))
        t_logp = torch.log_softmax(teacher(x).double(), -1)[0]  # (C,)
        out = ImagePredictions(stage, t_logp.exp(), label=label)
        s_feats = {lab: net.forward_features(x) for lab, net in gap.students.items()}
        for lab, net in gap.students.items():
            out.student[lab] = torch.softmax(net.head(s_feats[lab][-1]).double(), -1)[0]
        for view, (lab, _, s2t, _) in views.items():
            bridged = s2t[str(stage)](s_feats[lab][stage])
            logp = torch.log_softmax(teacher.forward_from(bridged, stage + 1).double(), -1)[0]
            out.bridged[view] = logp.exp()
            out.kl[view] = float((logp.exp() * (logp - t_logp)).sum().clamp_min(0))
    return out
