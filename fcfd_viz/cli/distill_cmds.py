"""``fcfd distill`` and ``fcfd presets``."""

from __future__ import annotations

import argparse
import sys

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


def register(sub: argparse._SubParsersAction) -> None:
    from fcfd_viz.distill import method_names

    p = sub.add_parser("distill", help="distil a student from a teacher checkpoint")
    add_config_arg(p)
    add_task_arg(p)
    g = p.add_argument_group("method")
    g.add_argument(
        "--method",
        default=None,
        choices=method_names(),
        help="method (default: the preset's, else fcfd); its knobs are below, grouped by "
        "the methods that take them (a knob the method lacks is ignored, with a note)",
    )
    g.add_argument("--teacher", default=None, help="teacher checkpoint (file or run directory)")
    g.add_argument(
        "--student", default=None, help="student architecture (default: the preset's, else resnet8)"
    )
    g.add_argument(
        "--preset",
        default=None,
        help="named preset (`fcfd presets` lists them; a detection preset implies --task "
        "detection); also a `preset:` key of --config, which this flag overrides",
    )
    add_knob_args(p)
    add_data_args(p)
    add_train_args(p)
    add_run_args(p)
    p.set_defaults(func=cmd_distill)

    p = sub.add_parser("presets", help="list the named presets")
    p.set_defaults(func=cmd_presets)


def add_knob_args(p: argparse.ArgumentParser) -> None:
    """A flag per method knob (classification's :func:`fcfd_viz.distill.knobs`, then the
    ones only another task's methods take), grouped by the methods that take it, each with
    its help, type, bounds and default. Defaults are None here, so a preset or the method's
    config fills what the user left out."""
    from fcfd_viz.experiments import tasks

    first, *others = tasks.TASKS.values()
    everyone = tuple(first.methods.names())
    groups: dict[tuple, argparse._ArgumentGroup] = {}
    for k in first.methods.knobs():
        if k.methods not in groups:
            who = "every method" if k.methods == everyone else ", ".join(k.methods)
            groups[k.methods] = p.add_argument_group(f"method knobs of {who}")
        defaults = {
            d.default for m in k.methods for d in first.methods.knobs(m) if d.name == k.name
        }
        default = k.default if len(defaults) == 1 else "per method"
        # argparse formats help with %: a literal one must be doubled
        bounds = "" if k.choices else f"{k.describe()}, "  # argparse lists the choices
        text = f"{k.help} ({bounds}default {default})".replace("%", "%%")
        if k.type is bool:
            kind = {"action": argparse.BooleanOptionalAction}
        else:
            metavar = None if k.choices else k.type.__name__.upper()
            kind = {"type": k.type, "choices": k.choices, "metavar": metavar}
        groups[k.methods].add_argument(k.flag, dest=k.name, default=None, help=text, **kind)
    taken = {k.name for k in first.methods.knobs()}
    for task in others:
        g = p.add_argument_group(f"method knobs of --task {task.name} only")
        for k in task.methods.knobs():
            if k.name in taken:  # shared names (temperature, kd_weight): one flag
                continue
            taken.add(k.name)
            text = f"{k.help} ({k.describe()}, default {k.default})".replace("%", "%%")
            g.add_argument(
                k.flag,
                dest=k.name,
                default=None,
                type=k.type,
                metavar=k.type.__name__.upper(),
                help=text,
            )


def build_config(args: argparse.Namespace):
    """defaults < preset < --config file < flags -> :class:`~fcfd_viz.experiments.experiment.ExperimentConfig`
    and the preset (None without one). ``--preset`` overrides the file's ``preset:``. The
    defaults are the task's (:meth:`~fcfd_viz.experiments.tasks.TaskProfile.student_defaults`):
    ``--task detection`` alone trains on the det-digits preset's schedule."""
    from fcfd_viz.cli.config_file import check_knobs, experiment, flags_layer, merge
    from fcfd_viz.errors import UserError
    from fcfd_viz.experiments import presets, tasks

    file = file_layer(args, extra=("preset",))
    name = args.preset or file.pop("preset", None)
    preset = presets.load(name) if name else None
    task = tasks.task(args.task or file.get("task") or (preset.task if preset else None))
    if preset and preset.task != task.name:
        raise UserError(
            f"preset {name} is a {preset.task} preset, but the task is {task.name}; drop --task "
            f"or pick a {task.name} preset (`fcfd presets`)"
        )
    method = args.method or file.get("method") or (preset.method if preset else "fcfd")
    task.methods.method_class(method)  # --task detection --method fitnet: one line, now
    from_preset = {}
    if preset:
        data = {"dataset": preset.dataset, **preset.data}
        from_preset = {"student": preset.student, "data": data, "train": dict(preset.train)}
        from_preset["method_config"] = preset.knobs_for(method)  # one preset serves every method
    if file:
        knobs = file.get("method_config", {})
        origin = f"--config {args.config}"
        file["method_config"] = check_knobs(method, knobs, origin, "distill", task.name)
    flags = {**flags_layer(args), "student": args.student, "teacher": args.teacher}
    own = {k.name: k for k in task.methods.knobs(method)}
    flags["method_config"] = {}
    for k in tasks.all_knobs():
        value = getattr(args, k.name)
        if value is None:
            continue
        if k.name not in own:
            print(
                f"fcfd distill: note: {k.flag} does not apply to {method}; ignored", file=sys.stderr
            )
            continue
        own[k.name].check(value, k.flag)  # the error names the flag the user typed
        flags["method_config"][k.name] = value
    given = flags["data"].get("dataset") or file.get("data", {}).get("dataset")
    dataset = given or (preset.dataset if preset else task.default_dataset())
    defaults = task.student_defaults(dataset)
    layer = merge(defaults, from_preset, file, flags, {"method": method, "task": task.name})
    return experiment(layer), preset


def cmd_distill(args: argparse.Namespace) -> int:
    from fcfd_viz.runs.checkpoints import load_checkpoint

    cfg, preset = build_config(args)
    if preset and cfg.teacher and not args.resume:
        arch = load_checkpoint(cfg.teacher)["model"]["arch"]
        if arch != preset.teacher:
            print(
                f"fcfd distill: note: preset {preset.name} expects a {preset.teacher} teacher, got {arch}",
                file=sys.stderr,
            )
    out = args.out or f"runs/{cfg.method}-{cfg.student}-{cfg.data.dataset}-s{cfg.train.seed}"
    summary = run_from_args(cfg, out, args)
    print_summary(summary, out)
    return 0


def cmd_presets(args: argparse.Namespace) -> int:
    from fcfd_viz.experiments import presets

    for name in presets.names() + presets.detection_names():
        p = presets.load(name)
        print(
            f"{name:28s} {p.teacher:>11s} -> {p.student:<12s} {p.dataset:<12s} {p.description}"
            f" [{p.source}]"
        )
    return 0
