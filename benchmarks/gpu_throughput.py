"""Training throughput (images/s) and peak memory of ce / kd / fcfd on one device.

Runs the library's own training step (Distiller.forward_train under the Trainer's AMP and
memory-format settings) on random CIFAR-sized batches, resnet32x4 -> resnet8x4 by default.
On CUDA: bf16 autocast + channels_last, optionally torch.compile. Writes
benchmarks/results/gpu_throughput.json and a docs/benchmarks.md section naming the card.

    python benchmarks/gpu_throughput.py --device cuda [--batch 256] [--steps 50] [--compile]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from benchmarks.common import machine, table, write_json, write_section  # noqa: E402
from fcfd_viz import distill, models  # noqa: E402
from fcfd_viz.training.config import TrainConfig  # noqa: E402
from fcfd_viz.training.trainer import Trainer  # noqa: E402


class _Loader(list):
    """A fixed list of batches standing in for a DataLoader (no data loading in the timing)."""

    sampler = None
    generator = None


def measure(method: str, args, device: str) -> dict:
    torch.manual_seed(0)
    t, s = models.create(args.teacher, 100), models.create(args.student, 100)
    d = distill.create(method, s, t if method != "ce" else None, input_shape=(3, 32, 32))
    x = torch.randn(args.batch, 3, 32, 32)
    y = torch.randint(0, 100, (args.batch,))
    cfg = TrainConfig(
        epochs=1,
        device=device,
        precision="auto" if device.startswith("cuda") else "fp32",
        compile=args.compile,
    )
    trainer = Trainer(d, _Loader(), _Loader(), cfg, progress=False)
    trainer.distiller.start_epoch(20, 240)  # past FCFD's warm-up: every term at full weight
    return time_steps(trainer, x, y, args.batch, args.steps, args.warmup, device)


def time_steps(trainer: Trainer, x, y, batch: int, steps: int, warmup: int, device: str) -> dict:
    """Median training step of ``trainer`` on the fixed batch ``(x, y)`` after ``warmup``
    steps: ms, images/s, peak CUDA memory (MB; NaN elsewhere), AMP dtype, channels_last."""
    trainer.model.train()
    for _ in range(warmup):
        trainer._step(x, y)
    sync = torch.cuda.synchronize if device.startswith("cuda") else (lambda: None)
    if device.startswith("cuda"):
        torch.cuda.reset_peak_memory_stats()
    times = []
    for _ in range(steps):
        sync()
        t0 = time.perf_counter()
        trainer._step(x, y)
        sync()
        times.append(time.perf_counter() - t0)
    med = statistics.median(times)
    peak = torch.cuda.max_memory_allocated() / 2**20 if device.startswith("cuda") else float("nan")
    return {
        "ms_per_step": 1000 * med,
        "images_per_s": batch / med,
        "peak_mb": peak,
        "amp": str(trainer.amp_dtype),
        "channels_last": trainer.channels_last,
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--teacher", default="resnet32x4")
    ap.add_argument("--student", default="resnet8x4")
    ap.add_argument("--batch", type=int, default=256)
    ap.add_argument("--steps", type=int, default=50)
    ap.add_argument("--warmup", type=int, default=10)
    ap.add_argument("--compile", action="store_true")
    ap.add_argument("--methods", nargs="+", default=["ce", "kd", "fcfd"])
    args = ap.parse_args()
    res = {
        "machine": machine(),
        "device": args.device,
        "batch": args.batch,
        "compile": args.compile,
        "pair": f"{args.student} <- {args.teacher}",
        "methods": {},
    }
    for m in args.methods:
        res["methods"][m] = measure(m, args, args.device)
        print(m, res["methods"][m], flush=True)
    name = args.device.split(":")[0] + ("_compile" if args.compile else "")
    write_json(f"gpu_throughput_{name}", res)
    card = res["machine"].get("gpu", res["machine"]["cpu"])
    rows = [
        [
            m,
            round(r["images_per_s"]),
            round(r["ms_per_step"], 1),
            round(r["peak_mb"]) if r["peak_mb"] == r["peak_mb"] else "-",
        ]
        for m, r in res["methods"].items()
    ]
    write_section(
        f"throughput_{name}",
        f"## Throughput on {card} (`benchmarks/gpu_throughput.py`)\n\n{res['pair']}, batch {args.batch}, "
        f"AMP {next(iter(res['methods'].values()))['amp']}, compile={args.compile}, median of {args.steps} steps.\n\n"
        + table(["method", "images/s", "ms / step", "peak MB"], rows),
    )


if __name__ == "__main__":
    main()
