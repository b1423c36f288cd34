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
(:mod:`fcfd_viz.analysis.connectors`); students with their own bridges (FCFD) are shown twice,
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
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import NamedTuple

import torch
from torch import Tensor, nn

from fcfd_viz.analysis.connectors import FitConfig, FitInfo, fit_connectors
from fcfd_viz.distill.fcfd import running_stats_frozen
from fcfd_viz.distill.paths import MixedPath
from fcfd_viz.errors import UserError
from fcfd_viz.models.base import StagedNet

BN_REGIMES = {
    "eval": "eval-mode BN (running statistics)",
    "batch": "batch-statistics BN (teacher, bridges and tails after a switch, as in FCFD training)",
}
OWN, FITTED = "own bridges", "fitted"
Bridges = tuple[nn.ModuleDict, nn.ModuleDict | None]


# ---------------------------------------------------------------- result
def _num(v: float) -> float | None:
    return v if math.isfinite(v) else None


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
class GapResult:
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
        ``accuracy`` and ``fit`` (null for own bridges)."""

        def per_stage(t: Tensor) -> dict[str, float | None]:
            return {str(k): _num(float(v)) for k, v in zip(self.stages, t.tolist())}

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


# ---------------------------------------------------------------- the analysis
@contextlib.contextmanager
def bn_regime(nets: Sequence[nn.Module], bn: str) -> Iterator[None]:
    """Run ``nets`` with eval-mode BN (``"eval"``) or batch statistics (``"batch"``) without
    changing their running statistics; every module's mode is restored afterwards."""
    modes = [(m, m.training) for net in nets for m in net.modules()]
    for net in nets:
        net.train(bn == "batch")
    try:
        with contextlib.ExitStack() as stack:
            if bn == "batch":
                for net in nets:
                    stack.enter_context(running_stats_frozen(net))
            yield
    finally:
        for m, was in modes:
            m.training = was


def check_regime(bn: str) -> str:
    if bn not in BN_REGIMES:
        raise UserError(f"unknown BN regime {bn!r}; choose eval or batch")
    return bn


class FunctionalGap:
    """Appearance vs functional gap of ``students`` against ``teacher`` (weights never change).

    Args:
        teacher: the teacher network.
        students: ``{label: student}``; labels starting with a method name keep its colour.
        bridges: ``{label: (s2t, t2s) | None}``: a student's own bridges (FCFD's), keyed by
            stage string; ``s2t`` must cover stages 1..N-1, ``t2s`` may cover any of 1..N-2.
            Missing or None: connectors are fitted post hoc.
        input_shape: (C, H, W) of one image.
    """

    def __init__(
        self,
        teacher: StagedNet,
        students: Mapping[str, StagedNet],
        bridges: Mapping[str, Bridges | None] | None = None,
        input_shape: Sequence[int] = (3, 32, 32),
    ) -> None:
        if not students:
            raise UserError("the functional gap needs at least one student")
        self.teacher, self.students = teacher, dict(students)
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
        for label in labels if labels is not None else list(self.students):
            cached = self._fits.get(label)
            if cached is None or cached[0] != config:
                loader = train_loader[label] if isinstance(train_loader, Mapping) else train_loader
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
        config = fit if isinstance(fit, FitConfig) else FitConfig()
        if isinstance(fit, FitConfig) and train_loader is None:
            raise UserError("fitting connectors needs a training loader (train_loader)")
        do_fit = fit is not False and train_loader is not None
        missing = [lab for lab in self.students if lab not in self.own]
        if missing and not do_fit:
            raise UserError(
                f"student(s) {', '.join(missing)} have no bridges: pass a training loader so "
                "connectors can be fitted post hoc"
            )
        if do_fit:
            self.fit(train_loader, config=config, progress=progress)
        views: dict[str, tuple[str, str, nn.ModuleDict, nn.ModuleDict | None]] = {}
        for label in self.students:
            if label in self.own:
                views[f"{label} ({OWN})"] = (label, OWN, *self.own[label])
            if do_fit:
                _, s2t, t2s, _ = self._fits[label]
                views[f"{label} ({FITTED})"] = (label, FITTED, s2t, t2s)
        res = self._evaluate(views, test_loader, bn, progress)
        for entry in res.entries.values():
            if entry.bridges == FITTED:
                entry.fit = self._fits[entry.student][3]
        res.seconds = time.perf_counter() - t0
        return res

    @torch.no_grad()
    def _evaluate(self, views, loader, bn, progress) -> GapResult:
        from fcfd_viz.analysis.anisotropy import frozen

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
                        func[v][i] += float(_kl(out, t_logp).sum())
                        if k < n - 1:
                            correct[v][MixedPath(k, "s2t", n).name] += int(
                                (out.argmax(1) == y).sum()
                            )
                        if t2s is not None and str(k) in t2s:
                            with bn_regime([student], bn):  # the tail after a bridge
                                out = student.forward_from(t2s[str(k)](t_feats[k]), k + 1)
                            rev[v][i] += float(_kl(out, t_logp).sum())
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
                getattr(self.students[lab], "gap_method", None),
                app[v] / total,
                func[v] / total,
                rev[v] / total,
                pa,
            )
        return res


