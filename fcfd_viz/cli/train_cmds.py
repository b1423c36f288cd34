"""``fcfd train-teacher``: train a network with cross-entropy, a teacher to distil from."""

from __future__ import annotations

import argparse
import sys
import warnings

from fcfd_viz.cli.common import (
    add_config_arg,
    add_data_args,
    add_run_args,
    add_task_arg,
    add_train_args,
    file_layer,
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


def cmd_train_teacher(args: argparse.Namespace) -> int:
    from fcfd_viz.cli.config_file import check_knobs, experiment, flags_layer, merge
    from fcfd_viz.experiments import tasks

    file = file_layer(args)
    if file.get("method", "ce") != "ce" or file.get("teacher"):
        raise UserError(
            f"--config {args.config} distils ({file.get('method')} from a teacher); "
            "train-teacher trains with ce alone: use fcfd distill --config"
        )
    # a preset names its task (a classification preset is refused just below)
    name = (
        args.task
        or file.get("task")
        or (tasks.of_preset(args.preset).name if args.preset else None)
    )
    task = tasks.task(name)
    if args.preset:
        _check_teacher_preset(args.preset, task)
    flags = {**flags_layer(args), "student": args.arch, "weights": args.weights, "task": task.name}
    given = flags["data"].get("dataset") or file.get("data", {}).get("dataset")
    dataset = given or task.default_dataset(args.preset)
    layer = merge(task.teacher_defaults(dataset, args.preset), file, flags)
    layer["method_config"] = check_knobs(
        "ce", layer["method_config"], f"--config {args.config}", "train-teacher", task.name
    )
    arch = layer["student"]
    task.check_arch(arch, layer.get("weights"))
    cfg = experiment(layer)
    out = args.out or f"runs/teacher-{arch}-{dataset}-s{cfg.train.seed}"
    with warnings.catch_warnings():
        warnings.showwarning = _note_new_classifier(warnings.showwarning)
        summary = run_from_args(cfg, out, args)
    print_summary(summary, out)
    return 0


def _check_teacher_preset(name: str, task) -> None:
    """A one-line error unless ``name`` is a preset of ``task`` whose teachers
    train-teacher trains (a detection preset)."""
    from fcfd_viz.experiments import presets, tasks

    if tasks.of_preset(name) is not task or not task.trains_preset_teachers:
        trainable = [t.name for t in tasks.TASKS.values() if t.trains_preset_teachers]
        raise UserError(
            f"train-teacher --preset takes a detection preset ({', '.join(presets.detection_names())}) "
            f"with --task {' / '.join(trainable)}; a classification teacher trains without a preset"
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
