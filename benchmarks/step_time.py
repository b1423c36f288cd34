"""Training-step time of ce / kd / fitnet / fcfd, and where FCFD's extra time goes.

Median ms per SGD step (forward_train + backward + step), batch 64 of random 3x32x32 inputs,
100 classes, CPU threads as given, methods interleaved in every repeat so drift hits all
alike. Peak memory is measured per method in a fresh subprocess (peak RSS growth on CPU,
max_memory_allocated on CUDA). The FCFD breakdown comes from ablations run in the same
interleaved loop (appearance only, s->t paths only, t->s paths only) and a torch.profiler
table of the operators of one FCFD step. KD and FCFD are also timed as ``--precision auto``
trains them (channels_last + bf16 autocast where the device has bf16 hardware, else fp32).

    python benchmarks/step_time.py [--quick] [--repeats N] [--threads 2]
"""

from __future__ import annotations

import argparse
import itertools
import json
import statistics
import subprocess
import sys
import time
from contextlib import nullcontext

import torch

sys.path.insert(0, str(__import__("pathlib").Path(__file__).resolve().parents[1]))
from benchmarks.common import machine, table, write_json, write_section  # noqa: E402
from fcfd_viz import distill, models  # noqa: E402
from fcfd_viz.distill.paths import candidates  # noqa: E402
from fcfd_viz.training.runtime import runtime_record  # noqa: E402

PAIRS = [("resnet32x4", "resnet8x4"), ("resnet56", "resnet20")]
VARIANTS = {  # name -> (method, knobs)
    "ce": ("ce", {}),
    "kd": ("kd", {}),
    "fitnet": ("fitnet", {}),
    "fcfd": ("fcfd", {}),  # random draws, as in training
    "fcfd (teacher_bn=batch)": ("fcfd", {"teacher_bn": "batch"}),
    "fcfd appearance only": ("fcfd", {"paths": "nomix"}),
    "fcfd 2 s->t paths": ("fcfd", {"paths": "s2t"}),
    "fcfd 2 t->s paths": ("fcfd", {"paths": "t2s"}),
}
MAIN = ["ce", "kd", "fitnet", "fcfd", "fcfd (teacher_bn=batch)"]
AUTO = ["kd auto", "fcfd auto"]  # as --precision auto trains them (fp32 for all others)
# FCFD's `bi` mode draws 2 of its 4 mixed paths a step, uniformly: 6 equally likely draws whose
# costs differ ~2.7x (student->teacher paths run the big teacher's tail forward and backward).
# A median over a few random steps depends on which draws came up; the expected step time
# (what a training run averages to) is the mean over the 6 draws, each timed on its own.
DRAWS = [f"fcfd draw {i}+{j}" for i, j in itertools.combinations(range(4), 2)]


def make_step(teacher: str, student: str, variant: str, device: str, batch: int = 64):
    """One training step of ``variant`` (``... auto``: in the precision --precision auto picks)."""
    torch.manual_seed(0)
    variant, auto = variant.removesuffix(" auto"), variant.endswith(" auto")
    run = runtime_record(torch.device(device), "auto" if auto else "fp32", None)
    dtype = {"bf16": torch.bfloat16, "fp16": torch.float16}.get(run["precision"])
    draw = draw_indices(variant)
    method, knobs = VARIANTS["fcfd" if draw else variant]
    t = models.create(teacher, 100)
    s = models.create(student, 100)
    d = distill.create(
        method, s, t if method != "ce" else None, input_shape=(3, 32, 32), **knobs
    ).to(device)
    d.train()
    d.start_epoch(20, 240)  # past the warm-up: every term at full weight
    if draw is not None:  # this draw every step (the instance's sampler, nothing else changes)
        d.sample = lambda: [d.paths[i] for i in draw]
    opt = torch.optim.SGD(d.trainable_parameters(), lr=0.01, momentum=0.9, nesterov=True)
    x = torch.randn(batch, 3, 32, 32, device=device)
    y = torch.randint(0, 100, (batch,), device=device)
    if auto and run["channels_last"]:
        d.to(memory_format=torch.channels_last)
        x = x.contiguous(memory_format=torch.channels_last)
    cast = torch.autocast(device, dtype=dtype) if dtype and auto else nullcontext()

    def step() -> None:
        with cast:
            _, losses = d.forward_train(x, y)
            loss = sum(losses.values())
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        if device == "cuda":
            torch.cuda.synchronize()

    return step


def time_variants(pair, variants, repeats: int, device: str) -> dict[str, float]:
    steps = {v: make_step(*pair, v, device) for v in variants}
    for s in steps.values():  # warm-up (allocator, oneDNN primitive caches)
        s()
        s()
    times: dict[str, list[float]] = {v: [] for v in variants}
    for _ in range(repeats):
        for v, s in steps.items():
            t0 = time.perf_counter()
            s()
            times[v].append(time.perf_counter() - t0)
    return {v: 1000 * statistics.median(ts) for v, ts in times.items()}


