"""The error spectrum of every student of a functional gap, stage by stage, and which
appearance metric predicts the functional one.

:func:`gap_spectra` runs :func:`~fcfd_viz.analysis.gap.spectrum.error_spectrum` on the views of
a :class:`~fcfd_viz.analysis.gap.functional.FunctionalGap` (its students through their own
bridges and through the connectors it fitted) over the first ``images`` test images, and
keeps image means per stage. :func:`predictors` asks, across the entries of one or more
results (students x seeds x stages), whether ``fisher`` ranks the measured KL better than
``l2`` does: Spearman correlations with bootstrap intervals over students.

BatchNorm: ``"eval"`` runs everything on running statistics. ``"batch"`` uses each test
batch's own statistics for the teacher and the bridges, as the gap's batch regime does, but
frozen at the clean batch's values (momentum 1, then eval mode), so that the tail stays a
function of each image alone and can be linearised per image; running statistics are
restored afterwards.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field, replace
from functools import partial

import torch
from torch import Tensor, nn

from fcfd_viz.analysis.base import Result
from fcfd_viz.analysis.gap.result import check_regime
from fcfd_viz.analysis.gap.spectrum import error_spectrum
from fcfd_viz.analysis.probe.attribution import spearman
from fcfd_viz.errors import UserError
from fcfd_viz.models.base import StagedNet
from fcfd_viz.models.batchnorm import batchnorms, frozen

METRICS = ("l2", "fisher", "kl")
FITTED = "fitted"  # SpectrumEntry.bridges of a view through post-hoc connectors


@dataclass
class SpectrumEntry:
    """One student view (its bridges) at every stage: image means and mean share curves."""

    student: str
    bridges: str  # "own bridges" or "fitted"
    method: str | None
    means: dict[str, list[float]]  # {"l2" | "fisher" | "kl": one value per stage}
    share: list[list[float]]  # per stage: mean share in the top-1..k singular directions
    isotropic: list[list[float]]  # per stage: k / D
    channel_share: list[list[float] | None] = field(default_factory=list)


@dataclass
class SpectrumResult(Result):
    bn: str
    stages: list[int]
    images: int
    entries: dict[str, SpectrumEntry]

    def to_dict(self) -> dict:
        return {
            "bn": self.bn,
            "stages": list(self.stages),
            "images": self.images,
            "entries": {v: vars(e) for v, e in self.entries.items()},
        }

    @classmethod
    def from_dict(cls, d: dict) -> SpectrumResult:
        entries = {v: SpectrumEntry(**e) for v, e in d["entries"].items()}
        return cls(d["bn"], list(d["stages"]), int(d["images"]), entries)

    def without_own(self, keep: bool = False) -> SpectrumResult:
        """Without the views through a student's own bridges (unless ``keep``), as
        :func:`~fcfd_viz.analysis.gap.seeds.without_own` leaves them out of a gap result."""
        if keep:
            return self
        return replace(self, entries={v: e for v, e in self.entries.items() if e.bridges == FITTED})


@contextlib.contextmanager
def batch_statistics(nets: Sequence[nn.Module], run: Callable[[], None]) -> Iterator[None]:
    """Inside the block the BN layers of ``nets`` (in eval mode) normalise with the statistics
    of the batch ``run()`` passes through them. The caller restores buffers (``frozen``)."""
    bns = batchnorms(nets)
    momenta = [m.momentum for m in bns]
    for m in bns:
        m.momentum = 1.0  # running := this batch's statistics
    for net in nets:
        net.train()
    with torch.no_grad():
        run()
    for m, mom in zip(bns, momenta):
        m.momentum = mom
    for net in nets:
        net.eval()
    yield


def gap_spectra(
    gap,
    loader,
    bn: str = "eval",
    images: int = 128,
    k: int | None = None,
    steps: int | None = None,
    sensitivity: Mapping[int, Tensor] | None = None,
) -> SpectrumResult:
    """The error spectrum of every view of ``gap`` (fit its connectors first:
    ``gap.compute`` or ``gap.fit``) on the first ``images`` images of ``loader``.
    ``sensitivity``: ``{stage: (C,) per-channel sensitivity}`` for the channel view."""
    check_regime(bn)
    views = gap.views(fitted=True)
    if not views:
        raise UserError("no student has bridges yet: fit the connectors (gap.fit) first")
    teacher, stages = gap.teacher, gap.stages
    device = next(teacher.parameters()).device
    sums: dict[str, dict] = {v: {} for v in views}
    seen = 0
    used = {lab for lab, *_ in views.values()}
    with contextlib.ExitStack() as stack:
        for net in [teacher, *(gap.students[lab] for lab in used)]:
            stack.enter_context(frozen(net))
        for *_, s2t, _t2s in views.values():
            stack.enter_context(frozen(s2t))
        for x, _ in loader:
            x = x[: images - seen].to(device)
            s_feats = {lab: _no_grad(gap.students[lab].forward_features, x) for lab in used}
            for v, (lab, _, s2t, _) in views.items():
                bridged = {}
                with contextlib.ExitStack() as batch:
                    if bn == "batch":  # the teacher and this view's bridges on batch statistics
                        clean = partial(_clean_pass, teacher, x, s2t, s_feats[lab], stages)
                        batch.enter_context(batch_statistics([teacher, s2t], clean))
                    t_feats = _no_grad(teacher.forward_features, x)
                    for i in stages:
                        bridged[i] = _no_grad(s2t[str(i)], s_feats[lab][i])
                        spec = error_spectrum(
                            tail(teacher, i),
                            t_feats[i],
                            bridged[i],
                            k,
                            steps,
                            None if sensitivity is None else sensitivity.get(i),
                        )
                        _accumulate(sums[v], i, spec)
            seen += len(x)
            if seen >= images:
                break
    if seen == 0:
        raise UserError("the test loader is empty")
    entries = {}
    for v, (lab, kind, _, _) in views.items():
        s = sums[v]
        entries[v] = SpectrumEntry(
            lab,
            kind,
            gap.methods.get(lab),
            {m: [s[i][m] / seen for i in stages] for m in METRICS},
            [(s[i]["share"] / seen).tolist() for i in stages],
            [s[i]["isotropic"].tolist() for i in stages],
            [
                None if s[i]["channel"] is None else (s[i]["channel"] / seen).tolist()
                for i in stages
            ],
        )
    return SpectrumResult(bn, list(stages), seen, entries)


def tail(teacher: StagedNet, stage: int) -> Callable[[Tensor], Tensor]:
    """The teacher after ``stage``: feature -> logits."""

    def rest(f: Tensor) -> Tensor:
        return teacher.forward_from(f, stage + 1)

    return rest


def _clean_pass(teacher, x, s2t, feats, stages) -> None:
    """The passes whose batch statistics the "batch" regime adopts: the teacher on the images,
    the bridges on the student's features."""
    teacher(x)
    for i in stages:
        s2t[str(i)](feats[i])


