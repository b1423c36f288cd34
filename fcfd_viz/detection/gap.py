"""Functional gap of detectors: does a student's FPN level *work* like the teacher's?

For a teacher ``T`` and students ``S`` (:class:`~fcfd_viz.detection.models.Detector`) with
per-level student->teacher bridges ``s2t[k]`` (FCFD's own, or connectors fitted post hoc),
per FPN level ``k`` (``p2`` .. ``p6``), over the test images:

* ``appearance[k] = MSE(s2t[k](S_k), T_k)`` (mean over elements, then over images);
* ``functional[k]``: the teacher's ROI box head on the teacher's FPN with level ``k`` alone
  replaced by the bridged student level (the other levels stay the teacher's, so each
  level's gap is isolated), against the head on the teacher's own FPN: KL of the class
  distributions at T = 1, ``KL(p(bridged) || p(teacher))`` as in the classification gap,
  averaged over proposals; ``box[k]``: the MSE of the box deltas (R, 4K), same setting.
  A proposal pools from one level only (by its size), so a level gets a functional gap only
  through the proposals assigned to it (``rois_per_level``) and is 0 when none are;
* ``all_functional`` / ``all_box``: every level bridged at once.

**Proposals.** Both head passes run at the *same* boxes: the teacher's RPN proposals on the
teacher's own FPN (eval mode: post-NMS, ``rpn_post_nms_top_n_test`` per image). Fixed this
way they are the same for every student, every level and the all-levels pass, so the numbers
measure only how the box head reads the features; the student's RPN (or the teacher's RPN on
a bridged FPN) would move the boxes with the student and mix region proposal into the
comparison. A consequence: a level the box head never pools from (``p6``, which only the RPN
reads) has no functional gap (NaN), only an appearance gap.

Students without bridges get post-hoc connectors: FCFD's bridge architecture per level
(:func:`~fcfd_viz.detection.fcfd.level_bridges`), both networks frozen, fitted to the MSE on
the training split by :func:`~fcfd_viz.analysis.gap.connectors.fit_bridges`, the classification
gap's fit: by default solved in closed form (ridge least squares; a level bridge has no
LeakyReLU, so the solve is the whole fit), or with ``method="adam"`` by the loop under
:data:`DET_FIT`'s small epoch budget. Every network and bridge
runs in eval mode (BN running statistics); no weight or buffer changes.

>>> gap = DetectionGap(teacher, {"kd": kd_net, "fcfd": fcfd_net}, {"fcfd": fcfd_s2t})  # doctest: +SKIP
>>> res = gap.compute(test_loader, train_loader)                                    # doctest: +SKIP
>>> res.to_dict()["students"]["kd (fitted)"]["functional"]["p3"]                    # doctest: +SKIP
"""

from __future__ import annotations

import contextlib
import math
import time
from collections.abc import Mapping

import torch
from torch import Tensor, nn

from fcfd_viz.analysis.base import Analysis
from fcfd_viz.analysis.gap.connectors import FeaturePairs, fit_bridges
from fcfd_viz.analysis.gap.fit_config import FitConfig, FitInfo, fit_plan
from fcfd_viz.analysis.gap.functional import kl_rows
from fcfd_viz.analysis.gap.result import FITTED, OWN
from fcfd_viz.detection.base import run_head
from fcfd_viz.detection.fcfd import level_bridges
from fcfd_viz.detection.gap_result import DetGapEntry, DetGapResult
from fcfd_viz.detection.models import LEVEL_NAMES, Detector, check_pair
from fcfd_viz.errors import UserError
from fcfd_viz.models.batchnorm import freeze, frozen

# closed form by default; with method="adam", a small budget: five 3x3 convolutions on cached
# features plateau within tens of epochs
DET_FIT = FitConfig(max_epochs=30, min_epochs=5, patience=4, batch_size=32)
View = tuple[str, str, nn.ModuleDict]  # student label, "own bridges" | "fitted", s2t


