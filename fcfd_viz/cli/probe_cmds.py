"""``fcfd probe`` (and, later, ``fcfd gap``): analysis sub-commands.

``fcfd probe CKPT --stage I --json`` prints one JSON object with the keys of
:meth:`~fcfd_viz.analysis.AnisotropyResult.to_dict` (``stage``, ``eps``, ``relative``,
``mode``, ``divergence``, ``feature_shape``, ``num_images``, ``feature_norm_mean``,
``channel_sensitivity``, ``anisotropy_ratio``, ``p95_p5_ratio``, ``random_sensitivity``,
``random_p5``, ``random_median``, ``random_p95``, ``jacobian``, ``seconds``) plus ``ckpt``,
``arch``, ``dataset``, ``attribution`` ({method: per-channel importance}) and ``spearman``
({method: rank correlation with the channel sensitivities}).
"""

from __future__ import annotations

import argparse
from pathlib import Path

from fcfd_viz.cli.common import print_json
from fcfd_viz.data import DATASETS
from fcfd_viz.errors import UserError


def register(sub: argparse._SubParsersAction) -> None:
    """Add the analysis sub-commands."""
    _add_probe(sub)
    _add_gap(sub)


# ---------------------------------------------------------------- probe
def _add_probe(sub: argparse._SubParsersAction) -> None:
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
    p.add_argument("--json", action="store_true", help="print JSON")
    p.add_argument(
        "--html", default=None, metavar="OUT", help="write the figures into one HTML file"
    )
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.set_defaults(func=cmd_probe)


def probe_images(ckpt: dict, dataset: str | None, data_dir: str | None, n: int):
    """``n`` test images (evenly spread over the test split) for a checkpoint's dataset."""
    import torch

    from fcfd_viz.data import DataConfig, build_datasets

    name = dataset or ckpt.get("dataset")
    if name is None:
        raise UserError("the checkpoint names no dataset; pass --dataset")
    shape = list(ckpt.get("input_shape") or [3, 16, 16])
    _, test, info = build_datasets(
        DataConfig(dataset=name, data_dir=data_dir, image_size=shape[-1])
    )
    if n < 1:
        raise UserError(f"--images must be >= 1, got {n}")
    n = min(n, len(test))
    idx = torch.linspace(0, len(test) - 1, n).round().long().tolist()
    images = torch.stack([test[i][0] for i in idx])
    return images, info


