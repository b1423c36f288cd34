"""Functional gap: does a student's feature *work* like the teacher's, or only look like it?

For a teacher ``T`` and students ``S`` with bridges (``s2t[k]``: student space -> teacher space
at stage ``k``; ``t2s[k]`` the other way), per stage ``k`` after the stem and averaged over
test images:

* ``appearance[k] = MSE(s2t[k](S_k), T_k)`` (mean over every element);
* ``functional[k] = KL(p(T_tail_k(s2t[k](S_k))) || p(T(x)))``: the teacher's remaining stages
  and head run on the bridged student feature, compared with the teacher's own output;
* ``reverse[k] = KL(p(S_tail_k(t2s[k](T_k))) || p(T(x)))`` where a ``t2s`` bridge exists;
* the test accuracy of every mixed path (``SSTT``, ``SSST``, ``TTSS``, ``TTTS`` for 4 stages)
  and of the pure paths ``SSSS`` / ``TTTT``.

Students without bridges get connectors fitted post hoc
(:mod:`fcfd_viz.analysis.gap.connectors`); students with their own bridges (FCFD) are shown twice,
``"<label> (own bridges)"`` and ``"<label> (fitted)"``.

Two labelled BatchNorm regimes:

* ``"eval"``: every network and bridge on running statistics (what inference sees);
* ``"batch"``: batch statistics as in FCFD training: the teacher everywhere (its features, its
  tail and its reference output: the authors' code leaves the teacher in train mode), and
  every bridge and every student tail that runs after a bridge (FCFD runs all mixed-path
  passes on batch statistics); the student's own pure path stays in eval mode.

No running statistic changes in either regime. Batch statistics depend on the test loader's
batch size, recorded in the result.

>>> gap = FunctionalGap(teacher, {"kd": kd_net}, input_shape=(3, 16, 16))   # doctest: +SKIP
>>> res = gap.compute(test_loader, train_loader, bn="eval")                 # doctest: +SKIP
>>> res.to_dict()["students"]["kd (fitted)"]["functional"]                  # doctest: +SKIP
"""

from __future__ import annotations

import contextlib
import math
import time
from collections.abc import Mapping, Sequence

import torch
from torch import Tensor, nn

from fcfd_viz.analysis.base import Analysis
from fcfd_viz.analysis.gap.connectors import fit_connectors
from fcfd_viz.analysis.gap.fit_config import FitConfig, FitInfo, fit_plan
from fcfd_viz.analysis.gap.inputs import Bridges, check_pair
from fcfd_viz.analysis.gap.result import FITTED, OWN, GapEntry, GapResult, check_regime
from fcfd_viz.analysis.gap.shared_teacher import shared_teacher
from fcfd_viz.distill.paths import MixedPath
from fcfd_viz.errors import UserError
from fcfd_viz.models.base import StagedNet
from fcfd_viz.models.batchnorm import bn_regime, frozen

View = tuple[str, str, nn.ModuleDict, "nn.ModuleDict | None"]  # label, kind, s2t, t2s


