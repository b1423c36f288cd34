"""Accuracy of ce / kd / fitnet / dkd / fcfd students on ``digits-hard`` (docs/results.md).

The teacher (resnet32x4 by default, as in the reference measurements) trains on the whole
digits training split; each student sees a stratified 10% subset fixed per seed, so methods
with the same seed see the same images (paired comparison). Runs are cached under
``benchmarks/runs/accuracy`` (a finished run is not trained again), so the script can be
stopped and restarted, and the functional-gap benchmark reuses the same students.

    python benchmarks/accuracy.py [--seeds 0 1 2 3 4] [--epochs 60] [--quick]
        [--reuse "resnet8 quarter width, 10%:ce" ...]

``--reuse SETTING:LABEL`` takes that row from the previous benchmarks/results/accuracy.json
instead of training it (same seeds, epochs and teacher only), for methods a code change did not
touch; reused rows are marked in the table and carry ``reused: true`` in the JSON.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from benchmarks.common import (  # noqa: E402
    ROOT,
    add_section_args,
    machine,
    mean_std,
    paired_table,
    table,
    write_json,
    write_section,
)
from fcfd_viz.data.datasets import DataConfig  # noqa: E402
from fcfd_viz.experiments.experiment import ExperimentConfig, run_experiment  # noqa: E402
from fcfd_viz.runs.layout import Run  # noqa: E402
from fcfd_viz.training.config import TrainConfig  # noqa: E402

RUNS = ROOT / "benchmarks" / "runs" / "accuracy"
FCFD = {"temperature": 4.0, "feat_weight": 0.02, "feat_warmup_epochs": 20, "mix_weight": 1.0}
# setting -> (student, subset, {label: (method, knobs)}); a label ending in " bf16" trains
# with --precision bf16, every other one with --precision fp32
LOW_PRECISION = " bf16"
SETTINGS = {
    "resnet8, 10%": (
        "resnet8",
        0.1,
        {
            "ce": ("ce", {}),
            "kd": ("kd", {"temperature": 4.0}),
            "fitnet": ("fitnet", {}),
            "dkd": ("dkd", {"temperature": 4.0}),
            "fcfd": ("fcfd", FCFD),
            "fcfd teacher_bn=batch": ("fcfd", {**FCFD, "teacher_bn": "batch"}),
            # the functional terms' own contribution: same bridges and appearance loss, no paths
            "fcfd appearance only": ("fcfd", {**FCFD, "paths": "nomix"}),
            # --precision bf16 (autocast + channels_last) against the fp32 rows above: same
            # seeds, same subsets; the other rows pin fp32 whatever the CPU's `auto` would be
            "kd bf16": ("kd", {"temperature": 4.0}),
            "fcfd bf16": ("fcfd", FCFD),
        },
    ),
    "resnet8 quarter width, 10%": (
        "resnet8_w025",
        0.1,
        {
            "ce": ("ce", {}),
            "kd": ("kd", {"temperature": 4.0}),
            "dkd": ("dkd", {"temperature": 4.0}),
            "fcfd": ("fcfd", FCFD),
            "fcfd teacher_bn=batch": ("fcfd", {**FCFD, "teacher_bn": "batch"}),
            "fcfd appearance only": ("fcfd", {**FCFD, "paths": "nomix"}),
            "fcfd feat_weight=0.2": ("fcfd", {**FCFD, "feat_weight": 0.2}),
        },
    ),
}


def ensure_teacher(arch: str, epochs: int, lr: float, runs: Path = RUNS) -> Path:
    out = runs / f"teacher-{arch}-e{epochs}"
    if not (out / "summary.json").exists():
        cfg = ExperimentConfig(
            method="ce",
            student=arch,
            data=DataConfig(dataset="digits"),
            train=TrainConfig(epochs=epochs, lr=lr, seed=0, precision="fp32"),
        )
        run_experiment(cfg, out, overwrite=True, progress=False)
    return out


def ensure_student(
    teacher: Path,
    student: str,
    subset: float,
    method: str,
    knobs: dict,
    label: str,
    seed: int,
    epochs: int,
    runs: Path = RUNS,
) -> dict:
    slug = label.replace(" ", "_").replace("=", "")
    out = runs / f"{student}-p{int(subset * 100)}-{slug}-s{seed}-e{epochs}"
    summary = Run(out).summary()
    if summary is None:
        cfg = ExperimentConfig(
            method=method,
            student=student,
            teacher=str(teacher) if method != "ce" else None,
            data=DataConfig(dataset="digits-hard", subset=subset),
            train=TrainConfig(epochs=epochs, seed=seed, precision=precision_of(label)),
            method_kwargs=dict(knobs),
        )
        summary = run_experiment(cfg, out, overwrite=True, progress=False)
    return {**summary, "run": str(out.relative_to(ROOT))}


def precision_of(label: str) -> str:
    return "bf16" if label.endswith(LOW_PRECISION) else "fp32"


# (a, b): "a - b", paired by seed (same subset, same initialisation seed)
PAIRS = [
    ("kd", "ce"),
    ("fcfd", "kd"),
    ("fcfd teacher_bn=batch", "kd"),
    ("fcfd", "fcfd appearance only"),
    ("fcfd teacher_bn=batch", "fcfd appearance only"),
    ("dkd", "kd"),
    ("fcfd feat_weight=0.2", "fcfd"),
    ("kd bf16", "kd"),
    ("fcfd bf16", "fcfd"),
]


def paired_lines(res: dict) -> str:
    """Per-seed differences of final top-1 for the comparisons that matter, as a small table."""
    diffs = paired_table({label: r["final"] for label, r in res.items()}, PAIRS)
    return diffs and "\n\nPaired by seed (final top-1, percentage points):\n\n" + diffs


OLD = ROOT / "benchmarks" / "results" / "accuracy.json"
HEADING = "Accuracy on digits-hard"


def reused(previous: dict, setting: str, label: str, args, t_summary: dict) -> dict:
    """The row ``label`` of ``setting`` from the previous results, when comparable."""
    row = previous.get("settings", {}).get(setting, {}).get(label)
    same = (
        row is not None
        and previous.get("seeds") == args.seeds
        and previous.get("epochs") == args.epochs
        and previous.get("teacher", {}).get("top1") == t_summary["top1"]
    )
    if not same:
        sys.exit(f"accuracy: cannot reuse {setting}:{label}: no comparable earlier result")
    return {**row, "reused": True}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    # 5 seeds: with 3, FCFD vs KD on resnet8 sat inside one another's spread
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2, 3, 4])
    ap.add_argument("--epochs", type=int, default=60)
    ap.add_argument("--teacher", default="resnet32x4")
    ap.add_argument("--teacher-epochs", type=int, default=10)
    # resnet32x4 has 15 blocks and digits gives 23 steps an epoch: lr 0.05 diverges early
    # (23% train top-1 after 4 epochs), lr 0.02 trains it (86% after 2)
    ap.add_argument("--teacher-lr", type=float, default=0.02)
    ap.add_argument("--settings", nargs="*", default=list(SETTINGS))
    ap.add_argument("--methods", nargs="*", default=None, help="only these method labels")
    ap.add_argument("--quick", action="store_true", help="1 seed, 5 epochs, first setting only")
    ap.add_argument("--reuse", nargs="*", default=[], help="SETTING:LABEL rows to take as before")
    add_section_args(ap, "accuracy", HEADING)
    ap.add_argument(
        "--runs", type=lambda p: Path(p).resolve(), default=RUNS, help="where runs are cached"
    )
    args = ap.parse_args()
    previous = json.loads(OLD.read_text()) if OLD.exists() else {}
    torch.set_num_threads(2)
    if args.quick:
        args.seeds, args.epochs, args.settings = [0], 5, [next(iter(SETTINGS))]
    teacher = ensure_teacher(args.teacher, args.teacher_epochs, args.teacher_lr, args.runs)
    t_summary = Run(teacher).summary()
    result = {
        "machine": machine(),
        "teacher": {"arch": args.teacher, **t_summary},
        "epochs": args.epochs,
        "seeds": args.seeds,
        "settings": {},
    }
    md = [
        f"Teacher {args.teacher} trained {args.teacher_epochs} epochs on all of digits' training split: "
        f"test top-1 {t_summary['top1']:.2f}%. Students: 16x16 digits, {args.epochs} epochs, seeds "
        f"{args.seeds} (the subset is fixed per seed, so methods are paired by seed). "
        f"Machine: {result['machine']['cpu']}, {torch.get_num_threads()} threads.\n"
    ]
    if args.reuse:
        md[0] += (
            "\nRows marked (earlier run) were not trained again for this table: they come from "
            "the previous results file, and no code their training runs has changed since.\n"
        )
    for setting in args.settings:
        student, subset, methods = SETTINGS[setting]
        rows, res = [], {}
        result["settings"][setting] = res
        md.append("")
        for label, (method, knobs) in methods.items():
            if args.methods is not None and label not in args.methods:
                continue
            if f"{setting}:{label}" in args.reuse:
                res[label] = reused(previous, setting, label, args, t_summary)
            else:
                runs = [
                    ensure_student(
                        teacher, student, subset, method, knobs, label, s, args.epochs, args.runs
                    )
                    for s in args.seeds
                ]
                res[label] = {
                    "final": [r["top1"] for r in runs],
                    "best": [r["best_top1"] for r in runs],
                    "runs": [r["run"] for r in runs],
                    "knobs": knobs,
                }
            final, best = res[label]["final"], res[label]["best"]
            shown = f"{label} (earlier run)" if res[label].get("reused") else label
            rows.append(
                [shown, mean_std(final), mean_std(best), " / ".join(f"{v:.1f}" for v in final)]
            )
            print(setting, label, rows[-1], flush=True)
            md[-1] = (
                f"### {setting}\n\n"
                + table(["method", "final top-1", "best top-1", "per seed (final)"], rows)
                + paired_lines(res)
            )
            # written after every method, so a long benchmark can be stopped with results kept
            write_json(args.name, result)
            section = f"## {args.heading} (`benchmarks/accuracy.py`)\n\n" + "\n\n".join(md)
            write_section(args.name, section, doc=ROOT / "docs" / "results.md")


if __name__ == "__main__":
    main()