def peak_memory_mb(pair, variant: str, device: str, threads: int) -> float:
    """Peak memory growth of 3 steps, in a fresh process so earlier runs cannot hide it."""
    cmd = [sys.executable, __file__, "--memory-child", *pair, variant]
    cmd += ["--device", device, "--threads", str(threads)]
    out = subprocess.run(cmd, capture_output=True, text=True, check=True)
    return float(json.loads(out.stdout.strip().splitlines()[-1]))


def _status_kib(field: str) -> int:
    for line in open("/proc/self/status"):
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise RuntimeError(f"{field} not in /proc/self/status")


def memory_child(teacher: str, student: str, variant: str, device: str) -> None:
    """Peak memory of 3 training steps above the resting process (models, inputs built).

    On CPU: the kernel's resident-set high-water mark, reset once the models exist (writing 5
    to /proc/self/clear_refs), so the import-time peak of a CUDA build of torch cannot hide the
    step's own peak. On CUDA: max_memory_allocated over the steps.
    """
    step = make_step(teacher, student, variant, device)
    if device == "cuda":
        torch.cuda.reset_peak_memory_stats()
        base = torch.cuda.memory_allocated()
    else:
        base = _status_kib("VmRSS") * 1024
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
    for _ in range(3):
        step()
    if device == "cuda":
        peak = torch.cuda.max_memory_allocated()
    else:
        peak = _status_kib("VmHWM") * 1024
    print(json.dumps((peak - base) / 2**20))


def draw_indices(variant: str) -> list[int] | None:
    """``fcfd draw 0+2`` -> ``[0, 2]`` (indices into FCFD's candidate paths); None otherwise."""
    return [int(i) for i in variant.rsplit(" ", 1)[1].split("+")] if variant in DRAWS else None


def draw_label(pair, variant: str) -> str:
    """``fcfd draw 0+2`` -> ``fcfd draw SSTT+TTSS`` (the path names of this pair)."""
    draw = draw_indices(variant)
    if draw is None:
        return variant
    names = [p.name for p in candidates(models.create(pair[1], 100).num_stages, "bi")]
    return "fcfd draw " + "+".join(names[i] for i in draw)


def gflops_per_step(pair, variant: str, device: str, steps: int = 4) -> float:
    """Conv/matmul GFLOPs of one step (forward + backward), averaged over ``steps`` steps
    because FCFD draws its mixed paths at random each step."""
    from torch.utils.flop_counter import FlopCounterMode

    step = make_step(*pair, variant, device)
    counter = FlopCounterMode(display=False)
    with counter:
        for _ in range(steps):
            step()
    return counter.get_total_flops() / steps / 1e9


def account(ms: dict[str, float], flops: dict[str, float]) -> str:
    """Where FCFD's time over KD goes, from the interleaved ablations (same run, same inputs)."""
    kd, app, fcfd = ms["kd"], ms["fcfd appearance only"], ms["fcfd expected"]
    s2t, t2s = ms["fcfd 2 s->t paths"] - app, ms["fcfd 2 t->s paths"] - app
    lines = [
        f"FCFD's expected step (mean over the 6 path draws) costs {fcfd - kd:.0f} ms more than "
        f"KD's ({fcfd / kd:.2f}x; the median of {ms['fcfd']:.0f} ms over random draws gives "
        f"{ms['fcfd'] / kd:.2f}x). Bridges and the "
        f"appearance terms (the `nomix` ablation) add {app - kd:.0f} ms; two student->teacher "
        f"paths add {s2t:.0f} ms (teacher tails run forward and backward: the gradient must reach "
        f"the student through frozen teacher stages), two teacher->student paths add {t2s:.0f} ms "
        f"(student tails, with weight gradients). The default `bi` draws 2 of the 4 paths, so its "
        f"mixed-path cost sits between the two ({fcfd - app:.0f} ms)."
    ]
    if flops:
        lines.append(
            f"Counted conv/matmul work (expected over draws): FCFD {flops['fcfd expected']:.1f} "
            f"GFLOP a step vs KD {flops['kd']:.1f} ({flops['fcfd expected'] / flops['kd']:.2f}x); "
            f"time ratio {fcfd / kd:.2f}x. "
            + (
                "The time ratio is under the FLOP ratio: FCFD's extra work runs at least as "
                "efficiently as KD's own step, so what remains is the math itself."
                if fcfd / kd <= flops["fcfd expected"] / flops["kd"]
                else "The time ratio is over the FLOP ratio: the extra time is overhead beyond "
                "the math (BatchNorm and elementwise passes, memory traffic, autograd "
                "bookkeeping); see the operator table."
            )
        )
    return " ".join(lines)


