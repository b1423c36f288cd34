"""``fcfd train-teacher``, ``fcfd eval``, ``fcfd runs``, ``fcfd models``."""

from __future__ import annotations

import argparse
import os
import sys
import warnings

from fcfd_viz.cli.common import (
    add_config_arg,
    add_data_args,
    add_run_args,
    add_task_arg,
    add_train_args,
    file_layer,
    print_json,
    print_summary,
    run_from_args,
)
from fcfd_viz.errors import UserError


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("train-teacher", help="train a network with cross-entropy (a teacher)")
    add_config_arg(p, "defaults < --config file < flags given on the command line")
    add_task_arg(p)
    p.add_argument(
        "--preset",
        default=None,
        help="a detection preset (`fcfd presets`) whose teacher, data and schedule to train; "
        "implies --task detection",
    )
    g = p.add_argument_group("model")
    g.add_argument(
        "--arch",
        default=None,
        help="architecture (default: resnet8x4; resnet32x4 on digit-pairs; `fcfd models` lists all; "
        "--task detection: "
        "det_resnet18, or det_resnet10, det_mobilenetv2, frcnn_r18/r50/r101/mbv2)",
    )
    g.add_argument(
        "--weights",
        default=None,
        metavar="NAME",
        help="fine-tune from pretrained weights (tv_* archs: torchvision's names, e.g. "
        "IMAGENET1K_V1, read from the torch hub cache; never downloaded)",
    )
    add_data_args(p)
    add_train_args(
        p,
        "a teacher's defaults: 10 epochs (cosine) on digits; 240 on CIFAR / ImageNet, the lr "
        "x 0.1 at epochs 150, 180, 210; detection: the det-digits / coco preset's schedule",
    )
    add_run_args(p)
    p.set_defaults(func=cmd_train_teacher)

    p = sub.add_parser("eval", help="test top-1 and top-5 of a checkpoint")
    p.add_argument("ckpt", help="checkpoint file or run directory")
    p.add_argument("--arch", default=None, help="refuse a checkpoint of another architecture")
    add_data_args(p)
    p.add_argument("--device", default="auto", help="auto, cpu, cuda, cuda:N")
    p.add_argument("--json", action="store_true", help="print JSON")
    p.set_defaults(func=cmd_eval)

    p = sub.add_parser("runs", help="table of run directories")
    p.add_argument(
        "dir", nargs="?", default=None, help="runs folder (default: $FCFD_RUNS_DIR or ./runs)"
    )
    p.add_argument("--json", action="store_true")
    p.add_argument(
        "--group",
        action="store_true",
        help="one line per config (same config.json but for the seed) over its completed runs: "
        "mean ± std over seeds of last and best top-1 and top-5 (mAP for detection runs), "
        "and the number of seeds",
    )
    p.set_defaults(func=cmd_runs)

    p = sub.add_parser(
        "models", help="list architectures (and the pretrained weights those that take them have)"
    )
    p.set_defaults(func=cmd_models)


def cmd_train_teacher(args: argparse.Namespace) -> int:
    from fcfd_viz import models
    from fcfd_viz.cli.config_file import check_knobs, experiment, flags_layer, merge
    from fcfd_viz.experiments.teachers import teacher_defaults

    file = file_layer(args)
    if file.get("method", "ce") != "ce" or file.get("teacher"):
        raise UserError(
            f"--config {args.config} distils ({file.get('method')} from a teacher); "
            "train-teacher trains with ce alone: use fcfd distill --config"
        )
    task = args.task or file.get("task") or ("detection" if args.preset else "classification")
    if args.preset:
        _check_teacher_preset(args.preset, task)
    flags = {**flags_layer(args), "student": args.arch, "weights": args.weights, "task": task}
    given = flags["data"].get("dataset") or file.get("data", {}).get("dataset")
    if task == "detection":
        dataset = given or (presets_dataset(args.preset) if args.preset else "digit-boxes")
    else:
        dataset = given or "digits"
    defaults = teacher_defaults(task, dataset, args.preset)
    layer = merge(defaults, file, flags)
    layer["method_config"] = check_knobs(
        "ce", layer["method_config"], f"--config {args.config}", "train-teacher", task
    )
    arch = layer["student"]
    if task == "detection":
        from fcfd_viz.detection import models as det_models

        det_models.check_name(arch)
    else:
        models.check_name(arch)
    if task != "detection" and layer.get("weights") is not None and not models.takes_weights(arch):
        raise UserError(f"--weights: {models.registry.no_weights(arch)}")
    cfg = experiment(layer)
    out = args.out or f"runs/teacher-{arch}-{dataset}-s{cfg.train.seed}"
    with warnings.catch_warnings():
        warnings.showwarning = _note_new_classifier(warnings.showwarning)
        summary = run_from_args(cfg, out, args)
    print_summary(summary, out)
    return 0


def presets_dataset(name: str) -> str:
    """The dataset a preset trains on."""
    from fcfd_viz.experiments import presets

    return presets.load(name).dataset