class DetectionGap(Analysis[DetGapResult]):
    """Per-level appearance vs functional gap of ``students`` against ``teacher``.

    Args:
        teacher: the teacher detector.
        students: ``{label: detector}`` (same image transform, classes and FPN levels).
        bridges: ``{label: s2t}``: a student's own bridges, a ModuleDict keyed by FPN level
            key (``"0"`` .. ``"3"``, ``"pool"``) of modules mapping (B, C_s, H, W) to
            (B, C_t, H, W); missing or None: connectors are fitted post hoc.
        methods: ``{label: method name}`` for the entries' ``method``.
    """

    def __init__(
        self,
        teacher: Detector,
        students: Mapping[str, Detector],
        bridges: Mapping[str, nn.ModuleDict | None] | None = None,
        methods: Mapping[str, str] | None = None,
    ) -> None:
        if not students:
            raise UserError("the functional gap needs at least one student")
        self.teacher, self.students = teacher, dict(students)
        self.methods = dict(methods or {})
        for s in self.students.values():
            check_pair(teacher, s)
        self.keys = list(LEVEL_NAMES)
        self.own: dict[str, nn.ModuleDict] = {}
        for label, s2t in (bridges or {}).items():
            if s2t is None:
                continue
            if label not in self.students:
                raise UserError(f"bridges given for unknown student {label!r}")
            if sorted(s2t.keys()) != sorted(self.keys):
                raise UserError(
                    f"student {label!r}: bridges must cover FPN levels {self.keys}, got "
                    f"{list(s2t.keys())}"
                )
            self.own[label] = s2t
        self._fits: dict[str, tuple[FitConfig, nn.ModuleDict, FitInfo]] = {}

    @property
    def levels(self) -> list[str]:
        """Level names in result order (``p2`` .. ``p6``)."""
        return [LEVEL_NAMES[k] for k in self.keys]

    # -- connectors -----------------------------------------------------------------
    def fit(self, train_loader, labels=None, config: FitConfig | None = None, progress=False):
        """Fit s2t connectors for ``labels`` (default: every student) on ``train_loader``
        (one loader of (images, targets) batches, or ``{label: loader}``); a fit with the
        same config is reused. Returns ``{label: FitInfo}``."""
        config = config or DET_FIT
        config.validate()
        out = {}
        for label in labels if labels is not None else list(self.students):
            cached = self._fits.get(label)
            if cached is None or cached[0] != config:
                loader = train_loader[label] if isinstance(train_loader, Mapping) else train_loader
                s2t, info = self._fit_one(self.students[label], loader, config, progress, label)
                self._fits[label] = (config, s2t, info)
            out[label] = self._fits[label][2]
        return out

    def _fit_one(self, student, loader, cfg: FitConfig, progress: bool, label: str):
        t0 = time.perf_counter()
        teacher = self.teacher
        device = next(teacher.parameters()).device
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(cfg.seed)
            cs, ct = student.backbone.out_channels, teacher.backbone.out_channels
            s2t = level_bridges(cs, ct, self.keys).to(device)
        tasks = [(f"s2t/{LEVEL_NAMES[k]}", s2t[k], False, k) for k in self.keys]

        def extract(batch):
            images = [im.to(device) for im in batch[0]]
            x = teacher.transform(images)[0].tensors  # (B, 3, H, W) normalised, padded
            return teacher.backbone(x), student.backbone(x)

        with frozen(teacher), frozen(student):
            per_image = math.inf  # images of varying size (COCO): features never cached
            tf = teacher.transform
            if tf.max_size == tf.min_size[-1]:  # every image resized to one square size
                with torch.no_grad():
                    t, s = extract(([loader.dataset[0][0]], None))
                per_image = sum(v.numel() for v in (*t.values(), *s.values()))
            pairs = FeaturePairs(extract, loader, per_image, cfg)
            info = fit_bridges(tasks, pairs, cfg, progress, f"fit connectors: {label}")
        freeze(s2t.eval())
        info.seconds = time.perf_counter() - t0
        return s2t, info

    def fitted(self, label: str) -> tuple[nn.ModuleDict, FitInfo] | None:
        """The connectors fitted for ``label`` so far, or None."""
        f = self._fits.get(label)
        return None if f is None else f[1:]

    def set_fitted(self, label: str, s2t: nn.ModuleDict, info: FitInfo) -> None:
        """Use connectors fitted earlier for ``label`` (reused for ``info.config``)."""
        if label not in self.students:
            raise UserError(f"unknown student {label!r}")
        self._fits[label] = (info.config, s2t.eval(), info)

    def views(self, fitted: bool = True) -> dict[str, View]:
        """``{"<label> (own bridges)" | "<label> (fitted)": (label, kind, s2t)}``."""
        views: dict[str, View] = {}
        for label in self.students:
            if label in self.own:
                views[f"{label} ({OWN})"] = (label, OWN, self.own[label])
            if fitted and label in self._fits:
                views[f"{label} ({FITTED})"] = (label, FITTED, self._fits[label][1])
        return views

    # -- the measurement -------------------------------------------------------------
    def compute(
        self,
        test_loader,
        train_loader=None,
        fit: FitConfig | bool | None = None,
        progress: bool = False,
    ) -> DetGapResult:
        """Measure every student on ``test_loader`` ((images, targets) batches; targets
        unused). ``fit``: a :class:`FitConfig`, True/None (:data:`DET_FIT`, needs
        ``train_loader``) or False (only students with their own bridges)."""
        t0 = time.perf_counter()
        unbridged = [lab for lab in self.students if lab not in self.own]
        config = fit_plan(fit, train_loader, unbridged, DET_FIT)
        if config is not None:
            self.fit(train_loader, config=config, progress=progress)
        res = self._evaluate(self.views(fitted=config is not None), test_loader, progress)
        for entry in res.entries.values():
            if entry.bridges == FITTED:
                entry.fit = self._fits[entry.student][2]
        res.seconds = time.perf_counter() - t0
        return res

    @torch.no_grad()
    def _evaluate(self, views: dict[str, View], loader, progress: bool) -> DetGapResult:
        teacher, keys = self.teacher, self.keys
        device = next(teacher.parameters()).device
        read = set(teacher.roi_heads.box_roi_pool.featmap_names)
        zeros = lambda: torch.zeros(len(keys), dtype=torch.float64)  # noqa: E731
        app, func, box = ({v: zeros() for v in views} for _ in range(3))
        every = {v: torch.zeros(2, dtype=torch.float64) for v in views}  # all: KL, box MSE
        per_level = torch.zeros(len(keys), dtype=torch.int64)  # proposals pooled per level
        pool = teacher.roi_heads.box_roi_pool
        pooled = [pool.featmap_names.index(k) if k in read else -1 for k in keys]
        used = {lab for lab, _, _ in views.values()}
        images_seen = rois = 0
        if progress:
            from tqdm.auto import tqdm

            loader = tqdm(loader, desc="detection gap", unit="batch", leave=False)
        with contextlib.ExitStack() as stack:
            for m in (teacher, *(self.students[lab] for lab in used)):
                stack.enter_context(frozen(m))
            for _, _, s2t in views.values():
                stack.enter_context(frozen(s2t))
            for images, _ in loader:
                batch, _ = teacher.transform([im.to(device) for im in images])
                sizes = batch.image_sizes
                t_feats = teacher.backbone(batch.tensors)  # level key -> (B, C_t, H_l, W_l)
                proposals, _ = teacher.rpn(batch, t_feats)  # per image (R_i, 4)
                t_logits, t_deltas = run_head(teacher, t_feats, proposals, sizes)  # (R, K), (R, 4K)
                t_logp = torch.log_softmax(t_logits.double(), -1)
                images_seen, rois = images_seen + len(images), rois + len(t_logits)
                where = pool.map_levels(proposals)  # (R,) index into featmap_names
                per_level += torch.tensor([int((where == j).sum()) for j in pooled])

                ref = (teacher, proposals, sizes, t_logp, t_deltas)

                s_feats = {lab: self.students[lab].backbone(batch.tensors) for lab in used}
                for v, (lab, _, s2t) in views.items():
                    bridged = {k: s2t[k](s_feats[lab][k]) for k in keys}  # (B, C_t, H_l, W_l)
                    for i, k in enumerate(keys):
                        diff = (bridged[k] - t_feats[k]).double().pow(2)
                        app[v][i] += float(diff.flatten(1).mean(1).sum())
                        if k in read:
                            f, b = _head_gap(ref, {**t_feats, k: bridged[k]})
                            func[v][i] += f
                            box[v][i] += b
                    every[v] += _head_gap(ref, bridged)
        if images_seen == 0:
            raise UserError("the test loader is empty")
        if rois == 0:
            raise UserError("the teacher's RPN proposed no box on the test images")
        unread = torch.tensor([k not in read for k in keys])
        res = DetGapResult(self.levels, images_seen, rois, per_level.tolist())
        for v, (lab, kind, _) in views.items():
            f, b = func[v] / rois, box[v] / rois
            f[unread], b[unread] = math.nan, math.nan
            all_f, all_b = (every[v] / rois).tolist()
            res.entries[v] = DetGapEntry(
                lab, kind, self.methods.get(lab), app[v] / images_seen, f, b, all_f, all_b
            )
        return res