def profile_fcfd(pair, device: str, top: int = 12) -> list[list]:
    step = make_step(*pair, "fcfd", device)
    step()
    acts = [torch.profiler.ProfilerActivity.CPU]
    with torch.profiler.profile(activities=acts) as prof:
        for _ in range(3):
            step()
    rows = []
    total = sum(e.self_cpu_time_total for e in prof.key_averages())
    for e in sorted(prof.key_averages(), key=lambda e: -e.self_cpu_time_total)[:top]:
        rows.append(
            [
                e.key,
                round(e.self_cpu_time_total / 3000, 1),
                round(100 * e.self_cpu_time_total / total, 1),
                e.count // 3,
            ]
        )
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=10)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--quick", action="store_true", help="3 repeats, no profile, no memory")
    ap.add_argument("--device", default="cpu")
    ap.add_argument(
        "--memory-child", nargs=3, metavar=("TEACHER", "STUDENT", "VARIANT"), help=argparse.SUPPRESS
    )
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    if args.memory_child:
        return memory_child(*args.memory_child, args.device)
    repeats = 3 if args.quick else args.repeats
    result = {
        "machine": machine(),
        "repeats": repeats,
        "batch": 64,
        "input": [3, 32, 32],
        "pairs": {},
    }
    md = [
        f"Machine: {result['machine']['cpu']}, {args.threads} threads, torch {torch.__version__}, "
        f"device {args.device}; batch 64 of random 3x32x32, median of {repeats} interleaved repeats.\n"
    ]
    for pair in PAIRS:
        name = f"{pair[1]} <- {pair[0]}"
        print(f"timing {name} ...", flush=True)
        ms = time_variants(pair, [*VARIANTS, *DRAWS, *AUTO], repeats, args.device)
        ms["fcfd expected"] = statistics.mean(ms[v] for v in DRAWS)
        mem = (
            {}
            if args.quick
            else {v: peak_memory_mb(pair, v, args.device, args.threads) for v in MAIN}
        )
        flops = {} if args.quick else {v: gflops_per_step(pair, v, args.device) for v in MAIN}
        if flops:  # a fixed draw is deterministic: one step each
            draw_flops = {v: gflops_per_step(pair, v, args.device, steps=1) for v in DRAWS}
            flops.update(draw_flops)
            flops["fcfd expected"] = statistics.mean(draw_flops.values())
        result["pairs"][name] = {
            "ms": ms,
            "gflops": flops,
            "peak_mb": mem,
            "fcfd_over_kd": ms["fcfd expected"] / ms["kd"],
            "fcfd_random_draws_median_over_kd": ms["fcfd"] / ms["kd"],
            "draw_labels": {v: draw_label(pair, v) for v in DRAWS},
            "fcfd_batch_over_kd": ms["fcfd (teacher_bn=batch)"] / ms["kd"],
            "auto": runtime_record(torch.device(args.device), "auto", None),
            "auto_speedup": {v: ms[v] / ms[f"{v} auto"] for v in ("kd", "fcfd")},
        }
        rows = [
            [
                draw_label(pair, v),
                round(ms[v]),
                round(ms[v] / ms["kd"], 2),
                round(flops[v], 2) if v in flops else "-",
                round(mem[v]) if v in mem else "-",
                round(ms[f"{v} auto"]) if f"{v} auto" in ms else "-",
                round(ms[v] / ms[f"{v} auto"], 2) if f"{v} auto" in ms else "-",
            ]
            for v in [*VARIANTS, *DRAWS, "fcfd expected"]
        ]
        auto = result["pairs"][name]["auto"]
        fast = f"auto: {auto['precision']}" + ", channels_last" * auto["channels_last"]
        headers = ["variant", "ms / step (fp32)", "x KD", "GFLOP / step", "peak MB above rest"]
        headers += [f"ms / step ({fast})", "x faster"]
        md.append(f"### {name}\n\n" + table(headers, rows) + "\n\n" + account(ms, flops) + "\n")
        print(json.dumps(result["pairs"][name], indent=1), flush=True)
    if not args.quick:
        prof = profile_fcfd(PAIRS[0], args.device)
        result["profile_fcfd"] = prof
        md.append(
            f"### Top operators of one FCFD step ({PAIRS[0][1]} <- {PAIRS[0][0]}, self CPU time)\n\n"
            + table(["operator", "ms / step", "%", "calls / step"], prof)
            + "\n"
        )
    write_json("step_time", result)
    write_section(
        "step_time", "## Training step time (`benchmarks/step_time.py`)\n\n" + "\n".join(md)
    )


if __name__ == "__main__":
    main()
