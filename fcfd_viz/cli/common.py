"""Argument groups shared by sub-commands (data, training) and their conversion to configs."""

from __future__ import annotations

import argparse
import json
import sys

from fcfd_viz.data import DATASETS, DataConfig
from fcfd_viz.train_config import TrainConfig


def add_data_args(p: argparse.ArgumentParser) -> None:
    """Data flags; each defaults to None so presets and configs fill what the user left out."""
    g = p.add_argument_group("data")
    g.add_argument("--dataset", default=None, choices=DATASETS, help="dataset (default: digits)")
    g.add_argument("--data-dir", default=None, help="folder with CIFAR / ImageNet data")
    g.add_argument(
        "--download",
        action="store_true",
        default=None,
        help="download CIFAR into --data-dir (needs internet)",
    )
    g.add_argument(
        "--image-size",
        type=int,
        default=None,
        help="digits / ImageNet image size (default: 16 / 224)",
    )
    g.add_argument("--batch-size", type=int, default=None, help="batch size (default: 64)")
    g.add_argument(
        "--subset", type=float, default=None, help="stratified fraction of the training split"
    )
    g.add_argument(
        "--workers", dest="num_workers", type=int, default=None, help="data loader workers"
    )


def add_train_args(p: argparse.ArgumentParser, epochs: int | None = None) -> None:
    g = p.add_argument_group("training")
    g.add_argument("--epochs", type=int, default=epochs, help="number of epochs")
    g.add_argument("--lr", type=float, default=None, help="learning rate (default 0.05)")
    g.add_argument("--weight-decay", type=float, default=None)
    g.add_argument("--schedule", choices=["cosine", "step", "constant"], default=None)
    g.add_argument("--milestones", type=int, nargs="*", default=None, help="step schedule epochs")
    g.add_argument("--seed", type=int, default=0)
    g.add_argument("--device", default="auto", help="auto, cpu, cuda, cuda:N")
    g.add_argument("--amp", choices=["auto", "bf16", "fp16", "off"], default="auto")
    g.add_argument("--compile", action="store_true", help="torch.compile the training step")
    g.add_argument("--out", required=False, help="run directory to write")
    g.add_argument("--resume", action="store_true", help="continue the run in --out from last.pt")
    g.add_argument("--overwrite", action="store_true", help="replace a non-empty --out")
    g.add_argument("--no-progress", action="store_true", help="no progress bars")
    g.add_argument(
        "--no-tensorboard", action="store_true", help="no TensorBoard event files in --out/tb"
    )
    g.add_argument(
        "--wandb",
        default=None,
        metavar="PROJECT",
        help="also log to this Weights & Biases "
        "project (pip install wandb; WANDB_MODE=offline: no network)",
    )


def tracking(args: argparse.Namespace) -> dict:
    """run_experiment's logging arguments from ``--no-tensorboard`` and ``--wandb``."""
    return {"tensorboard": not args.no_tensorboard, "wandb": args.wandb}


def data_config(args: argparse.Namespace, base: DataConfig | None = None) -> DataConfig:
    """``base`` (or the defaults) overridden by every data flag the user gave."""
    cfg = base or DataConfig()
    for name in (
        "dataset",
        "data_dir",
        "download",
        "image_size",
        "batch_size",
        "subset",
        "num_workers",
    ):
        value = getattr(args, name, None)
        if value is not None:
            setattr(cfg, name, value)
    return cfg


def train_config(args: argparse.Namespace, base: TrainConfig | None = None) -> TrainConfig:
    cfg = base or TrainConfig()
    for name in ("epochs", "lr", "weight_decay", "schedule", "milestones"):
        value = getattr(args, name, None)
        if value is not None:
            setattr(cfg, name, value)
    cfg.seed, cfg.device, cfg.amp, cfg.compile = args.seed, args.device, args.amp, args.compile
    return cfg


def add_output_args(p: argparse.ArgumentParser) -> None:
    """``--json``, ``--html OUT`` and ``--no-progress``: how an analysis command reports."""
    p.add_argument("--json", action="store_true", help="print JSON")
    p.add_argument(
        "--html", default=None, metavar="OUT", help="write the figures into one HTML file"
    )
    p.add_argument("--no-progress", action="store_true", help="no progress bars")


def print_json(obj) -> None:
    json.dump(obj, sys.stdout, indent=2, sort_keys=True, default=str)
    sys.stdout.write("\n")


def print_summary(summary: dict, out) -> None:
    """The one result line of a training command (rank 0 only under torchrun)."""
    import os

    if int(os.environ.get("RANK", 0)) != 0:
        return
    what = f"{summary['method']} {summary['student']} on {summary['dataset']}"
    if summary.get("top1") is None:
        print(f"{what}: stopped before the first epoch ended -> {out}")
        return
    state = f"stopped after {summary['epochs']} epochs, " if summary.get("stopped") else ""
    print(
        f"{what}: {state}test top-1 {summary['top1']:.2f}% (best {summary['best_top1']:.2f}%) "
        f"in {summary['seconds']:.0f} s -> {out}"
    )


def report_out(args: argparse.Namespace, out: dict, figures, title: str, text) -> int:
    """Write ``figures()`` to ``--html`` (titled ``title``), then print ``out`` as JSON
    (``--json``) or ``text(out, html)``; the exit code 0."""
    if args.html:
        write_html(args.html, figures(), title)
    if args.json:
        print_json(out)
    else:
        text(out, args.html)
    return 0


def write_html(path: str, figures: list, title: str) -> None:
    """The figures in one self-contained HTML file, written atomically (``--html OUT``)."""
    from pathlib import Path

    from fcfd_viz import viz
    from fcfd_viz.errors import UserError
    from fcfd_viz.fsio import atomic_write

    target = Path(path)
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        atomic_write(target, viz.figures_to_html(figures, title))
    except OSError as e:
        raise UserError(f"cannot write {target}: {e.strerror or e}") from None
