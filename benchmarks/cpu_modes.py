"""fp32 training-step modes on a CPU without bf16 (AVX2): contiguous (today's default there),
channels_last, torch.compile, both (docs/benchmarks.md, "fp32 modes on an AVX2 CPU").

On CPUs without bf16 hardware ``--precision auto`` trains in fp32, contiguous; this measures
whether channels_last or ``torch.compile`` (the trainer's ``compile`` setting) would make the
step faster there, side by side: every mode's step in one interleaved loop, median of
``--repeats``. On a CPU that has AVX-512 the script emulates an AVX2-only one (unless
``--native``): it re-runs itself with ``ATEN_CPU_CAPABILITY=avx2`` (PyTorch's own kernels)
and ``ONEDNN_MAX_CPU_ISA=AVX2`` (oneDNN's convolutions), the two libraries a training step
spends its time in. KD's and FCFD's steps (FCFD over the 6 equally likely draws of 2 mixed
paths, each timed on its own, averaged: the expected step of a run), batch 64.

It also measures what each memory format does to the numbers: the relative difference of a
KD step's gradients computed with 1 and with 2 threads (``--invariance-only`` adds just that
to the last results and re-renders the section).

    python benchmarks/cpu_modes.py [--pairs resnet32x4-resnet8x4 resnet56-resnet20]
        [--size 32] [--repeats 5] [--threads 2] [--native] [--invariance-only]
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from benchmarks.common import (  # noqa: E402
    RESULTS,
    add_section_args,
    machine,
    table,
    write_json,
    write_section,
)
from fcfd_viz import distill, models  # noqa: E402

MODES = {  # name -> (channels_last, compile)
    "fp32": (False, False),
    "fp32 channels_last": (True, False),
    "fp32 compile": (False, True),
    "fp32 channels_last + compile": (True, True),
}
AVX2_ENV = {"ATEN_CPU_CAPABILITY": "avx2", "ONEDNN_MAX_CPU_ISA": "AVX2"}
DRAWS = list(itertools.combinations(range(4), 2))  # FCFD's 6 draws of 2 of its 4 paths


def make_step(pair: str, method: str, mode: str, size: int, draw=None, batch: int = 64):
    """One SGD step of ``method`` on ``pair`` in ``mode`` (FCFD: the mixed paths ``draw``)."""
    teacher, student = pair.split("-")
    torch.manual_seed(0)
    channels_last, compiled = MODES[mode]
    d = distill.create(
        method,
        models.create(student, 100),
        models.create(teacher, 100),
        input_shape=(3, size, size),
    )
    d.train()
    d.start_epoch(20, 240)  # past the warm-up: every term at full weight
    if draw is not None:
        d.sample = lambda: [d.paths[i] for i in draw]
    opt = torch.optim.SGD(d.trainable_parameters(), lr=0.01, momentum=0.9, nesterov=True)
    x, y = torch.randn(batch, 3, size, size), torch.randint(0, 100, (batch,))
    if channels_last:
        d.to(memory_format=torch.channels_last)
        x = x.contiguous(memory_format=torch.channels_last)
    model = torch.compile(d) if compiled else d  # as the trainer's `compile` setting does

    def step() -> None:
        _, losses = model(x, y)
        opt.zero_grad(set_to_none=True)
        sum(losses.values()).backward()
        opt.step()

    return step


def measure(pair: str, size: int, repeats: int, modes: list[str] | None = None) -> dict:
    """Median ms of KD's step and of FCFD's expected step in every mode, interleaved."""
    # every variant is its own module instance: dynamo's default cap of 8 compiled versions
    # of one frame would leave the later ones running eagerly
    torch._dynamo.config.cache_size_limit = 64
    modes = modes or list(MODES)
    steps = {}
    for mode in modes:
        steps[("kd", mode, None)] = make_step(pair, "kd", mode, size)
        for draw in DRAWS:
            steps[("fcfd", mode, draw)] = make_step(pair, "fcfd", mode, size, draw)
    compile_s = {}
    for key, s in steps.items():  # warm-up; compiled modes compile here
        t0 = time.perf_counter()
        s()
        s()
        compile_s[key] = time.perf_counter() - t0
    times: dict = {k: [] for k in steps}
    for _ in range(repeats):
        for key, s in steps.items():
            t0 = time.perf_counter()
            s()
            times[key].append(time.perf_counter() - t0)
    med = {k: 1000 * statistics.median(v) for k, v in times.items()}
    out = {}
    for mode in modes:
        fcfd = [med[("fcfd", mode, d)] for d in DRAWS]
        warm = sum(compile_s[k] for k in steps if k[1] == mode)
        out[mode] = {
            "kd_ms": med[("kd", mode, None)],
            "fcfd_ms": statistics.mean(fcfd),
            "warmup_s": warm,
        }
    return out


def thread_invariance(pair: str, size: int) -> dict:
    """Per memory format: ``||g1 - g2|| / ||g1||`` of a KD step's student gradients computed
    with 1 and with 2 threads (0: the numbers do not depend on the thread count)."""

    def grads(channels_last: bool, threads: int) -> torch.Tensor:
        torch.set_num_threads(threads)
        torch.manual_seed(0)
        teacher, student = pair.split("-")
        d = distill.create(
            "kd", models.create(student, 100), models.create(teacher, 100),
            input_shape=(3, size, size),
        )  # fmt: skip
        d.train()
        x, y = torch.randn(64, 3, size, size), torch.randint(0, 100, (64,))
        if channels_last:
            d.to(memory_format=torch.channels_last)
            x = x.contiguous(memory_format=torch.channels_last)
        _, losses = d(x, y)
        sum(losses.values()).backward()
        return torch.cat([p.grad.flatten() for p in d.trainable_parameters() if p.grad is not None])

    before = torch.get_num_threads()
    out = {}
    for name, cl in (("fp32", False), ("fp32 channels_last", True)):
        g1, g2 = grads(cl, 1), grads(cl, 2)
        out[name] = float((g1 - g2).norm() / g1.norm())
    torch.set_num_threads(before)
    return out


# what each measurement decided, by section name (the emulated run came first; the native
# one on a real AVX2-only CPU replaced its decision)
DECISIONS = {
    "cpu_modes": (
        "**What `auto` did with this, until the native measurement below.** It stayed fp32, "
        "contiguous, eager on such a CPU. `torch.compile` saved 6-26% of a step after a warm-up "
        "of 12-307 s, and channels_last 2-15%, but channels_last's gradients change with the "
        "thread count (table below: about 1e-4 relative, against about 1e-9 contiguous). On a "
        "real AVX2-only CPU channels_last saves more, and `auto` now takes it there "
        "(next section)."
    ),
    "cpu_modes_native": (
        "**What `auto` does with this.** On a real AVX2-only CPU channels_last is faster for "
        "every pair and method here, with no warm-up (the digits pair: next section), so "
        "`--precision auto` trains fp32 channels_last on an x86 CPU (`avx2` in its flags; "
        "docs/training.md). `torch.compile` on top of it gains little (resnet56-resnet20's "
        "FCFD step most) after 7-15 minutes of compiling, which a 20-epoch digit-pairs run "
        "barely pays back and no test or demo run does: it stays off (`--compile` for long "
        "runs). The price of channels_last: the numbers depend on the thread count (table "
        "below); `--precision fp32` keeps the contiguous path whose numbers do not. A model "
        "with a 1x1, stride-2 convolution on fewer than 16 channels (`resnet8_w025`) stays "
        "contiguous: oneDNN's channels_last weight gradient of it overruns its workspace "
        "(oneDNN issue 6035; it aborted the process here)."
    ),
    "cpu_modes_digits": (
        "The digits pair (the default demo's teacher and student, and the networks of most "
        "tests) gains as much from channels_last, so `auto` is the same for it."
    ),
}


def section(result: dict, heading: str, name: str = "cpu_modes") -> str:
    rows = []
    for pair, modes in result["pairs"].items():
        base = modes["fp32"]
        for mode, r in modes.items():
            rows.append(
                [
                    pair,
                    mode,
                    f"{r['kd_ms']:.0f}",
                    f"{r['kd_ms'] / base['kd_ms']:.2f}x",
                    f"{r['fcfd_ms']:.0f}",
                    f"{r['fcfd_ms'] / base['fcfd_ms']:.2f}x",
                    f"{r['warmup_s']:.0f}",
                ]
            )
    m = result["machine"]
    how = (
        "emulated (ATEN_CPU_CAPABILITY=avx2, ONEDNN_MAX_CPU_ISA=AVX2)"
        if result["emulated"]
        else "native"
    )
    return (
        f"## {heading} (`benchmarks/cpu_modes.py`)\n\n"
        f"{m['cpu']}, {m['threads']} threads, AVX2 {how}; batch 64, {result['size']}x"
        f"{result['size']} inputs, 100 classes, median of {result['repeats']} interleaved "
        "repeats; FCFD: the mean over its 6 equally likely path draws. Ratios are to fp32 "
        "contiguous (`--precision fp32`; `auto` until the native measurement). Warm-up: the "
        "first two steps of every variant (compilation, for compiled modes).\n\n"
        + table(["pair", "mode", "KD ms", "vs fp32", "FCFD ms", "vs fp32", "warm-up s"], rows)
        + invariance_text(result, DECISIONS.get(name, ""))
    )


def invariance_text(result: dict, decision: str) -> str:
    inv = result.get("invariance")
    if not inv:
        return "\n\n" + decision if decision else ""
    rows = [[pair, mode, f"{v:.1e}"] for pair, modes in inv.items() for mode, v in modes.items()]
    head = ["pair", "mode", "gradient change, 1 vs 2 threads (relative)"]
    return "\n\n" + decision + "\n\n" + table(head, rows)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--pairs", nargs="+", default=["resnet32x4-resnet8x4", "resnet56-resnet20"])
    ap.add_argument("--size", type=int, default=32)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--native", action="store_true", help="do not emulate AVX2")
    ap.add_argument(
        "--modes", nargs="+", default=list(MODES), choices=list(MODES), help="fp32 first"
    )
    ap.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument(
        "--invariance-only",
        action="store_true",
        help="add the thread invariance to the last results",
    )
    ap.add_argument("--report", action="store_true", help="re-render the section, measure nothing")
    add_section_args(ap, "cpu_modes", "fp32 modes on an AVX2 CPU")
    args = ap.parse_args()
    emulate = not args.native and "avx512f" in Path("/proc/cpuinfo").read_text()
    if emulate and not args.child:  # the ISA caps only take effect in a fresh process
        env = {**os.environ, **AVX2_ENV}
        sys.exit(subprocess.call([sys.executable, __file__, *sys.argv[1:], "--child"], env=env))
    if args.invariance_only or args.report:
        result = json.loads((RESULTS / f"{args.name}.json").read_text())
        if args.invariance_only:
            result["invariance"] = {p: thread_invariance(p, args.size) for p in args.pairs}
            write_json(args.name, result)
        write_section(args.name, section(result, args.heading, args.name))
        return
    torch.set_num_threads(args.threads)
    result = {"machine": machine(), "size": args.size, "repeats": args.repeats}
    result["emulated"] = bool(os.environ.get("ONEDNN_MAX_CPU_ISA"))
    result["pairs"] = {}
    for pair in args.pairs:
        result["pairs"][pair] = measure(pair, args.size, args.repeats, args.modes)
        print(pair, json.dumps(result["pairs"][pair]), flush=True)
    result["invariance"] = {p: thread_invariance(p, args.size) for p in args.pairs}
    write_json(args.name, result)
    write_section(args.name, section(result, args.heading, args.name))


if __name__ == "__main__":
    main()
