"""``fcfd import-teacher`` (a CRD / RepDistiller teacher or a state_dict -> a run directory)
and ``fcfd export`` (a run's network -> a state_dict or CRD's layout)."""

from __future__ import annotations

import argparse

from fcfd_viz.cli.tables import print_json


def register(sub: argparse._SubParsersAction) -> None:
    from fcfd_viz.weights.interop import EXPORT_FORMATS, IMPORT_DATASETS

    p = sub.add_parser(
        "import-teacher",
        help="make a run directory from published weights (CRD / RepDistiller, a state_dict)",
        description="Import a weights file: a CRD / RepDistiller checkpoint ({'model': "
        "state_dict}, their parameter names), a bare state_dict (their names or ours). The run "
        "directory it writes is a teacher for `fcfd distill --teacher`, `probe`, `gap`, the app.",
    )
    p.add_argument("file", help="the weights file (CRD: ckpt_epoch_240.pth)")
    p.add_argument(
        "--arch", required=True, help="the network, ours or CRD's name (resnet32x4, ResNet50, ...)"
    )
    p.add_argument(
        "--dataset",
        default="cifar100",
        choices=IMPORT_DATASETS,
        help="what the weights were trained on (default: cifar100)",
    )
    p.add_argument("--out", required=True, help="run directory to write")
    p.add_argument(
        "--data-dir",
        default=None,
        help="CIFAR folder (or $FCFD_DATA_DIR): measure the test accuracy",
    )
    p.add_argument("--device", default="auto", help="auto, cpu, cuda, cuda:N (for measuring)")
    p.add_argument("--overwrite", action="store_true", help="replace a run directory in --out")
    p.add_argument("--json", action="store_true", help="print the summary as JSON")
    p.set_defaults(func=cmd_import_teacher)

    p = sub.add_parser("export", help="write a run's network as a state_dict or in CRD's layout")
    p.add_argument("run", help="run directory or checkpoint")
    p.add_argument(
        "--format",
        required=True,
        choices=EXPORT_FORMATS,
        help="state_dict: our parameter names; crd: {'model': state_dict} with CRD's names",
    )
    p.add_argument("--out", required=True, help="file to write")
    p.add_argument("--overwrite", action="store_true", help="replace an existing --out")
    p.set_defaults(func=cmd_export)


def cmd_import_teacher(args: argparse.Namespace) -> int:
    from fcfd_viz.weights.interop import import_teacher

    s = import_teacher(
        args.file,
        args.arch,
        args.out,
        dataset=args.dataset,
        data_dir=args.data_dir,
        overwrite=args.overwrite,
        device=args.device,
    )
    if args.json:
        print_json(s)
        return 0
    src = s["source"]
    print(f"imported {s['arch']} from {src['path']} ({src['format']}, {src['names']} names)")
    if s["top1"] is None:
        print(
            f"-> {args.out}: accuracy not measured (no CIFAR data named); measure it with "
            f"`fcfd eval {args.out} --data-dir DIR` (DIR holds cifar-100-python/ or "
            "cifar-10-batches-py/)"
        )
    else:
        top1, n = s["top1"], s["test_images"]
        print(f"-> {args.out}: test top-1 {top1:.2f}% on {s['dataset']} ({n} images)")
    return 0


def cmd_export(args: argparse.Namespace) -> int:
    from fcfd_viz.weights.interop import export_weights

    r = export_weights(args.run, args.format, args.out, overwrite=args.overwrite)
    print(f"wrote {r['arch']} ({r['tensors']} tensors, {r['format']} format) -> {r['out']}")
    return 0
