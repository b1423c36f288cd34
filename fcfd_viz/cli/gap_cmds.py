"""``fcfd gap``: appearance vs functional gap of students against their teacher (argument
parsing and printing; the work is :func:`~fcfd_viz.analysis.reports.gap.gap_report`).

``fcfd gap --json`` prints :meth:`GapReport.to_dict() <fcfd_viz.analysis.GapReport.to_dict>`:
``bn``, ``bn_label``, ``stages``, ``num_images``, ``batch_size``, ``teacher_accuracy``,
``seconds`` and ``students``: {entry: {``student``, ``bridges`` ("own bridges" | "fitted"),
``method``, ``appearance``, ``functional``, ``reverse`` ({stage: value}, reverse null without
a t2s bridge), ``path_accuracy`` ({path: top-1 %}), ``accuracy``, ``fit`` (convergence, null
for own bridges)}}; plus ``teacher``, ``dataset``, ``input_shape``, ``inputs`` (per student
label: path, method, dataset, seed) and ``reading`` (one plain-English line). With
``--spectrum``: ``spectrum``: {``bn``, ``stages``, ``images``, ``entries``: {entry: {``student``,
``bridges``, ``method``, ``means`` ({``l2`` | ``fisher`` | ``kl``: one value per stage}),
``share`` and ``isotropic`` (per stage, the error-energy share in the top-1..k sensitive
directions, and an isotropic error's), ``channel_share``}}, ``predictors`` ({``l2`` |
``fisher``: {``spearman``, ``low``, ``high``}, ``points``, ``per_stage`` ({stage: the same
pair for that stage alone}, with two or more stages)}; null for one student)}.

Detector checkpoints (``--task detection`` runs) get the detection gap instead
(:mod:`fcfd_viz.detection.gap`): ``--json`` prints :meth:`DetGapReport.to_dict()
<fcfd_viz.detection.gap_report.DetGapReport.to_dict>` (``task: detection``, ``levels``, per
entry ``appearance`` / ``functional`` / ``box`` by level and ``all``).
"""

from __future__ import annotations

import argparse
from pathlib import Path

from fcfd_viz.cli.common import add_output_args, add_spectrum_arg, report_out
from fcfd_viz.errors import UserError


def register(sub: argparse._SubParsersAction) -> None:
    """Add ``fcfd gap``."""
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
        "--fit-method",
        default=None,
        metavar="{lstsq,adam}",
        help="lstsq (default): each connector solved in closed form by ridge least squares "
        "(LeakyReLU ones then refined for a few epochs); adam: the Adam loop alone",
    )
    p.add_argument(
        "--fit-ridge",
        type=float,
        default=None,
        help="lstsq: ridge relative to the features' mean variance (default 1e-5)",
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
    p.add_argument(
        "--images",
        type=int,
        default=None,
        help="detection: measure on the first N test images (default: all)",
    )
    p.add_argument(
        "--fit-images",
        type=int,
        default=None,
        help="fit connectors on the first N images of the fit data (default: all; the splits "
        "are in shuffled order, so every class is in a prefix)",
    )
    add_spectrum_arg(
        p,
        "also where each student's error lies along the teacher's sensitive directions, "
        "and whether its Fisher metric predicts the KL better than its L2 norm, on the first "
        "IMAGES test images (default 128)",
    )
    add_output_args(p)
    p.set_defaults(func=cmd_gap)


def cmd_gap(args: argparse.Namespace) -> int:
    from fcfd_viz.detection.gap_report import checkpoints_task

    # each task measures its own gap: a classifier's per stage, a detector's per FPN level
    commands = {"classification": _cmd_classification_gap, "detection": _cmd_det_gap}
    return commands[checkpoints_task(args.student, args.teacher)](args)


def _cmd_classification_gap(args: argparse.Namespace) -> int:
    from fcfd_viz.analysis.gap.fit_config import FitConfig
    from fcfd_viz.analysis.reports.gap import gap_inputs, gap_report
    from fcfd_viz.viz import figures as viz

    knobs = _fit_knobs(args)
    fit = False if args.no_fit else FitConfig(seed=args.seed, **knobs)
    if isinstance(fit, FitConfig):
        fit.validate()
    inputs = gap_inputs(
        args.student, args.teacher, args.label, args.fit_data, args.data_dir, args.batch_size,
        args.fit_images,
    )  # fmt: skip
    progress = not args.no_progress and not args.json
    if args.spectrum is not None and args.spectrum < 1:
        raise UserError(f"--spectrum takes a number of images >= 1, got {args.spectrum}")
    report = gap_report(inputs, bn=args.bn, fit=fit, progress=progress, spectrum=args.spectrum)
    out = report.to_dict()
    title = f"fcfd gap: {Path(out['teacher']).parent.name or out['teacher']} ({out['bn']} BN)"

    def figures() -> list:
        figs = viz.gap_figures(report.result)
        if report.spectrum is not None:
            from fcfd_viz.viz import spectrum as viz_spectrum

            figs.append(viz_spectrum.share_figure([report.spectrum]))
            if out["spectrum"]["predictors"]:
                pred = out["spectrum"]["predictors"]
                figs.append(viz_spectrum.predictor_figure([report.spectrum], pred))
        return figs

    return report_out(args, out, figures, title, _print_gap)


def _fit_knobs(args: argparse.Namespace) -> dict:
    """The ``--fit-*`` settings given (FitConfig field -> value); FitConfig.validate judges
    them (a bad one: one line, exit 2)."""
    knobs = {
        "max_epochs": args.fit_max_epochs,
        "lr": args.fit_lr,
        "method": args.fit_method,
        "ridge": args.fit_ridge,
    }
    return {k: v for k, v in knobs.items() if v is not None}


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
                f"    fit ({f['config']['method']}): {f['epochs']} epochs max over bridges, "
                f"{'converged' if f['converged'] else 'hit the cap'}, "
                f"final MSE "
                + ", ".join(f"{b} {v['final_loss']:.3g}" for b, v in f["bridges"].items())
            )
    if out.get("spectrum"):
        _print_spectrum(out["spectrum"])
    print(out["reading"])
    if html:
        print(f"  figures -> {html}")