def cmd_probe(args: argparse.Namespace) -> int:
    from fcfd_viz.analysis import Anisotropy, attribute_channels
    from fcfd_viz.analysis.anisotropy import check_options, parse_directions
    from fcfd_viz.analysis.attribution import METHODS
    from fcfd_viz.checkpoints import load_checkpoint, model_from_checkpoint

    check_options(args.eps, args.mode, args.divergence)
    directions = parse_directions(args.directions)
    methods = (
        []
        if args.attribution.strip().lower() in ("", "none")
        else [m.strip() for m in args.attribution.split(",") if m.strip()]
    )
    bad = [m for m in methods if m not in METHODS]
    if bad:
        raise UserError(
            f"unknown attribution method {', '.join(bad)}; choose from {', '.join(METHODS)} or none"
        )
    ckpt = load_checkpoint(args.ckpt)
    net = model_from_checkpoint(ckpt)
    probe = Anisotropy(net, args.stage)  # validates the stage before any data is loaded
    images, info = probe_images(ckpt, args.dataset, args.data_dir, args.images)
    if info.num_classes != net.num_classes:
        raise UserError(
            f"checkpoint has {net.num_classes} classes but {info.name} has {info.num_classes}"
        )
    res = probe.compute(
        images,
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
    attr = None
    if methods and res.channel_sensitivity is not None:
        attr = attribute_channels(net, args.stage, images, methods)
    out = {"ckpt": ckpt["path"], "arch": net.arch, "dataset": info.name, **res.to_dict()}
    out["attribution"] = {m: v.tolist() for m, v in attr.channels.items()} if attr else {}
    out["spearman"] = attr.spearman_with(res.channel_sensitivity) if attr else {}
    out["spearman"] = {
        m: (v if v == v else None) for m, v in out["spearman"].items()
    }  # NaN -> null
    if args.html:
        _write_probe_html(args.html, res, attr, out)
    if args.json:
        print_json(out)
    else:
        _print_probe(out, args.html)
    return 0


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


def _write_probe_html(path: str, res, attr, out: dict) -> None:
    from fcfd_viz import viz
    from fcfd_viz.fsio import atomic_write

    figs = []
    if res.channel_sensitivity is not None:
        figs.append(viz.channel_sensitivity_figure(res))
    if res.jacobian_top_values is not None:
        figs.append(viz.jacobian_spectrum_figure(res))
    if attr is not None:
        for m, v in attr.channels.items():
            figs.append(
                viz.sensitivity_vs_attribution_figure(
                    res.channel_sensitivity.tolist(), v.tolist(), m, out["spearman"][m]
                )
            )
    if res.divergence == "kl":
        size, div, labels = [], [], []
        for label, t in (
            ("channel", res.channel_per_image),
            ("random", res.random_per_image),
            ("jacobian top", res.jacobian_top_per_image),
            ("jacobian bottom", res.jacobian_bottom_per_image),
        ):
            if t is not None:
                size += res.eps_abs[:, None].expand_as(t).flatten().tolist()
                div += t.flatten().tolist()
                labels += [label] * t.numel()
        figs.append(viz.perturbation_scatter_figure(size, div, labels))
    title = f"fcfd probe: {out['arch']} stage {out['stage']} ({Path(out['ckpt']).name})"
    target = Path(path)
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        atomic_write(target, viz.figures_to_html(figs, title))
    except OSError as e:
        raise UserError(f"cannot write {target}: {e.strerror or e}") from None


# ---------------------------------------------------------------- gap
# ``fcfd gap --json`` prints GapResult.to_dict(): ``bn``, ``bn_label``, ``stages``,
# ``num_images``, ``batch_size``, ``teacher_accuracy``, ``seconds`` and ``students``: {entry:
# {``student``, ``bridges`` ("own bridges" | "fitted"), ``method``, ``appearance``,
# ``functional``, ``reverse`` ({stage: value}, reverse null without a t2s bridge),
# ``path_accuracy`` ({path: top-1 %}), ``accuracy``, ``fit`` (convergence, null for own
# bridges)}}; plus ``teacher``, ``dataset``, ``input_shape``, ``inputs`` (per student label:
# path, method, dataset, seed) and ``reading`` (one plain-English line).
def _add_gap(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("gap", help="appearance vs functional gap of students against their teacher")
    p.add_argument(
        "--teacher",
        default=None,
        help="teacher checkpoint (default: the one the students recorded)",
    )
    p.add_argument(
        "--student",
        action="append",
        required=True,
        metavar="CKPT",
        help="student checkpoint or run directory (repeat for several)",
    )
    p.add_argument(
        "--label", action="append", default=None, help="a label per --student (default: its method)"
    )
    p.add_argument(
        "--bn",
        choices=["eval", "batch"],
        default="eval",
        help="teacher BN regime: eval (running statistics) or batch (batch statistics)",
    )
    p.add_argument(
        "--fit-max-epochs",
        type=int,
        default=None,
        help="cap on post-hoc connector fitting epochs (default 400; the fit stops earlier on a plateau)",
    )
    p.add_argument(
        "--fit-lr", type=float, default=None, help="Adam learning rate of the fit (default 0.01)"
    )
    p.add_argument(
        "--fit-data",
        choices=["full", "student"],
        default="full",
        help="fit connectors on the dataset's whole training split (default) or on each "
        "student's own training subset",
    )
    p.add_argument(
        "--no-fit", action="store_true", help="only students with their own bridges, no fitting"
    )
    p.add_argument(
        "--batch-size",
        type=int,
        default=256,
        help="test batch size (batch statistics depend on it)",
    )
    p.add_argument("--data-dir", default=None, help="folder with CIFAR / ImageNet data")
    p.add_argument("--seed", type=int, default=0, help="seeds the connectors' initialisation")
    p.add_argument("--json", action="store_true", help="print JSON")
    p.add_argument(
        "--html", default=None, metavar="OUT", help="write the figures into one HTML file"
    )
    p.add_argument("--no-progress", action="store_true", help="no progress bars")
    p.set_defaults(func=cmd_gap)


def cmd_gap(args: argparse.Namespace) -> int:
    from fcfd_viz.analysis.connectors import FitConfig
    from fcfd_viz.analysis.gap import FunctionalGap
    from fcfd_viz.analysis.gap_models import gap_loaders, load_students
    from fcfd_viz.analysis.gap_result import gap_reading

    if args.batch_size < 1:
        raise UserError(f"--batch-size must be >= 1, got {args.batch_size}")
    knobs = {"max_epochs": args.fit_max_epochs, "lr": args.fit_lr}
    fit = (
        False
        if args.no_fit
        else FitConfig(seed=args.seed, **{k: v for k, v in knobs.items() if v is not None})
    )
    if fit:
        fit.validate()
    loaded = load_students(args.student, args.teacher, args.label)
    teacher, students, bridges = loaded
    gap = FunctionalGap(teacher, students, bridges, loaded.info["input_shape"])
    test_loader, train_loaders = gap_loaders(loaded, args.fit_data, args.data_dir, args.batch_size)
    res = gap.compute(
        test_loader,
        None if args.no_fit else train_loaders,
        bn=args.bn,
        fit=fit,
        progress=not args.no_progress and not args.json,
    )
    info = loaded.info
    out = {
        **res.to_dict(),
        "teacher": info["teacher"],
        "dataset": info["dataset"],
        "input_shape": info["input_shape"],
        "reading": gap_reading(res),
        "inputs": {
            k: {f: v.get(f) for f in ("path", "method", "dataset", "seed")}
            for k, v in info["students"].items()
        },
    }
    if args.html:
        _write_gap_html(args.html, res, out)
    if args.json:
        print_json(out)
    else:
        _print_gap(out, args.html)
    return 0


def _print_gap(out: dict, html: str | None) -> None:
    print(
        f"teacher {out['teacher']} ({out['dataset']}, {out['num_images']} test images, top-1 "
        f"{out['teacher_accuracy']:.2f}%), tail in {out['bn_label']}"
    )
    for name, e in out["students"].items():
        print(f"  {name}: top-1 {e['accuracy']:.2f}%")
        for k in map(str, out["stages"]):
            rev = e["reverse"][k]
            print(
                f"    stage {k}: appearance {e['appearance'][k]:.4g}  functional KL {e['functional'][k]:.4g}"
                + ("" if rev is None else f"  reverse KL {rev:.4g}")
            )
        paths = {p: a for p, a in e["path_accuracy"].items() if len(set(p)) > 1}
        print("    mixed paths: " + ", ".join(f"{p} {a:.1f}%" for p, a in paths.items()))
        if e["fit"]:
            f = e["fit"]
            print(
                f"    fit: {f['epochs']} epochs max over bridges, {'converged' if f['converged'] else 'hit the cap'}, "
                f"final MSE "
                + ", ".join(f"{b} {v['final_loss']:.3g}" for b, v in f["bridges"].items())
            )
    print(out["reading"])
    if html:
        print(f"  figures -> {html}")


def _write_gap_html(path: str, res, out: dict) -> None:
    from fcfd_viz import viz
    from fcfd_viz.fsio import atomic_write

    figs = [viz.gap_figure(res), viz.path_accuracy_figure(res)]
    title = f"fcfd gap: {Path(out['teacher']).parent.name or out['teacher']} ({out['bn']} BN)"
    target = Path(path)
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        atomic_write(target, viz.figures_to_html(figs, title))
    except OSError as e:
        raise UserError(f"cannot write {target}: {e.strerror or e}") from None