class FunctionalGap(Analysis[GapResult]):
    """Appearance vs functional gap of ``students`` against ``teacher`` (weights never change).

    Args:
        teacher: the teacher network.
        students: ``{label: student}``; labels starting with a method name keep its colour.
        bridges: ``{label: (s2t, t2s) | None}``: a student's own bridges (FCFD's), keyed by
            stage string; ``s2t`` must cover stages 1..N-1, ``t2s`` may cover any of 1..N-2.
            Missing or None: connectors are fitted post hoc.
        input_shape: (C, H, W) of one image.
        methods: ``{label: method name}`` for the entries' ``method`` (``LoadedModels.methods``
            of :func:`~fcfd_viz.analysis.gap.inputs.load_students`); None where not given.
    """

    def __init__(
        self,
        teacher: StagedNet,
        students: Mapping[str, StagedNet],
        bridges: Mapping[str, Bridges | None] | None = None,
        input_shape: Sequence[int] = (3, 32, 32),
        methods: Mapping[str, str] | None = None,
    ) -> None:
        if not students:
            raise UserError("the functional gap needs at least one student")
        self.teacher, self.students = teacher, dict(students)
        self.methods = dict(methods or {})
        self.input_shape = tuple(input_shape)
        self.n = teacher.num_stages
        t_shapes = teacher.feature_shapes(self.input_shape)
        for label, s in self.students.items():
            check_pair(teacher, s, label)
            if s.num_classes != teacher.num_classes:
                raise UserError(
                    f"student {label!r} has {s.num_classes} classes but the teacher has "
                    f"{teacher.num_classes}; use a student trained on the teacher's dataset"
                )
            s.feature_shapes(self.input_shape)  # fails early on a bad input shape
        self.own: dict[str, Bridges] = {}
        for label, b in (bridges or {}).items():
            if b is None:
                continue
            if label not in self.students:
                raise UserError(f"bridges given for unknown student {label!r}")
            s2t, t2s = b
            want = {str(k) for k in range(1, self.n)}
            if set(s2t.keys()) != want:
                raise UserError(
                    f"student {label!r}: s2t bridges must cover stages {sorted(want)}, got {sorted(s2t.keys())}"
                )
            for k in s2t.keys():
                if tuple(s2t[k].dst) != tuple(t_shapes[int(k)]):
                    raise UserError(
                        f"student {label!r}: the stage {k} bridge maps to {list(s2t[k].dst)}, "
                        f"but the teacher's feature is {list(t_shapes[int(k)])}: were the bridges trained with another teacher?"
                    )
            self.own[label] = (s2t, t2s)
        self._fits: dict[str, tuple[FitConfig, nn.ModuleDict, nn.ModuleDict, FitInfo]] = {}

    @property
    def stages(self) -> list[int]:
        return list(range(1, self.n))

    # -- connectors -----------------------------------------------------------------
    def fit(
        self,
        train_loader,
        labels: Sequence[str] | None = None,
        config: FitConfig | None = None,
        progress: bool = False,
    ) -> dict[str, FitInfo]:
        """Fit connectors for ``labels`` (default: every student) and keep them for
        :meth:`compute`; a fit with the same config is reused. ``train_loader`` may be one
        loader or ``{label: loader}`` (each student on its own training data)."""
        config = config or FitConfig()
        out = {}
        with shared_teacher():  # the students share the teacher's features and Grams
            for label in labels if labels is not None else list(self.students):
                cached = self._fits.get(label)
                if cached is None or cached[0] != config:
                    loader = (
                        train_loader[label] if isinstance(train_loader, Mapping) else train_loader
                    )
                    s2t, t2s, info = fit_connectors(
                        self.teacher,
                        self.students[label],
                        loader,
                        self.input_shape,
                        config,
                        progress=progress,
                        desc=f"fit connectors: {label}",
                    )
                    self._fits[label] = (config, s2t, t2s, info)
                out[label] = self._fits[label][3]
        return out

    def fitted(self, label: str) -> tuple[nn.ModuleDict, nn.ModuleDict, FitInfo] | None:
        """The connectors fitted for ``label`` so far (to save them), or None."""
        f = self._fits.get(label)
        return None if f is None else f[1:]

    def set_fitted(self, label: str, s2t: nn.ModuleDict, t2s: nn.ModuleDict, info: FitInfo) -> None:
        """Use connectors fitted earlier (e.g. loaded from disk) for ``label``; a later
        :meth:`compute` with ``info.config`` reuses them instead of fitting again."""
        if label not in self.students:
            raise UserError(f"unknown student {label!r}")
        self._fits[label] = (info.config, s2t.eval(), t2s.eval(), info)

    def views(self, fitted: bool = True) -> dict[str, View]:
        """``{"<label> (own bridges)" | "<label> (fitted)": (label, kind, s2t, t2s)}``: every
        student through its own bridges and (``fitted``) through the connectors fitted so far."""
        views: dict[str, View] = {}
        for label in self.students:
            if label in self.own:
                views[f"{label} ({OWN})"] = (label, OWN, *self.own[label])
            if fitted and label in self._fits:
                _, s2t, t2s, _ = self._fits[label]
                views[f"{label} ({FITTED})"] = (label, FITTED, s2t, t2s)
        return views

    # -- the measurement -------------------------------------------------------------
    def compute(
        self,
        test_loader,
        train_loader=None,
        bn: str = "eval",
        fit: FitConfig | bool | None = None,
        progress: bool = False,
    ) -> GapResult:
        """Measure every student on ``test_loader``.

        Args:
            train_loader: data for post-hoc connectors (one loader, or ``{label: loader}``).
            bn: the BN regime, ``"eval"`` or ``"batch"`` (see the module docstring).
            fit: a :class:`FitConfig`, True/None (defaults; needs ``train_loader``) or False
                (no fitting: only students with their own bridges are measured).
            progress: tqdm bars for the fit and the evaluation.
        """
        check_regime(bn)
        t0 = time.perf_counter()
        unbridged = [lab for lab in self.students if lab not in self.own]
        config = fit_plan(fit, train_loader, unbridged, FitConfig())
        if config is not None:
            self.fit(train_loader, config=config, progress=progress)
        res = self._evaluate(self.views(fitted=config is not None), test_loader, bn, progress)
        for entry in res.entries.values():
            if entry.bridges == FITTED:
                entry.fit = self._fits[entry.student][3]
        res.seconds = time.perf_counter() - t0
        return res

    @torch.no_grad()
    def _evaluate(self, views, loader, bn, progress) -> GapResult:
        teacher, n = self.teacher, self.n
        device = next(teacher.parameters()).device
        stages = self.stages
        zeros = lambda: torch.zeros(len(stages), dtype=torch.float64)  # noqa: E731
        app = {v: zeros() for v in views}
        func = {v: zeros() for v in views}
        rev = {v: torch.full((len(stages),), math.nan, dtype=torch.float64) for v in views}
        for v, (_, _, _, t2s) in views.items():
            for k in t2s.keys() if t2s is not None else ():
                rev[v][int(k) - 1] = 0.0
        paths = [MixedPath(k, d, n) for d in ("s2t", "t2s") for k in range(1, n - 1)]
        correct = {v: dict.fromkeys(["S" * n, *(p.name for p in paths)], 0) for v in views}
        t_correct = total = 0
        batch_size = None
        used = {lab for lab, *_ in views.values()}
        bridges = [m for *_, s2t, t2s in views.values() for m in (s2t, t2s) if m is not None]
        bar = None
        if progress:
            from tqdm.auto import tqdm

            bar = tqdm(loader, desc=f"functional gap ({bn})", unit="batch", leave=False)
        with contextlib.ExitStack() as stack:
            stack.enter_context(frozen(teacher))  # restores modes and buffers whatever happens
            for lab in used:
                stack.enter_context(frozen(self.students[lab]))
            for b in bridges:
                stack.enter_context(frozen(b))
            stack.enter_context(bn_regime([teacher, *bridges], bn))
            for x, y in bar if bar is not None else loader:
                x, y = x.to(device), y.to(device)
                batch_size = batch_size or len(y)
                t_feats = teacher.forward_features(x)
                t_logits = teacher.head(t_feats[-1])
                t_logp = torch.log_softmax(t_logits.double(), -1)
                t_correct += int((t_logits.argmax(1) == y).sum())
                total += len(y)
                s_cache = {lab: self.students[lab].forward_features(x) for lab in used}
                for v, (lab, _, s2t, t2s) in views.items():
                    student, s_feats = self.students[lab], s_cache[lab]
                    correct[v]["S" * n] += int((student.head(s_feats[-1]).argmax(1) == y).sum())
                    for i, k in enumerate(stages):
                        f = s2t[str(k)](s_feats[k])
                        app[v][i] += float((f - t_feats[k]).double().pow(2).mean((1, 2, 3)).sum())
                        out = teacher.forward_from(f, k + 1)
                        func[v][i] += float(kl_rows(out, t_logp).sum())
                        if k < n - 1:
                            correct[v][MixedPath(k, "s2t", n).name] += int(
                                (out.argmax(1) == y).sum()
                            )
                        if t2s is not None and str(k) in t2s:
                            with bn_regime([student], bn):  # the tail after a bridge
                                out = student.forward_from(t2s[str(k)](t_feats[k]), k + 1)
                            rev[v][i] += float(kl_rows(out, t_logp).sum())
                            correct[v][MixedPath(k, "t2s", n).name] += int(
                                (out.argmax(1) == y).sum()
                            )
        if bar is not None:
            bar.close()
        if total == 0:
            raise UserError("the test loader is empty")
        acc = lambda c: 100.0 * c / total  # noqa: E731
        res = GapResult(bn, stages, total, batch_size, acc(t_correct))
        for v, (lab, kind, _, t2s) in views.items():
            pa = {p: acc(c) for p, c in correct[v].items()}
            pa = {p: a for p, a in pa.items() if not _missing_t2s(p, t2s, n)}
            pa["T" * n] = res.teacher_accuracy
            res.entries[v] = GapEntry(
                lab,
                kind,
                self.methods.get(lab),
                app[v] / total,
                func[v] / total,
                rev[v] / total,
                pa,
            )
        return res


def kl_rows(logits: Tensor, ref_logp: Tensor) -> Tensor:
    """Per-row ``KL(softmax(logits) || exp(ref_logp))`` in float64, clamped at 0."""
    logp = torch.log_softmax(logits.double(), -1)
    return (logp.exp() * (logp - ref_logp)).sum(-1).clamp_min(0)


def _missing_t2s(path: str, t2s, n: int) -> bool:
    """A teacher->student path whose bridge does not exist."""
    if not path.startswith("T") or set(path) == {"T"}:
        return False
    k = path.index("S") - 1
    return t2s is None or str(k) not in t2s
