"""``fcfd probe``: perturbation anisotropy of a network cut after a stage or any layer
(argument parsing and printing; the work is
:func:`~fcfd_viz.analysis.reports.probe.probe_report`).

The network is a checkpoint (``fcfd probe RUN``) or a registered architecture built fresh
(``fcfd probe --model tv_resnet18 [--weights NAME]``); the cut is ``--stage I`` (a staged
net) or ``--layer DOTTED.NAME`` (any module, through hooks); the images are the test split
of the checkpoint's dataset or the PNG / JPEG files of ``--image-dir DIR`` (sorted, the
first ``--images``, the model's preprocessing).

``fcfd probe CKPT --stage I --json`` prints
:meth:`ProbeReport.to_dict(full=False) <fcfd_viz.analysis.ProbeReport.to_dict>`: the probe's
summary (``stage``, ``layer``, ``eps``, ``relative``, ``mode``, ``divergence``, ``feature_shape``,
``num_images``, ``feature_norm_mean``, ``channel_sensitivity``, ``anisotropy_ratio``,
``p95_p5_ratio``, ``random_sensitivity``, ``random_p5``, ``random_median``, ``random_p95``,
``jacobian``, ``seconds``, ``num_classes``, ``top_classes`` and ``neglected_mass``: the classes
kept for the Jacobian / Fisher metric, null for all, and the mean clean probability outside
them) plus ``ckpt``, ``arch``, ``dataset``, ``attribution`` ({method:
per-channel importance}) and ``spearman`` ({method: rank correlation with the channel
sensitivities}); with ``--model`` also ``weights``.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from fcfd_viz.cli.common import add_output_args, report_out
from fcfd_viz.data.datasets import DATASETS


def register(sub: argparse._SubParsersAction) -> None:
    """Add ``fcfd probe``."""
    p = sub.add_parser("probe", help="perturbation anisotropy of a network cut after a layer")
    p.add_argument("ckpt", nargs="?", help="checkpoint file or run directory (or --model)")
    p.add_argument("--model", default=None, help="a registered architecture, built fresh")
    p.add_argument("--weights", default=None, help="named weights for --model")
    p.add_argument(
        "--num-classes", type=int, default=None, help="head size of --model without --weights"
    )
    p.add_argument("--stage", type=int, default=None, help="cut after this stage (0 = stem)")
    p.add_argument(
        "--layer", default=None, help="or after this module (dotted name, e.g. layer3.1)"
    )
    p.add_argument(
        "--eps",
        type=float,
        default=0.05,
        help="perturbation size, relative to ||f|| (default 0.05)",
    )
    p.add_argument(
        "--absolute", action="store_true", help="eps is an absolute L2 norm, not relative"
    )
    p.add_argument("--mode", choices=["exact", "fisher"], default="exact")
    p.add_argument("--divergence", choices=["kl", "l2"], default="kl")
    p.add_argument(
        "--directions",
        default="channel,random,jacobian",
        help="comma list of channel,random,jacobian",
    )
    p.add_argument("--images", type=int, default=32, help="images to probe (default 32)")
    p.add_argument(
        "--image-dir", default=None, help="probe these PNG/JPEG files (sorted) instead of test data"
    )
    p.add_argument(
        "--image-size",
        type=int,
        default=None,
        help="resize and crop --image-dir images to this size (default: the model's preprocessing)",
    )
    p.add_argument("--n-random", type=int, default=64, help="random directions (default 64)")
    p.add_argument(
        "--k-jacobian", type=int, default=5, help="top/bottom Jacobian directions (default 5)"
    )
    p.add_argument(
        "--classes",
        default="auto",
        help="output classes of the Jacobian / Fisher metric: M (each image's top M plus a "
        "merged rest class, a lower bound), all, or auto (all up to 100 classes, else 32)",
    )
    p.add_argument(
        "--attribution",
        default="grad_x_act,integrated_gradients,ablation",
        help="captum methods to rank-correlate with ('none' to skip)",
    )
    p.add_argument(
        "--dataset", default=None, choices=DATASETS, help="default: the checkpoint's dataset"
    )
    p.add_argument("--data-dir", default=None, help="folder with CIFAR / ImageNet data")
    p.add_argument("--seed", type=int, default=0)
    add_output_args(p)
    p.set_defaults(func=cmd_probe)


def _network(args: argparse.Namespace):
    """``(net, checkpoint or None, input size)`` from ``CKPT`` or ``--model``."""
    from fcfd_viz.errors import UserError

    if (args.ckpt is None) == (args.model is None):
        raise UserError("name one network: a checkpoint (fcfd probe RUN) or --model ARCH")
    if args.model is None:
        from fcfd_viz.models.input_size import checkpoint_input_size
        from fcfd_viz.runs.checkpoints import load_checkpoint, model_from_checkpoint

        if args.weights or args.num_classes:
            raise UserError("--weights and --num-classes go with --model, not a checkpoint")
        ckpt = load_checkpoint(args.ckpt)
        return model_from_checkpoint(ckpt), ckpt, checkpoint_input_size(ckpt)
    if args.image_dir is None:
        raise UserError("--model needs --image-dir DIR, a folder of PNG/JPEG images to probe")
    from fcfd_viz.models.input_size import model_input_size
    from fcfd_viz.models.sources import probe_network

    # with --layer, a tv_* arch is the torchvision model itself (its own names: layer3.1)
    staged = args.layer is None
    net = probe_network(args.model, args.weights, args.num_classes, staged)
    return net, None, model_input_size(args.model)


def cmd_probe(args: argparse.Namespace) -> int:
    from fcfd_viz.analysis.cuts import make_cut
    from fcfd_viz.analysis.probe.anisotropy import check_options, parse_directions
    from fcfd_viz.analysis.probe.attribution import parse_methods
    from fcfd_viz.analysis.probe.classes import parse_top_classes
    from fcfd_viz.analysis.reports.image_folder import folder_images, image_transform
    from fcfd_viz.analysis.reports.probe import probe_images, probe_report
    from fcfd_viz.viz import figures as viz

    check_options(args.eps, args.mode, args.divergence)
    directions = parse_directions(args.directions)
    methods = parse_methods(args.attribution)
    top_classes = parse_top_classes(args.classes)
    net, ckpt, size = _network(args)
    make_cut(net, args.stage, args.layer)  # a bad stage or layer fails before any data loads
    if args.image_dir is not None:
        arch = getattr(net, "arch", args.model)
        tf = image_transform(arch, args.weights, args.image_size or size, args.image_size is None)
        images = folder_images(args.image_dir, args.images, tf)
        dataset = str(args.image_dir)
    else:
        images, info = probe_images(ckpt, args.images, args.dataset, args.data_dir)
        dataset = info.name
    report = probe_report(
        net,
        images,
        args.stage,
        layer=args.layer,
        attribution=methods,
        ckpt=None if ckpt is None else ckpt["path"],
        dataset=dataset,
        eps=args.eps,
        relative=not args.absolute,
        directions=directions,
        mode=args.mode,
        divergence=args.divergence,
        n_random=args.n_random,
        k_jacobian=args.k_jacobian,
        seed=args.seed,
        top_classes=top_classes,
        progress=not args.no_progress and not args.json,
    )
    out = report.to_dict(full=False)
    if ckpt is None:
        out["weights"] = args.weights
    source = Path(out["ckpt"]).name if out["ckpt"] else (args.weights or "fresh weights")
    title = f"fcfd probe: {out['arch']} {_where(out)} ({source})"
    return report_out(args, out, lambda: viz.probe_figures(report), title, _print_probe)


def _where(out: dict) -> str:
    return f"stage {out['stage']}" if out.get("layer") is None else f"layer {out['layer']}"


def _print_probe(out: dict, html: str | None) -> None:
    def f(v):
        return "n/a" if v is None else f"{v:.3g}"

    print(
        f"{out['arch']} {_where(out)} {tuple(out['feature_shape'])} on {out['num_images']} {out['dataset']} "
        f"images, eps={out['eps']} ({'relative' if out['relative'] else 'absolute'}), {out['mode']}, {out['divergence']}"
    )
    if out["channel_sensitivity"] is not None:
        print(
            f"  channel sensitivity: max/min {f(out['anisotropy_ratio'])}, p95/p5 {f(out['p95_p5_ratio'])}"
        )
    if out["random_sensitivity"] is not None:
        print(
            f"  random directions:   p5 {f(out['random_p5'])}, median {f(out['random_median'])}, p95 {f(out['random_p95'])}"
        )
    if out["jacobian"]:
        j = out["jacobian"]
        print(
            f"  Jacobian singular values: top {[round(v, 4) for v in j['top_singular_values']]}, "
            f"bottom {[round(v, 4) for v in j['bottom_singular_values']]}"
        )
    for m, rho in out["spearman"].items():
        print(f"  Spearman(sensitivity, {m}) = {f(rho)}")
    if html:
        print(f"  figures -> {html}")
