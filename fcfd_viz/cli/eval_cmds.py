"""``fcfd eval``: test a checkpoint of either task on its dataset's test split."""

from __future__ import annotations

import argparse

from fcfd_viz.cli.common import add_data_args
from fcfd_viz.cli.tables import print_json


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("eval", help="test top-1 and top-5 of a checkpoint")
    p.add_argument("ckpt", help="checkpoint file or run directory")
    p.add_argument("--arch", default=None, help="refuse a checkpoint of another architecture")
    add_data_args(p)
    p.add_argument("--device", default="auto", help="auto, cpu, cuda, cuda:N")
    p.add_argument("--json", action="store_true", help="print JSON")
    p.set_defaults(func=cmd_eval)


def cmd_eval(args: argparse.Namespace) -> int:
    from fcfd_viz.experiments import tasks
    from fcfd_viz.runs.checkpoints import load_checkpoint

    ckpt = load_checkpoint(args.ckpt)
    task = tasks.of_checkpoint(ckpt)
    result = task.evaluate_checkpoint(
        ckpt,
        arch=args.arch,
        dataset=args.dataset,
        data_dir=args.data_dir,
        download=args.download,
        size=args.image_size,
        batch_size=args.batch_size,
        workers=args.workers,
        device=args.device,
    )
    if args.json:
        print_json(result)
    else:
        print(task.eval_line(result))
    return 0
