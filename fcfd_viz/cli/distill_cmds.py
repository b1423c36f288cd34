"""``fcfd distill`` and ``fcfd presets``."""

from __future__ import annotations

import argparse
import dataclasses
import sys

from fcfd_viz.cli.common import (
    add_data_args,
    add_train_args,
    data_config,
    print_summary,
    train_config,
)

# CLI flag -> method config field; a flag applies to the methods whose config has the field
KNOBS = {
    "temperature": float,
    "kd_weight": float,
    "ce_weight": float,
    "feat_weight": float,
    "feat_warmup_epochs": int,
    "mix_weight": float,
    "paths": str,
    "num_paths": int,
    "teacher_bn": str,
    "hint_stage": int,
    "hint_weight": float,
    "alpha": float,
    "beta": float,
    "warmup_epochs": int,
}


def register(sub: argparse._SubParsersAction) -> None:
    from fcfd_viz.distill import method_names

    p = sub.add_parser("distill", help="distil a student from a teacher checkpoint")
    p.add_argument(
        "--method",
        default=None,
        choices=method_names(),
        help="method (default: the preset's, else fcfd)",
    )
    p.add_argument("--teacher", default=None, help="teacher checkpoint (file or run directory)")
    p.add_argument(
        "--student", default=None, help="student architecture (default: the preset's, else resnet8)"
    )
    p.add_argument("--preset", default=None, help="named preset (`fcfd presets` lists them)")
    g = p.add_argument_group("method knobs (apply to the methods that have them)")
    for name, typ in KNOBS.items():
        g.add_argument("--" + name.replace("_", "-"), dest=name, type=typ, default=None)
    add_data_args(p)
    add_train_args(p)
    p.set_defaults(func=cmd_distill)

    p = sub.add_parser("presets", help="list the named presets")
    p.set_defaults(func=cmd_presets)


def build_config(args: argparse.Namespace):
    """defaults < preset < flags -> :class:`~fcfd_viz.pipeline.ExperimentConfig`."""
    from fcfd_viz import distill
    from fcfd_viz.data import DataConfig
    from fcfd_viz.distill import presets
    from fcfd_viz.pipeline import ExperimentConfig
    from fcfd_viz.train_config import TrainConfig

    preset = presets.load(args.preset) if args.preset else None
    method = args.method or (preset.method if preset else "fcfd")
    knobs = preset.knobs_for(method) if preset else {}
    fields = {f.name for f in dataclasses.fields(distill.METHODS[method].Config)}
    for name in KNOBS:
        value = getattr(args, name)
        if value is not None:
            if name not in fields:
                print(
                    f"fcfd distill: note: --{name.replace('_', '-')} does not apply to {method}; ignored",
                    file=sys.stderr,
                )
                continue
            knobs[name] = value
    data = data_config(
        args, DataConfig(**{"dataset": preset.dataset, **preset.data}) if preset else None
    )
    train = train_config(args, TrainConfig(**preset.train) if preset else None)
    student = args.student or (preset.student if preset else "resnet8")
    return ExperimentConfig(
        method=method,
        student=student,
        teacher=args.teacher,
        data=data,
        train=train,
        method_kwargs=knobs,
    ), preset


def cmd_distill(args: argparse.Namespace) -> int:
    from fcfd_viz.checkpoints import load_checkpoint
    from fcfd_viz.pipeline import run_experiment

    cfg, preset = build_config(args)
    if preset and cfg.teacher and not args.resume:
        arch = load_checkpoint(cfg.teacher)["model"]["arch"]
        if arch != preset.teacher:
            print(
                f"fcfd distill: note: preset {preset.name} expects a {preset.teacher} teacher, got {arch}",
                file=sys.stderr,
            )
    out = args.out or f"runs/{cfg.method}-{cfg.student}-{cfg.data.dataset}-s{cfg.train.seed}"
    summary = run_experiment(
        cfg, out, resume=args.resume, overwrite=args.overwrite, progress=not args.no_progress
    )
    print_summary(summary, out)
    return 0


def cmd_presets(args: argparse.Namespace) -> int:
    from fcfd_viz.distill import presets

    for name in presets.names():
        p = presets.load(name)
        print(
            f"{name:28s} {p.teacher:>11s} -> {p.student:<12s} {p.dataset:<12s} {p.description}"
            f" [{p.source}]"
        )
    return 0