def _head_gap(ref: tuple, feats) -> Tensor:
    """(KL sum, box-delta MSE sum) over a batch's ROIs of the teacher's head on ``feats``
    against its head on its own FPN; ``ref``: (teacher, proposals, image sizes, the
    teacher's log-probabilities (R, K), its deltas (R, 4K))."""
    teacher, proposals, sizes, t_logp, t_deltas = ref
    logits, deltas = run_head(teacher, feats, proposals, sizes)
    mse = (deltas.double() - t_deltas.double()).pow(2).mean(1).sum()
    return torch.stack([kl_rows(logits, t_logp).sum(), mse]).cpu()


def bridges_of(s2t_state: dict, teacher: Detector, student: Detector) -> nn.ModuleDict:
    """An FCFD student's own s2t bridges from its checkpoint's ``extras["s2t"]`` (eval)."""
    s2t = level_bridges(student.backbone.out_channels, teacher.backbone.out_channels, LEVEL_NAMES)
    try:
        s2t.load_state_dict(s2t_state)
    except RuntimeError as e:
        raise UserError(
            f"the student's bridges do not fit this teacher ({str(e).splitlines()[0]}); was "
            "it distilled from another teacher?"
        ) from None
    return s2t.eval()


__all__ = ["DET_FIT", "DetectionGap", "bridges_of"]