def _kl(logits: Tensor, ref_logp: Tensor) -> Tensor:
    """Per-row ``KL(softmax(logits) || exp(ref_logp))`` in float64, clamped at 0."""
    logp = torch.log_softmax(logits.double(), -1)
    return (logp.exp() * (logp - ref_logp)).sum(-1).clamp_min(0)


def _missing_t2s(path: str, t2s, n: int) -> bool:
    """A teacher->student path whose bridge does not exist."""
    if not path.startswith("T") or set(path) == {"T"}:
        return False
    k = path.index("S") - 1
    return t2s is None or str(k) not in t2s


def check_pair(teacher: StagedNet, student: StagedNet, label: str = "student") -> None:
    if student.num_stages != teacher.num_stages:
        raise UserError(
            f"{label} ({getattr(student, 'arch', '?')}) has {student.num_stages} stages but the "
            f"teacher ({getattr(teacher, 'arch', '?')}) has {teacher.num_stages}; the functional gap "
            "needs networks split into the same number of stages"
        )


# ---------------------------------------------------------------- reading
def gap_reading(result: GapResult | Mapping) -> str:
    """One plain-English line: who has the smallest functional gap, and does L2 agree?"""
    d = result if isinstance(result, Mapping) else result.to_dict(curves=False)
    students = d["students"]
    stages = [str(k) for k in d["stages"]]
    if not students or not stages:
        return "No students measured."

    def mean(name, key):
        vals = [students[name][key][k] for k in stages if students[name][key][k] is not None]
        return sum(vals) / len(vals) if vals else math.inf

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


# ---------------------------------------------------------------- checkpoints
class _Loaded(NamedTuple):
    teacher: StagedNet
    students: dict[str, StagedNet]
    bridges: dict[str, Bridges | None]


class LoadedModels(_Loaded):
    """``(teacher, students, bridges)``; ``.info`` adds input_shape, dataset and per-student
    metadata (path, method, dataset, seed, data config of its run)."""

    info: dict


def _data_key(name) -> str:
    return str(name or "?").replace("-hard", "")


def load_students(
    paths: Sequence[str | Path],
    teacher: str | Path | None = None,
    labels: Sequence[str] | None = None,
) -> LoadedModels:
    """Teacher, students and their own bridges from checkpoints (files or run directories).

    ``teacher`` defaults to the teacher the students recorded. Labels default to each
    student's method, with ``-s<seed>`` (then the run name) added to tell duplicates apart.
    FCFD checkpoints bring their bridges; any other student (FitNet's single hint connector
    included) gets None, i.e. connectors fitted post hoc. Raises :class:`UserError` when the
    teacher and a student disagree on dataset, classes, input shape or stage count.
    """
    from fcfd_viz.runs import load_checkpoint, model_from_checkpoint

    if not paths:
        raise UserError("pass at least one student checkpoint")
    ckpts = [load_checkpoint(p) for p in paths]
    if teacher is None:
        recorded = {c.get("teacher") for c in ckpts}
        if None in recorded or len(recorded) != 1:
            raise UserError("the students record no single common teacher; pass --teacher CKPT")
        teacher = recorded.pop()
    t_ckpt = load_checkpoint(teacher)
    t_net = model_from_checkpoint(t_ckpt)
    t_shape = tuple(t_ckpt.get("input_shape") or (3, 32, 32))
    metas = []
    for c in ckpts:
        shape = tuple(c.get("input_shape") or t_shape)
        if (
            _data_key(c.get("dataset")) != _data_key(t_ckpt.get("dataset"))
            or c["model"]["num_classes"] != t_ckpt["model"]["num_classes"]
            or shape != t_shape
        ):
            raise UserError(
                f"student {c['path']} was trained on {c.get('dataset')} {list(shape)} with "
                f"{c['model']['num_classes']} classes, but the teacher {t_ckpt['path']} on "
                f"{t_ckpt.get('dataset')} {list(t_shape)} with {t_ckpt['model']['num_classes']} "
                "classes; compare students and a teacher of the same dataset and image size"
            )
        method = c.get("method")
        method = method.get("method") if isinstance(method, Mapping) else method
        metas.append(
            {
                "path": c["path"],
                "method": method or "student",
                "dataset": c.get("dataset"),
                "seed": c.get("seed"),
                "teacher": c.get("teacher"),
                "data": _run_data(c["path"]),
            }
        )
    names = _labels(metas, labels)
    students, bridges = {}, {}
    for name, c, meta in zip(names, ckpts, metas):
        net = model_from_checkpoint(c)
        check_pair(t_net, net, f"student {c['path']}")
        net.gap_method = meta["method"]
        students[name] = net
        bridges[name] = _own_bridges(t_net, net, c, t_shape, t_ckpt["path"])
    out = LoadedModels(t_net, students, bridges)
    out.info = {
        "input_shape": list(t_shape),
        "dataset": t_ckpt.get("dataset"),
        "num_classes": t_ckpt["model"]["num_classes"],
        "teacher": t_ckpt["path"],
        "teacher_seed": t_ckpt.get("seed"),
        "students": dict(zip(names, metas)),
    }
    return out


