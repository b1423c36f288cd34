"""Results of the detection functional gap (:mod:`fcfd_viz.detection.gap`): dataclasses of
tensors, their JSON form and a one-line reading. No computation lives here.

Per FPN level (``p2`` .. ``p6``): ``appearance`` (MSE of the bridged student level to the
teacher's), ``functional`` (KL of the teacher box head's class distribution on the FPN with
that one level bridged, against its own, at T = 1) and ``box`` (MSE of the box deltas, same
setting); NaN at a level the box head never reads (``p6`` feeds only the RPN). ``all_*``:
every level bridged at once.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import torch
from torch import Tensor

from fcfd_viz.analysis.base import Result, finite
from fcfd_viz.analysis.gap.fit_config import FitInfo

PROPOSALS = "teacher RPN on the teacher's FPN (eval mode), the same for every student and level"


@dataclass
class DetGapEntry:
    """One student through one set of bridges; per-level tensors follow
    :attr:`DetGapResult.levels`."""

    student: str
    bridges: str  # "own bridges" | "fitted"
    method: str | None
    appearance: Tensor  # (L,) float64
    functional: Tensor  # (L,) float64, NaN where the box head reads no feature
    box: Tensor  # (L,) float64, NaN likewise
    all_functional: float
    all_box: float
    fit: FitInfo | None = None


@dataclass
class DetGapResult(Result):
    """The detection functional gap of several students against one teacher."""

    levels: list[str]
    num_images: int
    num_rois: int
    rois_per_level: list[int]  # proposals the box head pools from each level (p6: 0)
    entries: dict[str, DetGapEntry] = field(default_factory=dict)
    proposals: str = PROPOSALS
    seconds: float = 0.0

    def to_dict(self, curves: bool = True) -> dict:
        """JSON-ready: per entry ``appearance`` / ``functional`` / ``box`` as ``{level:
        value}`` (null where the head reads no feature), ``all`` (``functional``, ``box``)
        and ``fit`` (null for own bridges). Lossless with ``curves``."""

        def per_level(t: Tensor) -> dict[str, float | None]:
            return {k: finite(float(v)) for k, v in zip(self.levels, t.tolist())}

        return {
            "task": "detection",
            "levels": list(self.levels),
            "num_images": self.num_images,
            "num_rois": self.num_rois,
            "rois_per_level": dict(zip(self.levels, self.rois_per_level)),
            "proposals": self.proposals,
            "seconds": self.seconds,
            "students": {
                name: {
                    "student": e.student,
                    "bridges": e.bridges,
                    "method": e.method,
                    "appearance": per_level(e.appearance),
                    "functional": per_level(e.functional),
                    "box": per_level(e.box),
                    "all": {"functional": e.all_functional, "box": e.all_box},
                    "fit": e.fit.to_dict(curves) if e.fit is not None else None,
                }
                for name, e in self.entries.items()
            },
        }

    @classmethod
    def from_dict(cls, d: dict) -> DetGapResult:
        levels = list(d["levels"])

        def per_level(values: dict) -> Tensor:
            vals = [values.get(k) for k in levels]
            return torch.tensor([math.nan if v is None else v for v in vals], dtype=torch.float64)

        entries = {
            name: DetGapEntry(
                e["student"],
                e["bridges"],
                e.get("method"),
                per_level(e["appearance"]),
                per_level(e["functional"]),
                per_level(e["box"]),
                float(e["all"]["functional"]),
                float(e["all"]["box"]),
                FitInfo.from_dict(e["fit"]) if e.get("fit") is not None else None,
            )
            for name, e in d["students"].items()
        }
        return cls(
            levels,
            int(d["num_images"]),
            int(d["num_rois"]),
            [int(d["rois_per_level"][k]) for k in levels],
            entries,
            d.get("proposals", PROPOSALS),
            float(d.get("seconds") or 0.0),
        )


def det_gap_reading(result: DetGapResult) -> str:
    """One plain-English line: who has the smallest all-levels functional gap, and does the
    appearance gap rank the students the same way?"""
    entries = result.entries
    if not entries:
        return "No students measured."
    names = sorted(entries, key=lambda n: entries[n].all_functional)
    best = entries[names[0]]
    line = (
        f"With every FPN level bridged, {names[0]} has the smallest functional gap (KL "
        f"{best.all_functional:.3g}, box-delta MSE {best.all_box:.3g} on {result.num_rois} "
        "teacher proposals)"
    )
    if len(names) > 1:

        def app(n: str) -> float:
            return float(torch.nanmean(entries[n].appearance))

        by_app = min(names, key=app)
        line += f", next {names[1]} ({entries[names[1]].all_functional:.3g})"
        line += (
            "; the smallest mean appearance gap belongs to the same student"
            if by_app == names[0]
            else f"; L2 and function disagree: {by_app} has the smallest mean appearance gap"
        )
    return line + "."