def _print_spectrum(spec: dict) -> None:
    print(
        f"error spectrum ({spec['images']} test images; share: in the top-5 sensitive directions)"
    )
    for name, e in spec["entries"].items():
        for j, k in enumerate(spec["stages"]):
            top = min(5, len(e["share"][j]))
            print(
                f"  {name} stage {k}: l2 {e['means']['l2'][j]:.4g}  fisher "
                f"{e['means']['fisher'][j]:.4g}  KL {e['means']['kl'][j]:.4g}  share "
                f"{e['share'][j][top - 1]:.3f} (isotropic {e['isotropic'][j][top - 1]:.3f})"
            )
    p = spec.get("predictors")
    if p:
        from fcfd_viz.analysis.gap.spectra import predictor_text

        print(f"  Spearman with the KL over students and stages: {predictor_text(p)}")
        for k, q in (p.get("per_stage") or {}).items():
            print(f"    within stage {k}: {predictor_text(q)}")


def _cmd_det_gap(args: argparse.Namespace) -> int:
    """``fcfd gap`` of detector checkpoints (eval-mode BN, connectors on the full split)."""
    from dataclasses import replace

    from fcfd_viz.detection.gap import DET_FIT
    from fcfd_viz.detection.gap_report import check_det_regime, det_gap_inputs, det_gap_report
    from fcfd_viz.viz import detection as viz_detection

    check_det_regime(args.bn, args.fit_data)
    knobs = _fit_knobs(args)
    fit = replace(DET_FIT, seed=args.seed, **knobs)
    fit.validate()
    inputs = det_gap_inputs(
        args.student, args.teacher, args.label, args.data_dir, min(args.batch_size, 64),
        args.images, args.fit_images,
    )  # fmt: skip
    progress = not args.no_progress and not args.json
    report = det_gap_report(inputs, fit=False if args.no_fit else fit, progress=progress)
    out = report.to_dict()
    title = f"fcfd gap: {Path(out['teacher']).parent.name or out['teacher']} (detection)"
    figures = lambda: [viz_detection.det_gap_figure(report.result)]  # noqa: E731
    return report_out(args, out, figures, title, _print_det_gap)


def _print_det_gap(out: dict, html: str | None) -> None:
    rois = ", ".join(f"{k} {n}" for k, n in out["rois_per_level"].items())
    print(
        f"teacher {out['teacher']} ({out['dataset']}, {out['num_images']} test images, "
        f"{out['num_rois']} teacher proposals: {rois})"
    )
    for name, e in out["students"].items():
        print(f"  {name}:")
        for k in out["levels"]:
            func = e["functional"][k]
            if func is None:
                tail = "  (the box head does not read it)"
            elif not out["rois_per_level"][k]:
                tail = "  (no proposal pools from it: no functional gap)"
            else:
                tail = f"  functional KL {func:.4g}  box MSE {e['box'][k]:.4g}"
            print(f"    {k}: appearance {e['appearance'][k]:.4g}{tail}")
        print(
            f"    all levels: functional KL {e['all']['functional']:.4g}  box MSE {e['all']['box']:.4g}"
        )
        if e["fit"]:
            f = e["fit"]
            state = "converged" if f["converged"] else "hit the cap"
            print(
                f"    fit ({f['config']['method']}): {f['epochs']} epochs max over bridges, {state}"
            )
    print(out["reading"])
    if html:
        print(f"  figures -> {html}")
