"""mAP of CE-only, KD and FCFD detector students on the embedded digit-boxes set (docs/results.md).

One teacher (the preset's, ``det_resnet18``) trains once on the 1000 training canvases; for
every seed, a CE-only student (the detector's own losses), a KD student and an FCFD student
(the preset's knobs: the paper's detection values) train from the same initialisation seed on
the same canvases with the preset's schedule, so methods are paired by seed. Test: the 300
test canvases (digits never seen in training), COCO-style mAP, AP50, AP75 (torchmetrics).
Wall time is the trainer's own (training and per-epoch evaluation, this machine).

Runs are cached under ``benchmarks/runs/detection`` (a finished run is not trained again), so
the script can be stopped and restarted; the table is rewritten after every run.

    python benchmarks/det_accuracy.py [--seeds 0 1 2] [--epochs N] [--precision auto]
        [--threads 2] [--quick]

Several processes may share the work (e.g. ``--seeds 0`` and ``--seeds 1`` with ``--threads 1``
once the teacher is trained); a last call with every seed finds all runs cached and writes the
table.
"""

from __future__ import annotations

import argparse
import dataclasses
import statistics
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from benchmarks.common import (  # noqa: E402
    ROOT,
    machine,
    mean_std,
    paired_table,
    table,
    write_json,
    write_section,
)
from fcfd_viz.experiments.demo import is_done  # noqa: E402
from fcfd_viz.experiments.detection_study import det_configs  # noqa: E402
from fcfd_viz.experiments.experiment import ExperimentConfig, run_experiment  # noqa: E402
from fcfd_viz.runs.layout import Run  # noqa: E402

RUNS = ROOT / "benchmarks" / "runs" / "detection"
METHODS = ("ce", "kd", "fcfd")
METRICS = ("map", "map_50", "map_75")
# (a, b): "a - b" in mAP points, paired by seed
PAIRS = [("kd", "ce"), ("fcfd", "ce"), ("fcfd", "kd")]


def configs(args) -> dict[str, ExperimentConfig]:
    """The teacher's and the three students' configs (students without a seed yet)."""
    extra = {"subset": 0.1} if args.quick else {}
    # one folder per setting, so a quick or shorter run is never taken for a finished one
    runs = args.runs / ("quick" if args.quick else f"{args.precision}-e{args.epochs or 'preset'}")
    cfgs = det_configs(runs, args.preset, ["kd", "fcfd"], args.epochs, "cpu", **extra)
    for cfg in cfgs.values():
        cfg.train = dataclasses.replace(cfg.train, precision=args.precision)
    # CE only: the student arch on the students' data and schedule, no teacher, no knobs
    cfgs["ce"] = dataclasses.replace(cfgs["kd"], method="ce", teacher=None, method_kwargs={})
    return cfgs


def ensure(cfg: ExperimentConfig, out: Path) -> dict:
    """Train ``cfg`` into ``out`` unless a finished run is there; its summary."""
    if not is_done(out):
        run_experiment(cfg, out, overwrite=True, progress=True, tensorboard=False)
    summary = Run(out).summary()
    return {**summary, "run": str(out.relative_to(ROOT))}


def markdown(result: dict) -> str:
    t = result["teacher"]
    lines = [
        "## Detection on digit-boxes (`benchmarks/det_accuracy.py`)\n",
        f"Preset `{result['preset']}`: teacher {result['teacher_arch']} -> student "
        f"{result['student_arch']}, {result['epochs']} epochs each, precision "
        f"`{result['precision']}`, seeds {result['seeds']} (students paired by seed: same "
        f"initialisation, same canvases). 1000 training / 300 test canvases of 64x64, test "
        f"digits unseen in training; COCO-style mAP (%, torchmetrics). Machine: "
        f"{result['machine']['cpu']}, {result['machine']['threads']} threads.\n",
        f"Teacher: mAP {t['map']:.2f}, AP50 {t['map_50']:.2f}, AP75 {t['map_75']:.2f}; "
        f"trained in {t['seconds'] / 60:.1f} min.\n",
    ]
    if result.get("note"):
        lines.append(result["note"] + "\n")
    rows = []
    for m, r in result["students"].items():
        per = " / ".join(f"{v:.1f}" for v in r["map"])
        wall = statistics.median(r["seconds"]) / 60
        rows.append([m, *(mean_std(r[k]) for k in METRICS), per, f"{wall:.1f}"])
    lines.append(
        table(["student", "mAP", "AP50", "AP75", "per seed (mAP)", "min per run (median)"], rows)
    )
    paired = paired_table({m: r["map"] for m, r in result["students"].items()}, PAIRS)
    if paired:
        lines += ["\nPaired by seed (final mAP, points):\n", paired]
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    ap.add_argument("--preset", default="det-digits")
    ap.add_argument("--epochs", type=int, default=None, help="default: the preset's")
    ap.add_argument("--precision", default="auto", help="auto|fp32|bf16 (every run)")
    ap.add_argument("--methods", nargs="*", default=list(METHODS))
    ap.add_argument("--runs", type=lambda p: Path(p).resolve(), default=RUNS)
    # the small detectors' steps keep ~1.3 of 2 cores busy (CPU/wall time of a --quick run:
    # 73 s / 57 s): two processes of 1 thread each share the cores better than one of 2
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--quick", action="store_true", help="1 seed, 1 epoch, 10%% of the canvases")
    ap.add_argument("--note", default="", help="a sentence for the section: how the runs were made")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    if args.quick:
        args.seeds, args.epochs = [0], 1
    cfgs = configs(args)
    teacher_dir = Path(cfgs["kd"].teacher)
    teacher = ensure(cfgs["teacher"], teacher_dir)
    result = {
        "machine": machine(),
        "preset": args.preset,
        "teacher_arch": cfgs["teacher"].student,
        "student_arch": cfgs["kd"].student,
        "epochs": cfgs["kd"].train.epochs,
        "precision": args.precision,
        "seeds": args.seeds,
        "note": args.note,
        "teacher": teacher,
        "students": {},
    }
    for seed in args.seeds:
        for m in args.methods:
            cfg = dataclasses.replace(cfgs[m], train=dataclasses.replace(cfgs[m].train, seed=seed))
            s = ensure(cfg, teacher_dir.parent / f"{m}-s{seed}")
            row = result["students"].setdefault(m, {k: [] for k in (*METRICS, "seconds", "runs")})
            for k in (*METRICS, "seconds"):
                row[k].append(s[k])
            row["runs"].append(s["run"])
            print(f"{m} seed {seed}: mAP {s['map']:.2f} in {s['seconds']:.0f} s", flush=True)
            # written after every run, so a long benchmark can be stopped with results kept
            if not args.quick:
                write_json("det_accuracy", result)
                write_section("det_accuracy", markdown(result), doc=ROOT / "docs" / "results.md")
    if args.quick:
        print(markdown(result))


if __name__ == "__main__":
    main()
