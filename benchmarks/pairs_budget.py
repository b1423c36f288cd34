"""What the digit-pairs study costs on this machine, before it is run (docs/results.md,
"digit-pairs budget on this machine").

Times, side by side in one interleaved loop, every step the study (``benchmarks/pairs_study.py``)
takes at digit-pairs' native size: the teacher's own cross-entropy step, and one step of each
student method (FCFD: the mean over its 6 equally likely draws of mixed paths), batch 64,
with the test pass per batch (the student's forward, no gradient) and the rendering of one
epoch's new canvases; in fp32, contiguous (``--precision fp32``) and channels_last (what
``--precision auto`` trains on an x86 CPU without bf16). Multiplied by the
protocol's steps (:data:`~fcfd_viz.data.digit_pairs.TEACHER_TRAIN` and the ``pairs-*``
preset's schedule, 10,000 training and 5,000 test canvases), it gives the wall time of the
teacher, of one run per method, and of the whole 5-seed study on one thread: the study runs
as 1-thread chains, one per core.

    python benchmarks/pairs_budget.py [--pairs resnet32x4-resnet8x4 resnet56-resnet20]
        [--repeats 5] [--threads 1] [--teacher-epochs 40 100]
"""

from __future__ import annotations

import argparse
import math
import statistics
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from benchmarks.common import (  # noqa: E402
    ROOT,
    add_section_args,
    machine,
    table,
    write_json,
    write_section,
)
from benchmarks.cpu_modes import DRAWS, make_step  # noqa: E402
from benchmarks.cpu_modes import MODES as MODES_ALL  # noqa: E402
from benchmarks.pairs_study import METHODS  # noqa: E402
from fcfd_viz import models  # noqa: E402
from fcfd_viz.data import digit_pairs  # noqa: E402
from fcfd_viz.experiments import presets  # noqa: E402
from fcfd_viz.training.runtime import cpu_has_fast_bf16  # noqa: E402

BATCH = 64
SEEDS = 5
STUDENT_METHODS = ("ce", "kd", "dkd", "fitnet", "fcfd")  # fcfd's variants cost as fcfd does


# name -> channels_last: the eager fp32 modes of cpu_modes.py (bf16, auto's path on a CPU
# with bf16 hardware, is timed by benchmarks/step_time.py)
MODES = {m: MODES_ALL[m][0] for m in ("fp32", "fp32 channels_last")}


def eval_step(arch: str, size: int, channels_last: bool):
    """The test pass of one batch: ``arch``'s forward without gradient."""
    net = models.create(arch, 100).eval()
    x = torch.randn(BATCH, 3, size, size)
    if channels_last:
        net, x = (
            net.to(memory_format=torch.channels_last),
            x.contiguous(memory_format=torch.channels_last),
        )

    def step() -> None:
        with torch.no_grad():
            net(x)

    return step


def measure(pair: str, size: int, repeats: int) -> dict:
    """Median ms per batch of every step of ``pair``'s study, per mode."""
    teacher, student = pair.split("-")
    steps = {}
    for mode, cl in MODES.items():
        # the teacher's own CE step (make_step builds a teacher beside it that CE never calls)
        steps[("teacher", mode)] = make_step(f"{teacher}-{teacher}", "ce", mode, size)
        steps[("teacher eval", mode)] = eval_step(teacher, size, cl)
        steps[("student eval", mode)] = eval_step(student, size, cl)
        for m in STUDENT_METHODS:
            draws = DRAWS if m == "fcfd" else [None]
            for draw in draws:
                steps[(m, mode, draw)] = make_step(pair, m, mode, size, draw)
    times: dict = {k: [] for k in steps}
    for i in range(repeats + 2):  # two warm-up rounds
        for key, s in steps.items():
            t0 = time.perf_counter()
            s()
            if i >= 2:
                times[key].append(1000 * (time.perf_counter() - t0))
    med = {k: statistics.median(v) for k, v in times.items()}
    out: dict = {}
    for mode in MODES:
        row = {k[0]: v for k, v in med.items() if k[1] == mode and k[0] != "fcfd"}
        row["fcfd"] = statistics.mean(med[("fcfd", mode, d)] for d in DRAWS)
        out[mode] = row
    return out


def render_seconds(size: int) -> float:
    """Wall seconds to draw one epoch's new training canvases (view 1)."""
    data = digit_pairs.DigitPairs(train=True, size=size, fresh=True)
    t0 = time.perf_counter()
    data.set_epoch(1)
    return time.perf_counter() - t0


