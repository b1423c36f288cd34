"""Results of the functional gap (:mod:`fcfd_viz.analysis.gap.functional`): dataclasses of tensors,
their JSON form, and a one-line plain-English reading. No computation lives here."""

from __future__ import annotations

import math
import statistics
from dataclasses import dataclass, field

from torch import Tensor

from fcfd_viz.analysis.base import Result, finite, to_tensor
from fcfd_viz.analysis.gap.fit_config import FitInfo
from fcfd_viz.errors import UserError

BN_REGIMES = {
    "eval": "eval-mode BN (running statistics)",
    "batch": "batch-statistics BN (teacher, bridges and tails after a switch, as in FCFD training)",
}
OWN, FITTED = "own bridges", "fitted"


def check_regime(bn: str) -> str:
    """``bn`` when it names a BN regime of :data:`BN_REGIMES`, else a one-line error."""
    if bn not in BN_REGIMES:
        raise UserError(f"unknown BN regime {bn!r}; choose eval or batch")
    return bn


@dataclass
class GapEntry:
    """One student seen through one set of bridges. Per-stage tensors are aligned with
    :attr:`GapResult.stages` (stages 1..N-1); ``reverse`` is NaN where no t2s bridge exists."""

    student: str
    bridges: str  # "own bridges" | "fitted"
    method: str | None
    appearance: Tensor  # (S,) float64
    functional: Tensor  # (S,)
    reverse: Tensor  # (S,)
    path_accuracy: dict[str, float]  # "SSTT" -> top-1 %, plus "SSSS" and "TTTT"
    fit: FitInfo | None = None

    @property
    def accuracy(self) -> float:
        """The student's own test top-1 (its pure path)."""
        return next(v for k, v in self.path_accuracy.items() if set(k) == {"S"})


@dataclass
class GapResult(Result):
    """The functional gap of several students against one teacher, in one BN regime."""

    bn: str
    stages: list[int]
    num_images: int
    batch_size: int | None
    teacher_accuracy: float
    entries: dict[str, GapEntry] = field(default_factory=dict)
    seconds: float = 0.0

    @property
    def bn_label(self) -> str:
        return BN_REGIMES[self.bn]

    def to_dict(self, curves: bool = True) -> dict:
        """JSON-ready: ``students[name]`` holds ``appearance`` / ``functional`` / ``reverse``
        as ``{stage: value}`` (``reverse`` null where no t2s bridge), ``path_accuracy``,
        ``accuracy`` and ``fit`` (null for own bridges). Lossless with ``curves`` (the
        default, what :meth:`from_dict` reads)."""

        def per_stage(t: Tensor) -> dict[str, float | None]:
            return {str(k): finite(float(v)) for k, v in zip(self.stages, t.tolist())}

        return {
            "bn": self.bn,
            "bn_label": self.bn_label,
            "stages": list(self.stages),
            "num_images": self.num_images,
            "batch_size": self.batch_size,
            "teacher_accuracy": self.teacher_accuracy,
            "seconds": self.seconds,
            "students": {
                name: {
                    "student": e.student,
                    "bridges": e.bridges,
                    "method": e.method,
                    "appearance": per_stage(e.appearance),
                    "functional": per_stage(e.functional),
                    "reverse": per_stage(e.reverse),
                    "path_accuracy": dict(e.path_accuracy),
                    "accuracy": e.accuracy,
                    "fit": e.fit.to_dict(curves) if e.fit is not None else None,
                }
                for name, e in self.entries.items()
            },
        }

    @classmethod
    def from_dict(cls, d: dict) -> GapResult:
        """Rebuild from :meth:`to_dict`; per-stage values come back as float64 tensors (NaN
        where ``reverse`` has no bridge)."""
        stages = [int(k) for k in d["stages"]]

        def per_stage(values: dict) -> Tensor:
            return to_tensor([values.get(str(k)) for k in stages])

        entries = {
            name: GapEntry(
                e["student"],
                e["bridges"],
                e.get("method"),
                per_stage(e["appearance"]),
                per_stage(e["functional"]),
                per_stage(e["reverse"]),
                dict(e["path_accuracy"]),
                FitInfo.from_dict(e["fit"]) if e.get("fit") is not None else None,
            )
            for name, e in d["students"].items()
        }
        return cls(
            d["bn"],
            stages,
            int(d["num_images"]),
            d.get("batch_size"),
            float(d["teacher_accuracy"]),
            entries,
            float(d.get("seconds") or 0.0),
        )


def gap_reading(result: GapResult) -> str:
    """One plain-English line: who has the smallest functional gap, and does L2 agree?"""
    d = result.to_dict(curves=False)
    students = d["students"]
    stages = [str(k) for k in d["stages"]]
    if not students or not stages:
        return "No students measured."

    def mean(name, key):
        vals = [students[name][key][k] for k in stages if students[name][key][k] is not None]
        return statistics.fmean(vals) if vals else math.inf

    names = list(students)
    by_func = sorted(names, key=lambda v: mean(v, "functional"))
    best = by_func[0]
    wins = sum(min(names, key=lambda v: students[v]["functional"][k]) == best for k in stages)
    agree = [
        k
        for k in stages
        if min(names, key=lambda v: students[v]["appearance"][k])
        == min(names, key=lambda v: students[v]["functional"][k])
    ]
    regime = "eval-mode BN" if d["bn"] == "eval" else "batch-statistics BN"
    line = (
        f"With the teacher's tail in {regime}, {best} has the smallest functional gap "
        f"(mean KL {mean(best, 'functional'):.3g} over stages {', '.join(stages)}; smallest at "
        f"{wins} of {len(stages)} stages)"
    )
    if len(names) > 1:
        nxt = by_func[1]
        line += f", next {nxt} ({mean(nxt, 'functional'):.3g})"
        if len(agree) == len(stages):
            line += "; the smallest L2 (appearance) gap belongs to the same student at every stage"
        elif not agree:
            line += "; L2 and function disagree: the smallest appearance gap is elsewhere at every stage"
        else:
            line += f"; L2 and function agree on the leader at stage {', '.join(agree)} only"
    return line + "."
