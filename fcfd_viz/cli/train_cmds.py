"""``fcfd train-teacher``, ``fcfd eval``, ``fcfd runs``, ``fcfd models``."""

from __future__ import annotations

import argparse
import sys
import warnings

from fcfd_viz.cli.common import (
    add_data_args,
    add_train_args,
    data_config,
    print_json,
    print_summary,
    tracking,
    train_config,
)
from fcfd_viz.errors import UserError


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("train-teacher", help="train a network with cross-entropy (a teacher)")
    p.add_argument(
        "--arch", default=None, help="architecture (default: resnet8x4; `fcfd models` lists all)"
    )
    p.add_argument(
        "--weights",
        default=None,
        metavar="NAME",
        help="fine-tune from pretrained weights (tv_* archs: torchvision's names, e.g. "
        "IMAGENET1K_V1, read from the torch hub cache; never downloaded)",
    )
    add_data_args(p)
    add_train_args(p)
    p.set_defaults(func=cmd_train_teacher)

    p = sub.add_parser("eval", help="test top-1 of a checkpoint")
    p.add_argument("ckpt", help="checkpoint file or run directory")
    p.add_argument("--arch", default=None, help="refuse a checkpoint of another architecture")
    add_data_args(p)
    p.add_argument("--device", default="auto")
    p.add_argument("--json", action="store_true", help="print JSON")
    p.set_defaults(func=cmd_eval)

    p = sub.add_parser("runs", help="table of run directories")
    p.add_argument(
        "dir", nargs="?", default=None, help="runs folder (default: $FCFD_RUNS_DIR or ./runs)"
    )
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_runs)

    p = sub.add_parser(
        "models", help="list architectures (and the pretrained weights those that take them have)"
    )
    p.set_defaults(func=cmd_models)


def cmd_train_teacher(args: argparse.Namespace) -> int:
    from fcfd_viz import models
    from fcfd_viz.pipeline import (
        DEFAULT_TEACHER_ARCH,
        DEFAULT_TEACHER_EPOCHS,
        ExperimentConfig,
        run_experiment,
    )
    from fcfd_viz.train_config import TrainConfig

    arch = args.arch or DEFAULT_TEACHER_ARCH
    models.check_name(arch)
    if args.weights is not None and not models.takes_weights(arch):
        raise UserError(f"--weights: {models.registry.no_weights(arch)}")
    data = data_config(args)
    # digits: a short cosine run; CIFAR/ImageNet: the 240-epoch step schedule of the paper
    if data.dataset.startswith("digits"):
        base = TrainConfig(epochs=DEFAULT_TEACHER_EPOCHS)
    else:
        base = TrainConfig(epochs=240, schedule="step", milestones=[150, 180, 210])
    cfg = ExperimentConfig(
        method="ce", student=arch, data=data, train=train_config(args, base), weights=args.weights
    )
    out = args.out or f"runs/teacher-{arch}-{data.dataset}-s{args.seed}"
    with warnings.catch_warnings():
        warnings.showwarning = _note_new_classifier(warnings.showwarning)
        summary = run_experiment(
            cfg,
            out,
            resume=args.resume,
            overwrite=args.overwrite,
            progress=not args.no_progress,
            **tracking(args),
        )
    print_summary(summary, out)
    return 0


def _note_new_classifier(show):
    """``warnings.showwarning`` that says a new classifier on pretrained weights in one line."""
    from fcfd_viz.models.pretrained import NewClassifierWarning

    def note(message, category, *rest, **kwargs):
        if issubclass(category, NewClassifierWarning):
            print(f"fcfd train-teacher: note: {message}", file=sys.stderr)
        else:
            show(message, category, *rest, **kwargs)

    return note


def cmd_eval(args: argparse.Namespace) -> int:
    from fcfd_viz.checkpoints import load_checkpoint, model_from_checkpoint
    from fcfd_viz.data import DataConfig, make_loaders
    from fcfd_viz.runtime import evaluate, resolve_device

    ckpt = load_checkpoint(args.ckpt)
    net = model_from_checkpoint(ckpt, expect_arch=args.arch)
    dataset = args.dataset or ckpt.get("dataset")
    if dataset is None:
        raise UserError("the checkpoint names no dataset; pass --dataset")
    shape = ckpt.get("input_shape", [3, 16, 16])
    cfg = DataConfig(
        dataset=dataset,
        data_dir=args.data_dir,
        download=bool(args.download),
        image_size=args.image_size or shape[-1],
        batch_size=args.batch_size or 256,
        num_workers=args.num_workers,
    )
    _, test_loader, info = make_loaders(cfg)
    if info.num_classes != net.num_classes:
        raise UserError(
            f"checkpoint has {net.num_classes} classes but {dataset} has {info.num_classes}"
        )
    device = resolve_device(args.device)
    top1 = evaluate(net.to(device), test_loader, device)
    result = {
        "ckpt": ckpt["path"],
        "arch": net.arch,
        "dataset": dataset,
        "top1": top1,
        "n": len(test_loader.dataset),
    }
    if args.json:
        print_json(result)
    else:
        print(f"{net.arch} on {dataset}: test top-1 {top1:.2f}% ({result['n']} images)")
    return 0


def cmd_runs(args: argparse.Namespace) -> int:
    import os

    from fcfd_viz.listing import list_runs

    root = args.dir or os.environ.get("FCFD_RUNS_DIR", "runs")
    rows = list_runs(root)
    if args.json:
        print_json(rows)
        return 0
    if not rows:
        print(f"no runs in {root}")
        return 0
    cols = ["name", "method", "student", "dataset", "seed", "epochs", "top1", "best_top1", "state"]
    for r in rows:  # a malformed run is one row that says why (last column: no width limit)
        if r["state"] == "unreadable":
            r["state"] = f"unreadable: {r['error']}"
    fmt = [
        [
            ("-" if r[c] is None else f"{r[c]:.2f}" if isinstance(r[c], float) else str(r[c]))
            for c in cols
        ]
        for r in rows
    ]
    widths = [max(len(c), *(len(f[i]) for f in fmt)) for i, c in enumerate(cols)]
    print("  ".join(c.ljust(w) for c, w in zip(cols, widths)))
    for f in fmt:
        print("  ".join(v.ljust(w) for v, w in zip(f, widths)))
    return 0


def cmd_models(args: argparse.Namespace) -> int:
    from fcfd_viz import models
    from fcfd_viz.models import pretrained, torchvision_zoo

    names = models.names()
    width = max(map(len, names))
    for name in names:
        line = name
        if name in torchvision_zoo.TORCHVISION:
            weights = pretrained.weight_names(torchvision_zoo.builder_of(name))
            line = f"{name:{width}s}  --weights {' | '.join(weights)}"
        elif models.takes_weights(name):
            line = f"{name:{width}s}  --weights NAME"
        print(line.rstrip())
    return 0