def _no_grad(fn, *args):
    with torch.no_grad():
        return fn(*args)


def _accumulate(acc: dict, stage: int, spec) -> None:
    """Sums over images of one stage's measurements (divided by the image count at the end)."""
    a = acc.setdefault(stage, {m: 0.0 for m in METRICS} | {"share": 0.0, "channel": None})
    for m in METRICS:
        a[m] += float(getattr(spec, m).sum())
    a["share"] = a["share"] + spec.share.sum(0)  # (k,)
    a["isotropic"] = spec.isotropic
    if spec.channel_share is not None:
        a["channel"] = (0.0 if a["channel"] is None else a["channel"]) + spec.channel_share.sum(0)


def predictors(
    results: Sequence[SpectrumResult], boot: int = 1000, seed: int = 0
) -> dict[str, dict]:
    """Across every (entry, stage) of ``results``: the Spearman correlation of ``l2`` and of
    ``fisher`` with the measured ``kl``, each with a 95% bootstrap interval over entries
    (students resampled with replacement, their stages kept together).

    ``per_stage`` ({stage: the same for that stage's points alone}) is the fairer reading when
    stages differ in size: pooled, ``l2`` is penalised by the stages' feature dimensions (a
    wide early stage has a large ``||e||^2`` and a small KL) whatever it says within a stage.
    """
    stages = results[0].stages if results else []
    groups = [
        [(e.means["l2"][j], e.means["fisher"][j], e.means["kl"][j]) for j in range(len(r.stages))]
        for r in results
        for e in r.entries.values()
    ]
    if len(groups) < 2:
        raise UserError("which metric predicts the gap needs at least two students")
    out: dict[str, dict] = _rank_predictors(groups, boot, seed)
    out["points"] = {"students": len(groups), "pairs": sum(len(g) for g in groups)}
    if len(stages) > 1 and all(r.stages == stages for r in results):
        out["per_stage"] = {
            str(k): _rank_predictors([[g[j]] for g in groups], boot, seed)
            for j, k in enumerate(stages)
        }
    return out


def predictor_text(p: dict, metrics: Sequence[str] = ("l2", "fisher")) -> str:
    """``l2 0.12 [-0.30, 0.50], fisher ...``: one :func:`predictors` entry (or one of its
    ``per_stage`` values) as text, as the CLI, the app and the study page print it."""
    return ", ".join(
        f"{m} {p[m]['spearman']:.2f} [{p[m]['low']:.2f}, {p[m]['high']:.2f}]" for m in metrics
    )


def stage_predictor_text(p: dict) -> str:
    """``within stage 1: l2 ..., fisher ...; within stage 2: ...`` (empty without stages)."""
    per = p.get("per_stage") or {}
    return "; ".join(f"within stage {k}: {predictor_text(q)}" for k, q in per.items())


def _rank_predictors(groups: list[list[tuple]], boot: int, seed: int) -> dict[str, dict]:
    """``{l2 | fisher: {spearman, low, high}}`` over ``groups`` of (l2, fisher, kl) points,
    bootstrapped by group."""
    gen = torch.Generator().manual_seed(seed)
    out = {}
    for col, name in ((0, "l2"), (1, "fisher")):

        def rho(picked: Sequence[int], col=col) -> float:
            pts = [p for g in picked for p in groups[g]]
            return spearman([p[col] for p in pts], [p[2] for p in pts])

        draws = torch.tensor(
            [
                rho(torch.randint(0, len(groups), (len(groups),), generator=gen).tolist())
                for _ in range(boot)
            ]
        )
        draws = draws[~draws.isnan()]
        low, high = float("nan"), float("nan")  # no resample ranked anything (ties only)
        if len(draws):
            low, high = (float(q) for q in torch.quantile(draws, torch.tensor([0.025, 0.975])))
        out[name] = {"spearman": rho(range(len(groups))), "low": low, "high": high}
    return out
