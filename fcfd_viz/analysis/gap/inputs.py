"""Teacher, students and their bridges from checkpoints, and the data loaders the
functional gap (:mod:`fcfd_viz.analysis.gap.functional`) runs on."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path
from typing import NamedTuple, cast

from torch import nn

from fcfd_viz.analysis.gap.fit_config import FitConfig
from fcfd_viz.distill.bridges import Bridge
from fcfd_viz.errors import UserError
from fcfd_viz.models import legacy
from fcfd_viz.models.base import StagedNet
from fcfd_viz.runs.layout import method_fields

Bridges = tuple[nn.ModuleDict, nn.ModuleDict | None]


def check_pair(teacher: StagedNet, student: StagedNet, label: str = "student") -> None:
    if student.num_stages != teacher.num_stages:
        raise UserError(
            f"{label} ({getattr(student, 'arch', '?')}) has {student.num_stages} stages but the "
            f"teacher ({getattr(teacher, 'arch', '?')}) has {teacher.num_stages}; the functional gap "
            "needs networks split into the same number of stages"
        )


def check_bridges(label: str, s2t: nn.ModuleDict, t_shapes: Sequence[Sequence[int]]) -> None:
    """``s2t`` (student ``label``'s own bridges) covers stages 1 .. n-1 of the teacher, whose
    stage features have shapes ``t_shapes``, each mapping to its stage's shape."""
    want = {str(k) for k in range(1, len(t_shapes))}
    if set(s2t.keys()) != want:
        raise UserError(
            f"student {label!r}: s2t bridges must cover stages {sorted(want)}, got {sorted(s2t.keys())}"
        )
    for k in s2t.keys():
        dst = tuple(cast(Bridge, s2t[k]).dst)
        if dst != tuple(t_shapes[int(k)]):
            raise UserError(
                f"student {label!r}: the stage {k} bridge maps to {list(dst)}, "
                f"but the teacher's feature is {list(t_shapes[int(k)])}: were the bridges trained with another teacher?"
            )


class _Loaded(NamedTuple):
    teacher: StagedNet
    students: dict[str, StagedNet]
    bridges: dict[str, Bridges | None]


class LoadedModels(_Loaded):
    """``(teacher, students, bridges)``; ``.info`` adds input_shape, dataset and per-student
    metadata (path, method, dataset, seed, data config of its run)."""

    info: dict

    @property
    def methods(self) -> dict[str, str]:
        """``{label: method name}`` of the students (``FunctionalGap(..., methods=...)``)."""
        return {label: meta["method"] for label, meta in self.info["students"].items()}


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
    from fcfd_viz.runs.checkpoints import load_checkpoint, model_from_checkpoint
    from fcfd_viz.runs.provenance import common_teacher

    if not paths:
        raise UserError("pass at least one student checkpoint")
    ckpts = [load_checkpoint(p) for p in paths]
    teacher = common_teacher(ckpts, teacher)
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
        try:
            method = method_fields(c)[0]
        except ValueError:  # a malformed method entry: the label falls back to "student"
            method = None
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
    names = student_labels(metas, labels)
    students, bridges = {}, {}
    for name, c in zip(names, ckpts):
        net = model_from_checkpoint(c)
        check_pair(t_net, net, f"student {c['path']}")
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
    from fcfd_viz.io.files import read_json

    cfg = Path(ckpt_path).parent / "config.json"
    try:
        return dict(read_json(cfg).get("data") or {}) or None
    except (OSError, ValueError, AttributeError):
        return None


def student_labels(metas: list[dict], labels: Sequence[str] | None) -> list[str]:
    """One distinct label per student (``metas``: path, method, seed): ``labels`` when
    given, else the method, then ``-s<seed>``, the run name or an index for duplicates."""
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
    from fcfd_viz.analysis.gap.connectors import new_bridges

    extras = ckpt.get("extras") or {}
    if not extras.get("s2t") or "t2s" not in extras:
        return None
    legacy.check_extras(ckpt, s_net.arch, t_net.arch)
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


def first_items(ds, n: int | None):
    """The first ``n`` items of dataset ``ds`` (all of it for ``None`` or ``n >= len``).

    Every split the toolkit builds is in shuffled order (digits and digit-pairs draw their
    order from the seed, CIFAR ships shuffled, detection scenes are independent), so a prefix
    is a deterministic sample with every class in it in proportion."""
    from torch.utils.data import Subset

    if n is None or n >= len(ds):
        return ds
    if n < 1:
        raise UserError(f"the number of images must be >= 1, got {n}")
    return Subset(ds, range(n))


def gap_loaders(
    loaded: LoadedModels,
    fit_data: str = "full",
    data_dir: str | None = None,
    batch_size: int = 256,
    fit_batch_size: int = 64,
    fit_images: int | None = None,
):
    """``(test_loader, {label: train_loader})`` for :meth:`FunctionalGap.compute`.

    The test split is the teacher's dataset's. ``fit_data="full"`` fits every student's
    connectors on the dataset's whole training split (what the teacher saw: the most data, so
    the connectors overfit least); ``"student"`` on each student's own training data (its
    run's data config: subset and subset seed; a 10% digits subset is ~140 images, on which
    a wide stage-3 connector visibly overfits). ``fit_images``: fit on the first N images of
    that data only (:func:`first_items`; the closed-form fit's cost grows with the rows).
    """
    from torch.utils.data import DataLoader

    from fcfd_viz.data.datasets import DataConfig, build_datasets

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
        train = first_items(train, fit_images)
        train_loaders[label] = DataLoader(train, batch_size=fit_batch_size, shuffle=False)
    return test_loader, train_loaders
