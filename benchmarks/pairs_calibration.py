"""Calibrating ``digit-pairs``: quick CE trials per difficulty level (docs/results.md,
"digit-pairs calibration").

The target (issue #25): the paper's regime, i.e. the resnet32x4 teacher at >= 85% test top-1
and a CE-trained resnet8x4 at least 5 points below it (CIFAR-100: 79.4 vs 72.5). A trial
trains one arch with cross-entropy alone on one named style
(:data:`fcfd_viz.data.digit_pairs.STYLES`) in memory, without run directories, so that a level can
be tried in minutes: ``--n`` training canvases drawn at random with replacement into batches
of 64, SGD (momentum 0.9, Nesterov, weight decay 5e-4) under a one-cycle lr (5% warm-up, then
cosine) for ``--steps`` steps, bf16 autocast where the CPU has it; train and test top-1 (on
2000 canvases of each split) at six points of the run. The chosen level is then confirmed by
real runs (``benchmarks/pairs_study.py``: the teacher and CE students of each setting in
:data:`LIBRARY`, read from their runs folders). Trials and library runs are recorded in
benchmarks/results/pairs_calibration.json.

    python benchmarks/pairs_calibration.py --style hard --arch resnet8x4 --steps 3000
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from contextlib import nullcontext
from pathlib import Path

import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from benchmarks.common import (  # noqa: E402
    RESULTS,
    ROOT,
    machine,
    mean_std,
    table,
    write_json,
    write_section,
)
from fcfd_viz import models
from fcfd_viz.data import digit_pairs  # noqa: E402
from fcfd_viz.training.runtime import cpu_has_fast_bf16  # noqa: E402

NAME = "pairs_calibration"
CHECK = 2000  # canvases of each split the top-1 is measured on
PLATEAU_LOSS = 4.0  # a run has left the early plateau (loss ~ln 100 = 4.61) below this


def top1(net: torch.nn.Module, x: torch.Tensor, y: torch.Tensor, cast) -> float:
    net.eval()
    with torch.no_grad(), cast:
        hits = sum(
            int((net(x[i : i + 500]).argmax(1) == y[i : i + 500]).sum())
            for i in range(0, len(y), 500)
        )
    net.train()
    return 100 * hits / len(y)


def shift(x: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
    """DigitPairs' training augmentation on a batch: each image shifted by up to size/8
    pixels, edges replicated. (B, 3, S, S) -> (B, 3, S, S)"""
    size = x.shape[-1]
    p = max(1, size // 8)
    padded = F.pad(x, (p, p, p, p), mode="replicate")
    d = torch.randint(0, 2 * p + 1, (len(x), 2), generator=gen).tolist()
    return torch.stack([padded[i, :, a : a + size, b : b + size] for i, (a, b) in enumerate(d)])


def trial(
    style: str,
    arch: str,
    steps: int,
    lr: float,
    n: int,
    size: int,
    seed: int,
    warmup: float = 0.05,
    augment: bool = False,
    norm: str = "canvas",
) -> dict:
    """One CE trial; returns its record (curve of (step, loss, train top-1, test top-1)).
    ``warmup``: the share of the steps the one-cycle lr ramps over (0: cosine from the start,
    as the trainer's cosine schedule); ``augment``: DigitPairs' random shift; ``norm``: "canvas"
    (:func:`fcfd_viz.data.digit_pairs.standardise`) or "split" (one mean and std per channel).
    ``plateau_exit``: the first step at which the running mean of the training loss (decay
    0.98) is below :data:`PLATEAU_LOSS`."""
    torch.manual_seed(seed)
    st = digit_pairs.STYLES[style]
    images, labels, _ = digit_pairs.render(True, n, size, style=st)
    test_images, test_labels, _ = digit_pairs.render(False, CHECK, size, style=st)
    if norm == "canvas":  # the dataset's own: each canvas standardised on its own
        x, tx = digit_pairs.standardise(images), digit_pairs.standardise(test_images)
    else:  # "split": one per-channel mean and std for all (CIFAR's way; the first trials')
        x = images.float() / 255  # (n, 3, S, S)
        mean, std = x.mean((0, 2, 3), keepdim=True), x.std((0, 2, 3), keepdim=True)
        x, tx = (x - mean) / std, (test_images.float() / 255 - mean) / std
    net = models.create(arch, num_classes=100)
    opt = torch.optim.SGD(net.parameters(), lr=lr, momentum=0.9, nesterov=True, weight_decay=5e-4)
    if warmup > 0:
        sched = torch.optim.lr_scheduler.OneCycleLR(
            opt, max_lr=lr, total_steps=steps, pct_start=warmup
        )
    else:
        sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, steps)
    bf16 = cpu_has_fast_bf16()
    cast = torch.autocast("cpu", dtype=torch.bfloat16) if bf16 else nullcontext()
    if bf16:
        net = net.to(memory_format=torch.channels_last)
    gen = torch.Generator().manual_seed(seed)
    curve, t0 = [], time.perf_counter()
    running, plateau_exit = math.log(100), None
    for i in range(steps):
        idx = torch.randint(0, n, (64,), generator=gen)
        batch = shift(x[idx], gen) if augment else x[idx]
        with cast:
            loss = F.cross_entropy(net(batch).float(), labels[idx])
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        sched.step()
        running = 0.98 * running + 0.02 * float(loss.detach())
        if plateau_exit is None and running < PLATEAU_LOSS:
            plateau_exit = i + 1
        if (i + 1) % (steps // 6) == 0:
            point = [i + 1, float(loss), top1(net, x[:CHECK], labels[:CHECK], cast)]
            curve.append([*point, top1(net, tx, test_labels, cast)])
            print(style, arch, *(f"{v:.3g}" for v in curve[-1]), flush=True)
    return {
        "style": style,
        "style_knobs": st.to_dict(),
        "arch": arch,
        "steps": steps,
        "lr": lr,
        "n": n,
        "size": size,
        "seed": seed,
        "bf16": bf16,
        "warmup": warmup,
        "augment": augment,
        "norm": norm,
        "plateau_exit": plateau_exit,
        "curve": curve,  # [step, loss, train top-1, test top-1]
        "test_top1": curve[-1][3],
        "seconds": time.perf_counter() - t0,
    }


# The calibration's library runs (benchmarks/pairs_study.py, each setting from its own clone of
# the code; runs folders under benchmarks/runs): setting -> (runs folder, teacher run). The
# fresh-canvas settings share their CE students (CE needs no teacher) and differ in the
# teacher's schedule; `teacher-resnet32x4` is the study's, at TEACHER_TRAIN.
LIBRARY = {
    "100 per class, fixed canvases": ("pairs-fixed100", "teacher-resnet32x4"),
    "200 per class, fixed canvases": ("pairs-fixed200", "teacher-resnet32x4"),
    "fresh canvases, teacher lr 0.02": ("pairs", "teacher-resnet32x4-e40"),
    "fresh canvases, teacher lr 0.05": ("pairs", "teacher-resnet32x4-e60-lr005"),
    "fresh canvases, teacher lr 0.02, longer": ("pairs", "teacher-resnet32x4"),
}


def _last_train_top1(run) -> float | None:
    records = [r for r in run.metrics() if "train_top1" in r]
    return records[-1]["train_top1"] if records else None


def library_runs() -> dict[str, dict]:
    """Per :data:`LIBRARY` setting whose runs are here: the teacher's and the CE students'
    final test and train top-1 and epochs (the students of every finished seed)."""
    from fcfd_viz.experiments.demo import is_done
    from fcfd_viz.runs.layout import Run

    found = {}
    for setting, (folder, teacher_run) in LIBRARY.items():
        runs = ROOT / "benchmarks" / "runs" / folder / "resnet32x4-resnet8x4"
        teacher = Run(runs / teacher_run)
        if not is_done(teacher.path):
            continue
        students = [Run(p) for p in sorted(runs.glob("ce-s*")) if is_done(p)]

        def record(run: Run, *keys: str) -> dict:
            summary = run.summary() or {}  # read once per run
            return {**{k: summary[k] for k in keys}, "train_top1": _last_train_top1(run)}

        found[setting] = {
            "teacher": record(teacher, "top1", "epochs"),
            "ce": [record(r, "seed", "top1", "epochs") for r in students],
        }
    return found


def library_table(library: dict[str, dict]) -> str:
    """The library runs of each setting: teacher and CE resnet8x4, final train and test top-1,
    and the gap the target names."""
    rows = []
    for setting, r in library.items():
        t, ce = r["teacher"], r["ce"]
        if not ce:
            continue
        tests = [c["top1"] for c in ce]
        trains = [c["train_top1"] for c in ce if c["train_top1"] is not None]
        rows.append(
            [
                setting,
                f"{t['epochs']} / {ce[0]['epochs']}",
                f"{t['top1']:.2f}",
                f"{t['train_top1']:.1f}" if t["train_top1"] is not None else "-",
                len(ce),
                mean_std(tests),
                mean_std(trains) if trains else "-",
                f"{t['top1'] - sum(tests) / len(tests):.2f}",
            ]
        )
    return table(
        [
            "setting",
            "epochs (teacher / CE)",
            "teacher test top-1",
            "teacher train top-1",
            "CE seeds",
            "CE test top-1",
            "CE train top-1",
            "gap (teacher - CE mean)",
        ],
        rows,
    )


def section(result: dict) -> str:
    rows = []
    for t in result["trials"]:
        last = t["curve"][-1]
        shown = f"{t['test_top1']:.1f}" if t["test_top1"] is not None else "-"
        stopped = f"stopped at {t['stopped_at']}: {last[3]:.1f}" if t.get("stopped_at") else ""
        warm = t.get("warmup", 0.05)  # the first trials predate the knob: one-cycle, 5%
        ramp = f"{warm:.0%} one-cycle" if warm else "none (cosine)"
        aug = "shift" if t.get("augment") else "-"
        norm = t.get("norm", "split")  # the first trials predate per-canvas standardisation
        rows.append(
            [
                t["style"],
                t["arch"],
                t["seed"],
                t["n"],
                t["steps"],
                t["lr"],
                ramp,
                aug,
                norm,
                t.get("plateau_exit") or "-",
                f"{last[2]:.1f}",
                shown,
                stopped,
            ]
        )
    knobs = "\n".join(
        f"- `{name}`: {json.dumps(style.to_dict())}" for name, style in digit_pairs.STYLES.items()
    )
    library = result.get("library") or {}
    m = result["machine"]
    text = (
        "## digit-pairs calibration (`benchmarks/pairs_calibration.py`)\n\n"
        "Target: the resnet32x4 teacher at >= 85% test top-1 and a CE resnet8x4 >= 5 points "
        "below it (CIFAR-100: 79.4 vs 72.5). Quick trials: cross-entropy alone, "
        "16x16 training canvases drawn into batches of 64, top-1 on 2000 canvases "
        f"of each split ({m['cpu']}, 1 thread, a machine shared with other jobs).\n\n"
        + table(
            [
                "style",
                "arch",
                "seed",
                "canvases",
                "steps",
                "lr",
                "warm-up",
                "aug",
                "norm",
                "plateau exit (step)",
                "train top-1",
                "test top-1",
                "note",
            ],
            rows,
        )
        + "\n\nThe levels (fractions of the canvas side; rotation in degrees):\n\n"
        + knobs
    )
    if library:
        text += (
            "\n\nThe chosen level, `"
            + digit_pairs.DEFAULT_STYLE
            + "`, in the library's runs (`benchmarks/pairs_study.py` and `fcfd train-teacher`: "
            "a resnet32x4 teacher and CE resnet8x4 students, cosine schedules of the epochs "
            "shown with one warm-up epoch, students at lr 0.05; 200 per class ran half the "
            "epochs, the same steps; 5000 test canvases, `--precision auto`, 1 thread each, "
            "two runs sharing the 2 cores; train top-1 is the last epoch's running accuracy on "
            "that epoch's batches):\n\n" + library_table(library)
        )
    return text


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--style", default=digit_pairs.DEFAULT_STYLE, choices=list(digit_pairs.STYLES))
    p.add_argument("--arch", default="resnet8x4")
    p.add_argument("--steps", type=int, default=3000)
    p.add_argument("--lr", type=float, default=0.05)
    p.add_argument("--n", type=int, default=10_000, help="training canvases")
    p.add_argument("--size", type=int, default=digit_pairs.NATIVE_SIZE)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--warmup", type=float, default=0.05, help="one-cycle ramp share; 0: cosine")
    p.add_argument("--augment", action="store_true", help="DigitPairs' random shift")
    p.add_argument("--norm", default="canvas", choices=["canvas", "split"])
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--report", action="store_true", help="write the section, train nothing")
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    path = RESULTS / f"{NAME}.json"
    result = json.loads(path.read_text()) if path.exists() else {"trials": []}
    if not args.report:
        t = trial(
            args.style,
            args.arch,
            args.steps,
            args.lr,
            args.n,
            args.size,
            args.seed,
            args.warmup,
            args.augment,
            args.norm,
        )
        # read again: trials of other processes may have finished meanwhile
        earlier = json.loads(path.read_text())["trials"] if path.exists() else []
        result = {**result, "machine": machine(), "trials": [*earlier, t]}
    # the library runs found now, over those recorded (a setting's runs may be gone)
    result["library"] = {**result.get("library", {}), **library_runs()}
    write_json(NAME, result)
    write_section(NAME, section(result), ROOT / "docs" / "results.md")


if __name__ == "__main__":
    main()
