"""One function from a config to a finished run directory: what the CLI, app and notebooks call.

``ExperimentConfig`` -> data loaders, student (by arch), teacher (from a checkpoint),
distiller (by method) -> :class:`~fcfd_viz.training.trainer.Trainer` -> run directory.
"""

from __future__ import annotations

import contextlib
import dataclasses
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch

from fcfd_viz import distill, models
from fcfd_viz.data.datasets import DETECTION_DATASETS, DataConfig, data_info
from fcfd_viz.data.loaders import batch_record, make_loaders
from fcfd_viz.errors import UserError
from fcfd_viz.io.files import read_object
from fcfd_viz.runs.checkpoints import load_checkpoint, model_from_checkpoint
from fcfd_viz.runs.layout import method_fields, record_end
from fcfd_viz.runs.provenance import RUN_FORMAT, SHA_KEY, check_teacher, teacher_record
from fcfd_viz.runs.writer import check_target, open_run
from fcfd_viz.training.callbacks import Callback
from fcfd_viz.training.config import TrainConfig, upgrade_train
from fcfd_viz.training.runtime import dist_info, resolve_device, seed_everything
from fcfd_viz.training.task import CLASSIFICATION, Task
from fcfd_viz.training.tracking import tracking_callbacks
from fcfd_viz.training.trainer import Trainer

DEFAULT_TEACHER_ARCH = "resnet8x4"
DEFAULT_TEACHER_EPOCHS = (
    10  # 99.4% on digits at epoch 8 of 15 already; 10 keep the first launch short
)
TASKS = ("classification", "detection")