def _run_data(ckpt_path: str) -> dict | None:
    """The ``data`` block of the run's config.json next to a checkpoint, when there is one."""
    from fcfd_viz.runs import read_json

    cfg = Path(ckpt_path).parent / "config.json"
    try:
        return dict(read_json(cfg).get("data") or {}) or None
    except (OSError, ValueError, AttributeError):
        return None


def _labels(metas: list[dict], labels: Sequence[str] | None) -> list[str]:
    if labels is not None:
        labels = list(labels)
        if len(labels) != len(metas) or len(set(labels)) != len(labels):
            raise UserError("pass one distinct label per student")
        return labels
    names = [m["method"] for m in metas]
    if len(set(names)) < len(names):
        names = [n if names.count(n) == 1 else f"{n}-s{m['seed']}" for n, m in zip(names, metas)]
    if len(set(names)) < len(names):
        names = [f"{m['method']}-{Path(m['path']).parent.name}" for m in metas]
    if len(set(names)) < len(names):
        names = [f"{n}-{i}" for i, n in enumerate(names)]
    return names


def _own_bridges(t_net, s_net, ckpt: dict, shape, t_path: str) -> Bridges | None:
    """A student's own complete bridges (FCFD's), or None (then connectors are fitted)."""
    from fcfd_viz.analysis.connectors import new_bridges

    extras = ckpt.get("extras") or {}
    if not extras.get("s2t") or "t2s" not in extras:
        return None
    s2t, t2s = new_bridges(t_net, s_net, shape)
    if set(extras["s2t"]) != set(s2t.state_dict()):
        return None  # partial, e.g. FitNet's single hint connector
    try:
        s2t.load_state_dict(extras["s2t"])
        t2s.load_state_dict(extras["t2s"])
    except RuntimeError as e:
        raise UserError(
            f"the bridges in {ckpt['path']} do not fit teacher {t_path} ({str(e).splitlines()[0]}); "
            "was the student distilled from another teacher?"
        ) from None
    return s2t.eval(), t2s.eval()


def fit_options(**changes) -> FitConfig:
    """A :class:`FitConfig` with ``changes`` applied (convenience for callers and the CLI)."""
    return replace(FitConfig(), **changes)


def gap_loaders(
    loaded: LoadedModels,
    fit_data: str = "full",
    data_dir: str | None = None,
    batch_size: int = 256,
    fit_batch_size: int = 64,
):
    """``(test_loader, {label: train_loader})`` for :meth:`FunctionalGap.compute`.

    The test split is the teacher's dataset's. ``fit_data="full"`` fits every student's
    connectors on the dataset's whole training split (what the teacher saw: the most data, so
    the connectors overfit least); ``"student"`` on each student's own training data (its
    run's data config: subset and subset seed; a 10% digits subset is ~140 images, on which
    a wide stage-3 connector visibly overfits).
    """
    from torch.utils.data import DataLoader

    from fcfd_viz.data import DataConfig, build_datasets

    if fit_data not in ("full", "student"):
        raise UserError(f"fit data must be 'full' or 'student', got {fit_data!r}")
    info = loaded.info
    size = info["input_shape"][-1]
    full = str(info["dataset"]).replace("-hard", "")  # digits-hard: digits' split, subset
    base = {"dataset": full, "data_dir": data_dir, "image_size": size}
    built: dict[tuple, tuple] = {}

    def datasets(cfg: DataConfig):
        key = (cfg.dataset, cfg.image_size, cfg.subset, cfg.subset_seed)
        if key not in built:
            built[key] = build_datasets(cfg)
        return built[key]

    _, test, _ = datasets(DataConfig(**base))
    test_loader = DataLoader(test, batch_size=batch_size, shuffle=False)
    train_loaders = {}
    for label, meta in info["students"].items():
        if fit_data == "full":
            cfg = DataConfig(**base, subset_seed=0)
        else:
            known = {f for f in DataConfig.__dataclass_fields__}
            run = {k: v for k, v in (meta.get("data") or {}).items() if k in known}
            cfg = DataConfig(**{"dataset": meta.get("dataset") or info["dataset"], **run})
            cfg.data_dir, cfg.image_size = data_dir or cfg.data_dir, size
            if cfg.subset_seed is None:
                cfg.subset_seed = meta.get("seed") or 0
        train, _, _ = datasets(cfg)
        train_loaders[label] = DataLoader(train, batch_size=fit_batch_size, shuffle=False)
    return test_loader, train_loaders
