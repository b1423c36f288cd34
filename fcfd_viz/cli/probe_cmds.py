"""``fcfd probe``: perturbation anisotropy of a checkpoint cut after a stage (argument
parsing and printing; the work is :func:`~fcfd_viz.analysis.reports.probe.probe_report`).

``fcfd probe CKPT --stage I --json`` prints
:meth:`ProbeReport.to_dict(full=False) <fcfd_viz.analysis.ProbeReport.to_dict>`: the probe's
summary (``stage``, ``eps``, ``relative``, ``mode``, ``divergence``, ``feature_shape``,
``num_images``, ``feature_norm_mean``, ``channel_sensitivity``, ``anisotropy_ratio``,
``p95_p5_ratio``, ``random_sensitivity``, ``random_p5``, ``random_median``, ``random_p95``,
``jacobian``, ``seconds``) plus ``ckpt``, ``arch``, ``dataset``, ``attribution`` ({method:
per-channel importance}) and ``spearman`` ({method: rank correlation with the channel
sensitivities}).
"""

from __future__ import annotations

import argparse
from pathlib import Path

from fcfd_viz.cli.common import add_output_args, report_out
from fcfd_viz.data import DATASETS


def register(sub: argparse._SubParsersAction) -> None:
    """Add ``fcfd probe``."""
    p = sub.add_parser("probe", help="perturbation anisotropy of a network cut after a stage")
    p.add_argument("ckpt", help="checkpoint file or run directory")
    p.add_argument("--stage", type=int, required=True, help="cut after this stage (0 = stem)")
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
    p.add_argument("--images", type=int, default=32, help="test images to probe (default 32)")
    p.add_argument("--n-random", type=int, default=64, help="random directions (default 64)")
    p.add_argument(
        "--k-jacobian", type=int, default=5, help="top/bottom Jacobian directions (default 5)"
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


def cmd_probe(args: argparse.Namespace) -> int:
    from fcfd_viz import viz
    from fcfd_viz.analysis.anisotropy import check_options, parse_directions
    from fcfd_viz.analysis.attribution import parse_methods
    from fcfd_viz.analysis.reports.probe import probe_images, probe_report
    from fcfd_viz.checkpoints import load_checkpoint, model_from_checkpoint

    check_options(args.eps, args.mode, args.divergence)
    directions = parse_directions(args.directions)
    methods = parse_methods(args.attribution)
    ckpt = load_checkpoint(args.ckpt)
    net = model_from_checkpoint(ckpt)
    net.check_stage(args.stage)  # before any data is loaded
    images, info = probe_images(ckpt, args.images, args.dataset, args.data_dir)
    report = probe_report(
        net,
        images,
        args.stage,
        attribution=methods,
        ckpt=ckpt["path"],
        dataset=info.name,
        eps=args.eps,
        relative=not args.absolute,
        directions=directions,
        mode=args.mode,
        divergence=args.divergence,
        n_random=args.n_random,
        k_jacobian=args.k_jacobian,
        seed=args.seed,
        progress=not args.no_progress and not args.json,
    )
    out = report.to_dict(full=False)
    title = f"fcfd probe: {out['arch']} stage {out['stage']} ({Path(out['ckpt']).name})"
    return report_out(args, out, lambda: viz.probe_figures(report), title, _print_probe)


def _print_probe(out: dict, html: str | None) -> None:
    def f(v):
        return "n/a" if v is None else f"{v:.3g}"

    print(
        f"{out['arch']} stage {out['stage']} {tuple(out['feature_shape'])} on {out['num_images']} {out['dataset']} "
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
