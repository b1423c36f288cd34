"""Our FCFD training step beside the authors' own, timed in one process (images/s, peak memory).

Needs a checkout of the authors' code (LiuDongyang6/FCFD) outside this repository or in a
git-ignored folder; it is imported, never copied:

    FCFD_OFFICIAL=/path/to/FCFD python benchmarks/versus_official.py [--device cuda]
        [--batches 64 256] [--steps 20] [--repeats 3]

Theirs: their ``MetaModel`` trained by their own ``Trainer.train_one_epoch`` on a loader of
``--steps`` copies of one batch (their loss code and per-step bookkeeping, as they train); on
CUDA with their fp16 AMP (autocast + a GradScaler step, what their ``--fp16`` runs do), on CPU
in fp32 (their code has no CPU precision option). Ours: our FCFD distiller's step (forward_train,
backward, SGD) in fp32 and as ``--precision auto`` resolves on this device (CUDA: bf16 +
channels_last; CPU: bf16 + channels_last on CPUs with bf16 hardware, else fp32, in which case
the row is not timed twice). Both: the same pair, random weights, SGD with momentum 0.9
(Nesterov), teacher frozen, two mixed paths a step.

FCFD draws 2 of its 4 mixed paths per step (6 equally likely draws whose costs differ ~2.7x);
every draw is timed on its own, for both sides, and the expected step is the mean over the six
(what a training run averages to). Per draw and repeat the two sides alternate, so drift hits
both alike. Peak memory (CUDA): max_memory_allocated during a side's steps minus what was
allocated before them (activations, gradients, optimizer state of that step; both models stay
resident).

Writes benchmarks/results/versus_official_<device>.json and a docs/benchmarks.md section.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import itertools
import os
import statistics
import sys
import time
import warnings
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from benchmarks.common import machine, table, write_json, write_section  # noqa: E402
from benchmarks.fidelity import (  # noqa: E402
    THEIR_NAME,
    cuda_noop,
    load_official,
    their_config,
    their_trainer,
)
from benchmarks.step_time import make_step  # noqa: E402
from fcfd_viz import models  # noqa: E402
from fcfd_viz.distill.paths import candidates  # noqa: E402
from fcfd_viz.training.runtime import runtime_record  # noqa: E402

PAIRS = [("resnet32x4", "resnet8x4"), ("resnet56", "resnet20")]


class AmpScalerStep:
    """What their trainer calls as ``scaler(loss, optimizer)`` in an fp16 run: scale, backward,
    unscale-and-step, update (timm's NativeScaler does this; timm need not be installed)."""

    def __init__(self) -> None:
        self.scaler = torch.amp.GradScaler("cuda")

    def __call__(self, loss, optimizer) -> None:
        self.scaler.scale(loss).backward()
        self.scaler.step(optimizer)
        self.scaler.update()


def plain_step(loss, optimizer) -> None:
    """Their fp32 ``scaler`` (no AMP): backward and step."""
    loss.backward()
    optimizer.step()


def sync(device: str) -> None:
    if device == "cuda":
        torch.cuda.synchronize()


def their_runner(main, their_models, pair, device: str, batch: int, steps: int, cls_dir: Path):
    """``run(draw)``: ``steps`` training steps of their MetaModel on ``draw`` (2 path names)."""
    t_name, s_name = pair
    torch.manual_seed(0)
    factory = their_models.__dict__
    with contextlib.redirect_stdout(io.StringIO()):  # their constructors print their plans
        nets = [factory[THEIR_NAME.get(n, n)](num_classes=100) for n in pair]
        meta = their_models.MetaModel(nets, extra_type="bi")
    meta.to(device).train()
    for p in meta.models[0].parameters():
        p.requires_grad_(False)
    fp16 = device == "cuda"
    main.USE_FP16 = fp16  # their module global, set by their --fp16 flag
    g = torch.Generator().manual_seed(1)
    x = torch.randn(batch, 3, 32, 32, generator=g).to(device)
    y = torch.randint(0, 100, (batch,), generator=g).to(device)
    opt = torch.optim.SGD(
        [p for p in meta.parameters() if p.requires_grad], lr=0.01, momentum=0.9, nesterov=True
    )
    trainer = their_trainer(main, meta, their_config(cls_dir, t_name, s_name), opt)
    trainer.scaler = AmpScalerStep() if fp16 else plain_step
    trainer.train_loader = [(x, y)] * steps

    def run(draw) -> None:
        meta.extra_path_list = [[1 if c == "S" else 0 for c in p.name] for p in draw]
        on_cpu = cuda_noop() if device == "cpu" else contextlib.nullcontext()
        with on_cpu, contextlib.redirect_stdout(io.StringIO()):  # their per-epoch report
            trainer.train_one_epoch(30)  # past the feature warm-up, as ours below
        sync(device)

    return run


def our_runner(pair, device: str, batch: int, steps: int, auto: bool):
    """``run(draw)``: ``steps`` of our FCFD step (benchmarks/step_time.py's, that draw)."""
    by_draw = {}
    names = [p.name for p in candidates(stages(pair), "bi")]

    def run(draw) -> None:
        key = tuple(p.name for p in draw)
        if key not in by_draw:
            idx = "+".join(str(names.index(k)) for k in key)
            by_draw[key] = make_step(*pair, f"fcfd draw {idx}" + " auto" * auto, device, batch)
        step = by_draw[key]
        for _ in range(steps):
            step()

    return run


def stages(pair) -> int:
    """The student's number of stages (FCFD's candidate paths depend on it)."""
    return models.create(pair[1], 100).num_stages


def peak_mb(run, draw, device: str) -> float | None:
    if device != "cuda":
        return None
    sync(device)
    torch.cuda.reset_peak_memory_stats()
    base = torch.cuda.memory_allocated()
    run(draw)
    return (torch.cuda.max_memory_allocated() - base) / 2**20


def compare(main, their_models, cls_dir, pair, device, batch, steps, repeats) -> dict:
    rec = runtime_record(torch.device(device), "auto", None)
    auto_differs = rec["precision"] != "fp32" or rec["channels_last"]
    sides = {
        "theirs": their_runner(main, their_models, pair, device, batch, steps, cls_dir),
        "ours fp32": our_runner(pair, device, batch, steps, auto=False),
    }
    if auto_differs:
        sides["ours auto"] = our_runner(pair, device, batch, steps, auto=True)
    draws = list(itertools.combinations(candidates(stages(pair), "bi"), 2))
    ms = {s: [] for s in sides}  # per draw: median ms per step
    mem = {s: [] for s in sides}
    for draw in draws:
        for run in sides.values():  # warm-up: allocator, cuDNN / oneDNN caches
            run(draw)
        times = {s: [] for s in sides}
        for _ in range(repeats):
            for s, run in sides.items():
                t0 = time.perf_counter()
                run(draw)
                times[s].append((time.perf_counter() - t0) / steps)
        for s, run in sides.items():
            ms[s].append(1000 * statistics.median(times[s]))
            m = peak_mb(run, draw, device)
            if m is not None:
                mem[s].append(m)
        label = "+".join(p.name for p in draw)
        print(
            f"{'-'.join(pair)} b{batch} {label}: "
            + ", ".join(f"{s} {v[-1]:.1f} ms" for s, v in ms.items()),
            flush=True,
        )
    out = {"pair": "-".join(pair), "batch": batch, "auto": rec, "draws": {}}
    for s in sides:
        step = statistics.mean(ms[s])
        out[s] = {
            "ms_per_step": step,
            "images_per_s": batch * 1000 / step,
            "ms_per_draw": ms[s],
            "peak_mb": max(mem[s]) if mem[s] else None,
        }
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--official", default=os.environ.get("FCFD_OFFICIAL"))
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--batches", type=int, nargs="+", default=None, help="CPU 64; CUDA 64 256")
    ap.add_argument("--steps", type=int, default=None, help="steps per timing (CPU 1, CUDA 20)")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--pairs", nargs="*", default=["-".join(p) for p in PAIRS])
    args = ap.parse_args()
    if not args.official:
        sys.exit(
            "versus_official: set FCFD_OFFICIAL (or --official) to a checkout of the authors' code"
        )
    cuda = args.device.startswith("cuda")
    if cuda and not torch.cuda.is_available():
        sys.exit("versus_official: --device cuda asked for, but CUDA is not available")
    warnings.filterwarnings("ignore", category=FutureWarning)  # their torch.cuda.amp.autocast
    if not cuda:
        torch.set_num_threads(args.threads)
    else:
        torch.backends.cudnn.benchmark = True  # both sides, as a training run would
    batches = args.batches or ([64, 256] if cuda else [64])
    steps = args.steps or (20 if cuda else 1)
    their_models, their_main, cls_dir = load_official(Path(args.official).expanduser())
    device = "cuda" if cuda else "cpu"
    rows, results = [], []
    for pair in (tuple(p.split("-")) for p in args.pairs):
        for b in batches:
            r = compare(their_main, their_models, cls_dir, pair, device, b, steps, args.repeats)
            results.append(r)
            theirs = r["theirs"]
            for s in ("ours fp32", "ours auto"):
                if s not in r:
                    continue
                ours = r[s]
                how = (
                    s
                    if s == "ours fp32"
                    else (
                        f"ours auto ({r['auto']['precision']}"
                        + ", channels_last" * r["auto"]["channels_last"]
                        + ")"
                    )
                )
                rows.append(
                    [
                        r["pair"],
                        b,
                        how,
                        f"{theirs['ms_per_step']:.1f}",
                        f"{ours['ms_per_step']:.1f}",
                        f"{ours['ms_per_step'] / theirs['ms_per_step']:.2f}x",
                        f"{ours['images_per_s'] / theirs['images_per_s']:.2f}x",
                        "-"
                        if theirs["peak_mb"] is None
                        else f"{theirs['peak_mb']:.0f} / {ours['peak_mb']:.0f}",
                    ]
                )
    info = machine()
    name = f"versus_official_{device}"
    write_json(name, {"machine": info, "steps": steps, "repeats": args.repeats, "results": results})
    theirs_how = "fp16 AMP (theirs)" if cuda else "fp32 (their code has no CPU precision option)"
    auto_note = (
        ""
        if any("ours auto" in r for r in results)
        else (
            " `--precision auto` resolves to fp32 contiguous on this CPU (no bf16 hardware), so the "
            "fp32 row is also what auto trains."
        )
    )
    md = (
        f"## FCFD step vs the authors' code, {device} (`benchmarks/versus_official.py`)\n\n"
        f"{info.get('gpu', info['cpu'])}, torch {info['torch']}"
        + ("" if cuda else f", {info['threads']} threads")
        + f". Their MetaModel step in {theirs_how}; expected step over FCFD's six path draws, "
        f"median of {args.repeats} repeats of {steps} step(s) per draw, sides alternating.{auto_note}\n\n"
        + table(
            [
                "pair",
                "batch",
                "ours",
                "theirs ms/step",
                "ours ms/step",
                "time ratio",
                "images/s ratio",
                "peak MB theirs / ours",
            ],
            rows,
        )
    )
    write_section(name, md)
    print(md)


if __name__ == "__main__":
    main()