def _check_teacher_preset(name: str, task: str) -> None:
    """A one-line error unless ``name`` is a detection preset and the task detection."""
    from fcfd_viz.experiments import presets

    if presets.load(name).task != "detection" or task != "detection":
        raise UserError(
            f"train-teacher --preset takes a detection preset ({', '.join(presets.detection_names())}) "
            "with --task detection; a classification teacher trains without a preset"
        )


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
    from fcfd_viz.data.datasets import DataConfig, make_loaders
    from fcfd_viz.runs.checkpoints import load_checkpoint, model_from_checkpoint
    from fcfd_viz.training.runtime import evaluate, resolve_device

    ckpt = load_checkpoint(args.ckpt)
    if ckpt["model"].get("task") == "detection":
        return _eval_detection(ckpt, args)
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
        num_workers=args.workers,
    )
    _, test_loader, info = make_loaders(cfg)
    if info.num_classes != net.num_classes:
        raise UserError(
            f"checkpoint has {net.num_classes} classes but {dataset} has {info.num_classes}"
        )
    device = resolve_device(args.device)
    acc = evaluate(net.to(device), test_loader, device)
    result = {
        "ckpt": ckpt["path"],
        "arch": net.arch,
        "dataset": dataset,
        "top1": acc.top1,
        "top5": acc.top5,
        "top5_k": acc.k,  # min(5, classes): with 5 classes or fewer top-5 is 100 by definition
        "n": len(test_loader.dataset),
    }
    if args.json:
        print_json(result)
    else:
        five = "top-5" if acc.k == 5 else f"top-{acc.k} (all {acc.k} classes)"
        print(
            f"{net.arch} on {dataset}: test top-1 {acc.top1:.2f}%, {five} {acc.top5:.2f}% "
            f"({result['n']} images)"
        )
    return 0


def _eval_detection(ckpt: dict, args: argparse.Namespace) -> int:
    """``fcfd eval`` of a detector checkpoint: mAP on its dataset's test split."""
    from fcfd_viz.detection.task import evaluate_checkpoint

    opts = ("arch", "dataset", "data_dir", "image_size", "batch_size", "workers", "device")
    result = evaluate_checkpoint(ckpt, *(getattr(args, k) for k in opts))
    if args.json:
        print_json(result)
    else:
        print(
            f"{result['arch']} on {result['dataset']}: test mAP {result['map']:.2f}%, AP50 "
            f"{result['map_50']:.2f}%, AP75 {result['map_75']:.2f}% ({result['n']} images)"
        )
    return 0


def cmd_runs(args: argparse.Namespace) -> int:
    from fcfd_viz.runs.listing import group_runs, list_runs

    root = args.dir or os.environ.get("FCFD_RUNS_DIR", "runs")
    if args.group:
        return _print_groups(group_runs(root), root, args.json)
    rows = list_runs(root)
    if args.json:
        print_json(rows)
        return 0
    if not rows:
        print(f"no runs in {root}")
        return 0
    cols = ["name", "method", "student", "dataset", "seed", "epochs", "top1", "best_top1", "top5"]
    for r in rows:  # a malformed run is one row that says why (last column: no width limit)
        if r["state"] == "unreadable":
            r["state"] = f"unreadable: {r['error']}"
    fmt = [[_cell(r, c) for c in [*cols, "state"]] for r in rows]
    _print_table([*cols, "state"], fmt)
    return 0


def _cell(row: dict, col: str) -> str:
    """A table cell; a detection run's top1 / best_top1 cells show its mAP / best mAP."""
    from fcfd_viz.runs.listing import shown_metric

    shown = shown_metric(row.get("task"), col)
    if shown != col and row.get(shown) is not None:
        return f"{row[shown]:.2f} mAP"
    v = row[col]
    return "-" if v is None else f"{v:.2f}" if isinstance(v, float) else str(v)


def _print_groups(groups: list[dict], root, as_json: bool) -> int:
    from fcfd_viz.runs.listing import METRICS, shown_metric

    if as_json:
        print_json(groups)
        return 0
    if not groups:
        print(f"no completed runs in {root}")
        return 0

    def stat(g: dict, metric: str) -> str:
        """mean ± std; a detection group's top1 / best_top1 cells: its mAP / best mAP."""
        shown = shown_metric(g.get("task"), metric)
        s = g[shown]
        if s["mean"] is None:
            return "-"
        std = "" if s["std"] is None else f" ± {s['std']:.2f}"
        return f"{s['mean']:.2f}{std}" + (" mAP" if shown != metric else "")

    cols = ["config", "method", "student", "dataset", "epochs", "seeds", *METRICS, "runs"]
    fmt = [
        [
            g["config"],
            g["method"],
            g["student"],
            g["dataset"],
            str(g["epochs"]),
            str(g["n"]),
            *(stat(g, m) for m in METRICS),
            ", ".join(os.path.basename(r) for r in g["runs"]),
        ]
        for g in groups
    ]
    _print_table(cols, fmt)
    return 0


def _print_table(cols: list[str], fmt: list[list[str]]) -> None:
    """Left-aligned columns as wide as their widest cell; the last one unpadded."""
    widths = [max(len(c), *(len(f[i]) for f in fmt)) for i, c in enumerate(cols)]
    widths[-1] = 0
    print("  ".join(c.ljust(w) for c, w in zip(cols, widths)).rstrip())
    for f in fmt:
        print("  ".join(v.ljust(w) for v, w in zip(f, widths)).rstrip())


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
