"""Argument groups shared by sub-commands (data, training, output) and the result line of
a training command (JSON and tables: :mod:`fcfd_viz.cli.tables`)."""

from __future__ import annotations

import argparse
import sys

from fcfd_viz.cli.config_file import PRECEDENCE, add_setting_args, read_config_file
from fcfd_viz.cli.tables import print_json
from fcfd_viz.errors import UserError


def add_data_args(p: argparse.ArgumentParser) -> None:
    """A flag per :class:`~fcfd_viz.data.datasets.DataConfig` field (help group ``data``)."""
    add_setting_args(p, "data", "data")


def add_train_args(p: argparse.ArgumentParser, description: str | None = None) -> None:
    """A flag per :class:`~fcfd_viz.training.config.TrainConfig` field (group ``training``)."""
    add_setting_args(p, "train", "training", description)


def add_config_arg(p: argparse.ArgumentParser, precedence: str = PRECEDENCE) -> None:
    """``--config FILE``: the experiment's settings from a YAML / JSON file."""
    p.add_argument(
        "--config",
        default=None,
        metavar="FILE",
        help="YAML or JSON file of settings shaped like a run's config.json (which is one); "
        f"precedence: {precedence}",
    )


def add_task_arg(p: argparse.ArgumentParser) -> None:
    """``--task classification|detection`` (:data:`fcfd_viz.experiments.tasks.TASKS`)."""
    from fcfd_viz.experiments.tasks import TASKS

    p.add_argument(
        "--task",
        default=None,
        choices=tuple(TASKS),
        help="classification (default; top-1) or detection (Faster R-CNN + FPN, mAP; "
        "datasets digit-boxes, coco)",
    )


def add_run_args(p: argparse.ArgumentParser) -> None:
    """Where a training command writes (help group ``output``)."""
    g = p.add_argument_group("output")
    g.add_argument("--out", required=False, help="run directory to write")
    g.add_argument("--resume", action="store_true", help="continue the run in --out from last.pt")
    g.add_argument("--overwrite", action="store_true", help="replace a non-empty --out")
    g.add_argument(
        "--force",
        action="store_true",
        help="with --overwrite: replace --out even when other runs name it as their teacher",
    )
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


def run_from_args(cfg, out: str, args: argparse.Namespace) -> dict:
    """:func:`~fcfd_viz.experiments.experiment.run_experiment` of ``cfg`` into ``out`` with the output
    flags of :func:`add_run_args` (resume, overwrite, progress, TensorBoard, W&B)."""
    from fcfd_viz.experiments.experiment import run_experiment
    from fcfd_viz.training.callbacks import Callback

    class ResumeNote(Callback):
        # said once training really starts: a resume that cannot start (a bad checkpoint, a
        # changed teacher) answers with its one error line and no note before it
        def on_train_start(self, trainer) -> None:
            _note_ignored_on_resume(args)

    return run_experiment(
        cfg,
        out,
        callbacks=[ResumeNote()] if args.resume else None,
        resume=args.resume,
        overwrite=args.overwrite,
        progress=not args.no_progress,
        tensorboard=not args.no_tensorboard,
        wandb=args.wandb,
        force=args.force,
        device=getattr(args, "device", None) if args.resume else None,
    )


# what --resume reads from the command line (--device: where it continues); every other
# flag given is a setting of the run's own config.json, which a resume continues unchanged
_RESUME_READS = ("out", "resume", "device", "no_progress", "no_tensorboard", "wandb", "func",
                 "command", "imports", "config")  # fmt: skip


def _note_ignored_on_resume(args: argparse.Namespace) -> None:
    """One note naming the flags a ``--resume`` ignores (``--epochs 5``, ``--method kd``,
    ``--overwrite``): they were silently dropped before."""
    given = [
        f"--{k.replace('_', '-')}"
        for k, v in sorted(vars(args).items())
        if k not in _RESUME_READS and v not in (None, False, [])
    ]
    if given:
        print(
            f"fcfd {args.command}: note: --resume continues {args.out}/config.json as it is; "
            f"ignored: {', '.join(given)} (start a new run in another --out to change them)",
            file=sys.stderr,
        )


def file_layer(args: argparse.Namespace, extra: tuple[str, ...] = ()) -> dict:
    """The ``--config`` file's layer (empty without one); refused beside ``--resume``, which
    continues the run's own config."""
    if not args.config:
        return {}
    if args.resume:
        raise UserError("--resume continues the run's own config.json; drop --config")
    return read_config_file(args.config, extra)


SPECTRUM_IMAGES = 128  # test images of the error spectrum when --spectrum has no count


def add_spectrum_arg(p, help: str) -> None:
    """``--spectrum [IMAGES]`` (off by default; bare: :data:`SPECTRUM_IMAGES`) on ``p``, a
    parser or an argument group, as ``fcfd gap`` and ``fcfd report`` take it."""
    p.add_argument(
        "--spectrum", nargs="?", type=int, const=SPECTRUM_IMAGES, default=None,
        metavar="IMAGES", help=help,
    )  # fmt: skip


def add_output_args(p: argparse.ArgumentParser) -> None:
    """``--json``, ``--html OUT`` and ``--no-progress``: how an analysis command reports."""
    p.add_argument("--json", action="store_true", help="print JSON")
    p.add_argument(
        "--html", default=None, metavar="OUT", help="write the figures into one HTML file"
    )
    p.add_argument("--no-progress", action="store_true", help="no progress bars")


def print_summary(summary: dict, out) -> None:
    """The one result line of a training command (rank 0 only under torchrun)."""
    import os

    from fcfd_viz.experiments import tasks

    if int(os.environ.get("RANK", 0)) != 0:
        return
    what = f"{summary['method']} {summary['student']} on {summary['dataset']}"
    task = tasks.task(summary.get("task"))
    if summary.get(task.metric.key) is None:
        print(f"{what}: stopped before the first epoch ended -> {out}")
        return
    state = f"stopped after {summary['epochs']} epochs, " if summary.get("stopped") else ""
    print(f"{what}: {state}{task.result_line(summary)} in {summary['seconds']:.0f} s -> {out}")


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

    from fcfd_viz.errors import UserError
    from fcfd_viz.io.files import atomic_write
    from fcfd_viz.viz import figures as viz

    target = Path(path)
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        atomic_write(target, viz.figures_to_html(figures, title))
    except OSError as e:
        raise UserError(f"cannot write {target}: {e.strerror or e}") from None