def budget(ms: dict, preset: presets.Preset, teacher_epochs: list[int], render_s: float) -> dict:
    """Hours on one thread: the teacher at each of ``teacher_epochs``, one run per method,
    and the 5-seed study (every label of ``benchmarks/pairs_study.py``), per mode."""
    n_train = digit_pairs.TRAIN_PER_CLASS * digit_pairs.NUM_CLASSES
    n_test = digit_pairs.TEST_PER_CLASS * digit_pairs.NUM_CLASSES
    steps, evals = math.ceil(n_train / BATCH), math.ceil(n_test / BATCH)
    epochs = preset.train["epochs"]
    out = {}
    for mode, r in ms.items():
        teacher_epoch = (steps * r["teacher"] + evals * r["teacher eval"]) / 1000 + render_s
        run = {
            m: epochs * ((steps * r[m] + evals * r["student eval"]) / 1000 + render_s) / 3600
            for m in STUDENT_METHODS
        }
        study = SEEDS * sum(run[method] for method, _ in METHODS.values())
        out[mode] = {
            "teacher_h": {str(e): e * teacher_epoch / 3600 for e in teacher_epochs},
            "run_h": run,
            "students_h": study,
        }
    return out


def section(result: dict, heading: str) -> str:
    m = result["machine"]
    step_rows, cost_rows = [], []
    for pair, modes_ms in result["ms"].items():
        for mode, r in modes_ms.items():
            step_rows.append(
                [
                    pair,
                    mode,
                    *(f"{r[k]:.0f}" for k in ("teacher", *STUDENT_METHODS, "student eval")),
                ]
            )
            b = result["budget"][pair][mode]
            by_epochs = sorted(
                b["teacher_h"].items(), key=lambda kv: int(kv[0])
            )  # JSON sorts "100" < "40"
            teach = " / ".join(f"{h:.1f} ({e} ep)" for e, h in by_epochs)
            runs = " / ".join(f"{60 * b['run_h'][k]:.0f}" for k in STUDENT_METHODS)
            cost_rows.append([pair, mode, teach, runs, f"{b['students_h']:.1f}"])
    return (
        f"## {heading} (`benchmarks/pairs_budget.py`)\n\n"
        f"{m['cpu']}, bf16 hardware: {'yes' if result['bf16'] else 'no'}; "
        f"{result['threads']} thread(s), batch {BATCH}, {result['size']}x{result['size']} "
        f"canvases, median of {result['repeats']} interleaved repeats after 2 warm-up rounds "
        "(random inputs; FCFD: the mean over its 6 path draws). Milliseconds per batch:\n\n"
        + table(["pair", "mode", "teacher (CE)", *STUDENT_METHODS, "student test pass"], step_rows)
        + f"\n\nWhat that makes of the protocol (10,000 new training canvases per epoch, "
        f"{result['render_s']:.1f} s to draw them; 5,000 test canvases; students "
        f"{result['student_epochs']} epochs): hours of one thread for the teacher, minutes per "
        "student run (ce / kd / dkd / fitnet / fcfd), and hours for the 5-seed study's 35 "
        "student runs (7 labels, FCFD's variants at FCFD's cost):\n\n"
        + table(["pair", "mode", "teacher h", "run min", "study h (students)"], cost_rows)
    )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--pairs", nargs="+", default=["resnet32x4-resnet8x4", "resnet56-resnet20"])
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--teacher-epochs", type=int, nargs="+", default=[40, 100])
    add_section_args(ap, "pairs_budget", "digit-pairs budget on this machine")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    size = digit_pairs.NATIVE_SIZE
    render_s = render_seconds(size)
    result: dict = {
        "machine": machine(),
        "bf16": cpu_has_fast_bf16(),
        "threads": args.threads,
        "size": size,
        "repeats": args.repeats,
        "render_s": render_s,
        "ms": {},
        "budget": {},
    }
    for pair in args.pairs:
        preset = presets.load(f"pairs-{pair}")
        result["student_epochs"] = preset.train["epochs"]
        result["ms"][pair] = measure(pair, size, args.repeats)
        result["budget"][pair] = budget(result["ms"][pair], preset, args.teacher_epochs, render_s)
        print(pair, result["budget"][pair], flush=True)
    write_json(args.name, result)
    write_section(args.name, section(result, args.heading), doc=ROOT / "docs" / "results.md")


if __name__ == "__main__":
    main()
