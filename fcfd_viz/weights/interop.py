"""Weights in from other code bases, out to them.

:func:`import_teacher` turns a weights file (a CRD / RepDistiller teacher, a bare
state_dict; see :mod:`fcfd_viz.weights.foreign`) into an ordinary run directory, as if
``fcfd train-teacher`` had written it: ``config.json`` (method ``ce``, zero epochs),
``best.pt`` (the model spec, dataset, input shape and ``source``: path, sha256 and format of
the file), ``summary.json`` (the test top-1 when the data was there to measure it, and
``source``) and ``status.json``. ``fcfd eval``, ``distill --teacher``, ``probe``, ``gap`` and
the app read it like any run. :func:`export_weights` writes a run's network as a plain
state_dict (our names) or as CRD's ``{"model": state_dict}`` with CRD's names.
"""

from __future__ import annotations

import os
from pathlib import Path

from fcfd_viz import distill, models
from fcfd_viz.data.datasets import DATASETS, EMBEDDED, DataConfig, data_info, dataset_size
from fcfd_viz.data.loaders import make_loaders
from fcfd_viz.errors import UserError
from fcfd_viz.experiments.experiment import ExperimentConfig
from fcfd_viz.io.files import atomic_write_with, user_os_errors
from fcfd_viz.models import crd
from fcfd_viz.runs.checkpoints import load_checkpoint, model_from_checkpoint, save_checkpoint
from fcfd_viz.runs.provenance import RUN_FORMAT
from fcfd_viz.runs.writer import RUN_FILES, check_target, open_run
from fcfd_viz.training.config import TrainConfig
from fcfd_viz.training.runtime import evaluate, resolve_device
from fcfd_viz.weights.foreign import fit_weights, read_weights

EXPORT_FORMATS = ("state_dict", "crd")
IMPORT_DATASETS = tuple(d for d in DATASETS if d != "imagenet")  # known shape without data


def measurable(dataset: str, data_dir: str | None) -> bool:
    """Whether an import measures test accuracy: digits and digit-pairs are built in; CIFAR
    when a data folder is named (``--data-dir`` or ``$FCFD_DATA_DIR``)."""
    return dataset in EMBEDDED or bool(data_dir or os.environ.get("FCFD_DATA_DIR"))


def measure_top1(
    net: models.StagedNet, data: DataConfig, device: str = "auto"
) -> tuple[float, int]:
    """``(top-1 %, number of test images)`` of ``net`` on ``data``'s test split."""
    _, test_loader, _ = make_loaders(data)
    dev = resolve_device(device)
    top1 = evaluate(net.to(dev), test_loader, dev).top1
    net.cpu()
    return top1, dataset_size(test_loader.dataset)


def import_teacher(
    file: str | os.PathLike,
    arch: str,
    out: str | os.PathLike,
    dataset: str = "cifar100",
    data_dir: str | None = None,
    overwrite: bool = False,
    device: str = "auto",
) -> dict:
    """Make the run directory ``out`` from the weights ``file`` of a ``arch`` trained on
    ``dataset``; returns its summary (``top1`` None when the data was not there to measure).

    ``arch`` is ours or CRD's name (``resnet32x4``, ``ResNet50``, ``wrn_40_2_vanilla``).
    Nothing is written until the file fits the network (a one-line :class:`UserError`
    names the first misfit) and the accuracy, if measurable, is measured.
    """
    if dataset not in IMPORT_DATASETS:
        raise UserError(f"--dataset {dataset!r}: choose one of {', '.join(IMPORT_DATASETS)}")
    arch, out = crd.resolve_arch(arch), Path(out)
    check_target(out, overwrite=overwrite, protect=[file], resumable=False)  # before any work
    weights = read_weights(file)
    data = DataConfig(dataset=dataset, data_dir=data_dir, batch_size=256, num_workers=0)
    info = data_info(data)
    net = models.create(arch, num_classes=info.num_classes)
    fit_weights(net, weights, dataset)
    top1, n = measure_top1(net, data, device) if measurable(dataset, data_dir) else (None, None)
    source = weights.source()
    distiller = distill.create("ce", net, None, input_shape=info.input_shape)
    meta = {
        "teacher": None,
        "dataset": dataset,
        "seed": None,
        "input_shape": list(info.input_shape),
    }
    ckpt = {**distiller.checkpoint_state(), **meta, "epoch": 0, "best_top1": top1, "elapsed": 0.0}
    # the keys of a trained run's summary (fcfd_viz.training.trainer.Trainer.summary), and the source
    summary = {
        "top1": top1,
        "best_top1": top1,
        "test_images": n,
        "epochs": 0,
        "seconds": 0.0,
        "stopped": False,
        "method": "ce",
        "arch": arch,
        "student": arch,
        "num_classes": info.num_classes,
        **meta,
        "source": source,
    }
    cfg = ExperimentConfig(method="ce", student=arch, data=data, train=TrainConfig(epochs=0))
    with open_run(out, overwrite=overwrite, protect=[file]) as run:
        run.write_config({"format": RUN_FORMAT, **cfg.to_dict(distiller), "source": source})
        save_checkpoint(run.file("best.pt"), {**ckpt, "source": source})
        run.write_summary(summary)
        run.write_status(state="completed", epoch=0, epochs=0)
    return summary


def export_weights(
    run: str | os.PathLike, fmt: str, out: str | os.PathLike, overwrite: bool = False
) -> dict:
    """Write the network of ``run`` (a run directory or checkpoint) to ``out``: ``state_dict``
    (our names, a plain dict of tensors) or ``crd`` (``{"model": state_dict}`` with CRD's
    names). Atomic; an existing ``out`` only with ``overwrite``, never a run's checkpoint.
    Returns what was written (arch, format, number of tensors, path)."""
    import torch

    if fmt not in EXPORT_FORMATS:
        raise UserError(f"--format {fmt!r}: choose one of {', '.join(EXPORT_FORMATS)}")
    ckpt = load_checkpoint(run)
    net = model_from_checkpoint(ckpt)
    out = Path(out)
    _check_export_target(out, Path(ckpt["path"]), overwrite)
    if fmt == "crd":
        if net.arch not in crd.CRD_NAMES:
            raise UserError(
                f"{net.arch} has no CRD layout (it has: {', '.join(crd.CRD_NAMES)}); "
                "use --format state_dict"
            )
        obj = {"model": crd.to_crd(net)}
    else:
        obj = net.state_dict()
    with user_os_errors(out):
        out.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_with(out, lambda f: torch.save(obj, f))
    tensors = obj["model"] if fmt == "crd" else obj
    return {"arch": net.arch, "format": fmt, "tensors": len(tensors), "out": str(out)}


def _check_export_target(out: Path, source: Path, overwrite: bool) -> None:
    if out.is_dir():
        raise UserError(f"--out {out} is a directory; name the file to write")
    if out.exists() and out.resolve() == source.resolve():
        raise UserError(f"--out {out} is the checkpoint being exported; choose another --out")
    if out.name in RUN_FILES and (out.parent / "config.json").exists():
        raise UserError(f"--out {out} is a run directory's own file; choose another --out")
    if out.exists() and not overwrite:
        raise UserError(f"{out} exists; pass --overwrite to replace it")