@dataclass
class ExperimentConfig:
    """Everything a run needs; written to ``config.json`` in resolved form."""

    method: str = "ce"
    student: str = DEFAULT_TEACHER_ARCH
    teacher: str | None = None  # checkpoint path (file or run directory)
    data: DataConfig = field(default_factory=DataConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    method_kwargs: dict = field(default_factory=dict)  # knobs set; the rest take defaults
    weights: str | None = None  # the student's pretrained weights (tv_* archs), e.g. IMAGENET1K_V1
    # classification (top-1) or detection (mAP: fcfd_viz.detection); config.json names
    # it only for detection, so classification runs write what they always wrote
    task: str = "classification"

    def to_dict(self, distiller=None) -> dict:
        """config.json: ``method`` (the name) and ``method_config`` (every knob, resolved by
        ``distiller``'s config when given) beside student, teacher, data and train; ``task``
        when it is not classification."""
        d = asdict(self)
        if d["task"] == "classification":
            del d["task"]
        if d["train"].get("amp") is None:  # the old name of precision: read, never written
            d["train"].pop("amp", None)
        knobs = d.pop("method_kwargs")
        d["method_config"] = distiller.config_dict() if distiller is not None else knobs
        return d

    @classmethod
    def from_dict(cls, d: dict) -> ExperimentConfig:
        """Inverse of :meth:`to_dict`; also reads config.json written before issue #12
        (:func:`~fcfd_viz.runs.layout.method_fields`). Malformed: KeyError, TypeError, ValueError."""
        name, knobs = method_fields(d)
        if name is None:
            raise KeyError("method")
        return cls(
            method=name,
            student=d["student"],
            teacher=d.get("teacher"),
            data=DataConfig(**d["data"]),
            train=TrainConfig(**upgrade_train(d["train"])),
            method_kwargs=knobs,
            weights=d.get("weights"),
            task=d.get("task", "classification"),
        )


def check_compatible(teacher_ckpt: dict, data_cfg: DataConfig) -> None:
    """The teacher must have been trained on data of the same classes and input size."""
    info = data_info(data_cfg)
    t_classes = teacher_ckpt["model"]["num_classes"]
    t_shape = tuple(teacher_ckpt.get("input_shape", info.input_shape))
    t_data = str(teacher_ckpt.get("dataset", "?")).replace("-hard", "")
    if (
        t_classes != info.num_classes
        or t_shape != info.input_shape
        or t_data != info.name.replace("-hard", "")
    ):
        raise UserError(
            f"teacher {teacher_ckpt.get('path')} was trained on {teacher_ckpt.get('dataset')} {list(t_shape)} with "
            f"{t_classes} classes, but the student data is {info.name} {list(info.input_shape)} with "
            f"{info.num_classes} classes; use a teacher trained on the same dataset and image size"
        )


def build_distiller(cfg: ExperimentConfig):
    """Student, teacher and distiller for ``cfg`` (the student seeded by ``cfg.train.seed``)."""
    if cfg.task == "detection":
        from fcfd_viz.detection import task

        return task.build_distiller(cfg)
    info = data_info(cfg.data)
    models.check_name(cfg.student)
    distill.method_class(cfg.method).check_teacher(cfg.teacher or None)
    teacher = None
    if cfg.teacher:
        ckpt = load_checkpoint(cfg.teacher)
        check_compatible(ckpt, cfg.data)
        teacher = model_from_checkpoint(ckpt)
    seed_everything(cfg.train.seed)
    student = models.create(cfg.student, num_classes=info.num_classes, weights=cfg.weights)
    return distill.create(
        cfg.method, student, teacher, input_shape=info.input_shape, **cfg.method_kwargs
    )


def resume_config(out: str | Path) -> ExperimentConfig:
    """The config of the run in ``out`` that ``--resume`` continues, or a one-line UserError
    (also when its teacher's checkpoint is no longer the one it recorded)."""
    out = Path(out)
    if not (out / "last.pt").is_file():
        raise UserError(f"cannot resume: {out / 'last.pt'} not found")
    obj, why = read_object(out / "config.json")
    if obj is None:
        why = why or "config.json not found"
        raise UserError(f"cannot resume {out}: {why}; start a new run in another --out")
    try:
        cfg = ExperimentConfig.from_dict(obj)
    except (KeyError, TypeError, ValueError, AttributeError) as e:
        raise UserError(
            f"cannot resume {out}: config.json does not describe a run ({type(e).__name__}: "
            f"{e}); start a new run in another --out"
        ) from None
    if cfg.data.dataset == "digit-pairs" and "fixed_canvases" not in obj.get("data", {}):
        cfg.data.fixed_canvases = True  # recorded before the knob: its canvases were fixed
    if cfg.teacher:
        fix = "put that teacher back, or start a new run in another --out"
        check_teacher(cfg.teacher, obj.get(SHA_KEY), f"the run {out}", fix)
    return cfg


def validate(cfg: ExperimentConfig) -> None:
    """Every value of ``cfg`` a run can use, or a one-line UserError naming the flag (the
    method's knobs: the config field; ``fcfd distill`` checks its knob flags first)."""
    if not isinstance(cfg.method_kwargs, dict):
        raise UserError(f"method options must be an object, got {cfg.method_kwargs!r}")
    if cfg.task not in TASKS:
        raise UserError(f"--task must be one of {', '.join(TASKS)}, got {cfg.task!r}")
    cfg.train.validate()
    cfg.data.validate()
    resolve_device(cfg.train.device)  # --device foo, cuda without CUDA: before any run file
    if cfg.task == "detection":
        from fcfd_viz.detection import task

        task.check(cfg)
        return
    if cfg.data.dataset in DETECTION_DATASETS:
        raise UserError(
            f"--dataset {cfg.data.dataset} is a detection dataset; add --task detection"
        )
    distill.make_config(cfg.method, **cfg.method_kwargs)  # unknown knobs, bad values


def run_experiment(
    cfg: ExperimentConfig,
    out: str | Path | None,
    resume: bool = False,
    overwrite: bool = False,
    callbacks: list[Callback] | None = None,
    progress: bool = True,
    tensorboard: bool = True,
    wandb: str | None = None,
    force: bool = False,
    device: str | None = None,
) -> dict:
    """Train as configured and write the run directory ``out`` (rank 0 only). Returns the summary.

    Rank 0 also logs every epoch to TensorBoard (``out/tb``, unless ``tensorboard=False``)
    and, given a project name, to Weights & Biases (:mod:`fcfd_viz.training.tracking`).

    Rank 0 holds ``out``'s writer lock from before its first write to the end (a second
    writer exits with a line naming this one). The final status says how the run ended:
    ``completed``, ``stopped`` (STOP file), ``interrupted`` (Ctrl-C, SIGTERM), ``diverged``
    or ``failed`` (with the error); a crash that leaves no status is seen through the pid.

    A new run records its teacher as an absolute path with the sha256 of its checkpoint
    (:mod:`fcfd_viz.runs.provenance`); ``force`` lets ``overwrite`` replace a run that others
    name as their teacher. ``device``: a resumed run's device, instead of its recorded one.
    """
    rank, world, _ = dist_info()
    if resume:
        if out is None:
            raise UserError("--resume needs --out DIR of the run to continue")
        cfg = resume_config(out)
        cfg.train.device = device or cfg.train.device  # another machine may continue it
    out_dir = Path(out) if out is not None else None
    target = out_dir if rank == 0 else None  # where this process writes the run, if anywhere
    protect = [cfg.teacher] if cfg.teacher else []
    if target is not None:  # before any work: a refused --out costs nothing
        check_target(target, resume=resume, overwrite=overwrite, protect=protect, force=force)
    teacher_sha = None
    if cfg.teacher and not resume:  # valid from any working directory, and its file pinned
        cfg.teacher, teacher_sha = teacher_record(cfg.teacher)
    logs = tracking_callbacks(target, tensorboard, wandb) if target is not None else []
    validate(cfg)
    if cfg.data.subset_seed is None:
        cfg.data.subset_seed = cfg.train.seed  # the student's subset is fixed per seed
    distiller = build_distiller(cfg)
    device = (
        cfg.train.device
        if cfg.train.device != "auto"
        else ("cuda" if torch.cuda.is_available() else "cpu")
    )
    task: Task = CLASSIFICATION
    shape = None
    if cfg.task == "detection":
        from fcfd_viz.detection import task as det

        task, shape = det.DETECTION, det.input_shape(cfg.data)
        train_loader, test_loader = det.make_loaders(cfg.data, cfg.train.seed, rank, world)
    else:
        train_loader, test_loader, info = make_loaders(
            cfg.data, seed=cfg.train.seed, rank=rank, world_size=world, device=device
        )
        shape = list(info.input_shape)
    # what the run adds to the distiller's own state (method, model spec): see Trainer
    meta = {
        "teacher": cfg.teacher,
        "dataset": cfg.data.dataset,
        "seed": cfg.train.seed,
        "input_shape": shape,
    }
    if resume and out_dir is not None:  # the run it continues has the teacher's hash (or none)
        teacher_sha = (read_object(out_dir / "config.json")[0] or {}).get(SHA_KEY)
    if teacher_sha:
        meta[SHA_KEY] = teacher_sha
    # the trainer (device, precision, compile) is built before the run directory is
    # touched, like config, models and data: a bad option never leaves a half-made run, and
    # --overwrite never deletes a run for nothing
    trainer = Trainer(
        distiller,
        train_loader,
        test_loader,
        cfg.train,
        callbacks=[*(callbacks or []), *logs],
        meta=meta,
        progress=progress,
        task=task,
    )
    opened = (
        open_run(target, resume=resume, overwrite=overwrite, protect=protect, force=force)
        if target is not None
        else contextlib.nullcontext()
    )
    with opened as run:
        trainer.run = run
        if run is not None and not resume:
            # how the global batch was split and what precision ran: records, never read
            # back as settings; the format marker says the folder is an fcfd-viz run
            record = {"format": RUN_FORMAT, **cfg.to_dict(distiller)}
            if teacher_sha:
                record[SHA_KEY] = teacher_sha
            run.write_config(
                {**record, "distributed": batch_record(cfg.data, world), "runtime": trainer.runtime}
            )
        if resume and out_dir is not None:
            trainer.resume(load_checkpoint(out_dir / "last.pt"))
        try:
            return trainer.fit()
        except BaseException as e:
            if run is not None:
                record_end(run, e)
            raise
        finally:
            for log in logs:
                log.close()


def replace(cfg, **changes):
    """``dataclasses.replace`` that also accepts nested ``data``/``train`` dicts."""
    for key in ("data", "train"):
        if isinstance(changes.get(key), dict):
            changes[key] = dataclasses.replace(getattr(cfg, key), **changes[key])
    return dataclasses.replace(cfg, **changes)
