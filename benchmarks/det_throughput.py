"""Detection training throughput (images/s) and peak memory of the paper's COCO pairs.

One FCFD (and KD) training step of each pair (``frcnn_r101 -> frcnn_r18``, ``-> frcnn_r50``,
``frcnn_r50 -> frcnn_mbv2``: Faster R-CNN + FPN, 256 channels) through the shared
:class:`~fcfd_viz.training.trainer.Trainer` with the detection task, on random COCO-sized images (the
detectors' transform resizes them to 800 px on the short side, as for COCO) carrying random
boxes: the cost of the method, not of data loading. On CUDA with ``--precision auto``
(bf16 autocast); the authors train these in fp16 AMP at batch 8. Run by
``benchmarks/gpu_check.sh``; on a CPU use ``--smoke`` (one small step per pair: it checks the
script, its numbers mean nothing).

    python benchmarks/det_throughput.py --device cuda [--batch 8] [--steps 20]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from benchmarks.common import machine, table, write_json, write_section  # noqa: E402
from benchmarks.gpu_throughput import _Loader, time_steps  # noqa: E402
from fcfd_viz.detection import methods, models  # noqa: E402
from fcfd_viz.detection.task import DETECTION  # noqa: E402
from fcfd_viz.training.config import TrainConfig  # noqa: E402
from fcfd_viz.training.trainer import Trainer  # noqa: E402

COCO_CLASSES = 81  # 80 categories + background


def batch_of(n: int, height: int, width: int, boxes: int, gen: torch.Generator):
    """``n`` random images (3, height, width) in [0, 1] with ``boxes`` random boxes each."""
    images = [torch.rand(3, height, width, generator=gen) for _ in range(n)]
    targets = []
    for _ in range(n):
        xy = torch.rand(boxes, 2, generator=gen) * torch.tensor([width * 0.7, height * 0.7])
        wh = (0.1 + 0.2 * torch.rand(boxes, 2, generator=gen)) * torch.tensor([width, height])
        labels = torch.randint(1, COCO_CLASSES, (boxes,), generator=gen)
        targets.append({"boxes": torch.cat([xy, xy + wh], dim=1), "labels": labels})
    return images, targets


def measure(pair: str, method: str, args) -> dict:
    torch.manual_seed(0)
    t_arch, s_arch = models.PAIRS[pair]
    teacher = models.create(t_arch, COCO_CLASSES)
    student = models.create(s_arch, COCO_CLASSES)
    values = {"roi_l2_weight": 1.0} if pair == "r101-r18" else {}  # the paper: R18 only
    d = methods.create(method, student, teacher, **values)
    cfg = TrainConfig(epochs=1, device=args.device, precision=args.precision)
    trainer = Trainer(d, _Loader(), _Loader(), cfg, progress=False, task=DETECTION)
    x, y = batch_of(args.batch, args.height, args.width, 5, torch.Generator().manual_seed(0))
    return time_steps(trainer, x, y, args.batch, args.steps, args.warmup, args.device)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--steps", type=int, default=20)
    ap.add_argument("--warmup", type=int, default=3)
    ap.add_argument("--precision", default="auto", choices=["auto", "fp32", "bf16"])
    ap.add_argument("--height", type=int, default=480, help="raw image size (COCO-like)")
    ap.add_argument("--width", type=int, default=640)
    ap.add_argument("--pairs", nargs="+", default=list(models.PAIRS), choices=list(models.PAIRS))
    ap.add_argument("--methods", nargs="+", default=["kd", "fcfd"])
    ap.add_argument("--smoke", action="store_true", help="1 image, 1 step: checks the script")
    args = ap.parse_args()
    if args.smoke:
        args.batch, args.steps, args.warmup = 1, 1, 0
    res = {"machine": machine(), "device": args.device, "batch": args.batch, "pairs": {}}
    for pair in args.pairs:
        for m in args.methods:
            r = measure(pair, m, args)
            res["pairs"].setdefault(pair, {})[m] = r
            print(pair, m, r, flush=True)
    if args.smoke:
        return  # a check of the script: nothing written
    name = args.device.split(":")[0]
    write_json(f"det_throughput_{name}", res)
    card = res["machine"].get("gpu", res["machine"]["cpu"])
    rows = [
        [f"{'/'.join(models.PAIRS[p])}", m, round(r["images_per_s"], 1), round(r["ms_per_step"])]
        + [round(r["peak_mb"]) if r["peak_mb"] == r["peak_mb"] else "-"]
        for p, per in res["pairs"].items()
        for m, r in per.items()
    ]
    amp = next(iter(next(iter(res["pairs"].values())).values()))["amp"]
    write_section(
        f"det_throughput_{name}",
        f"## Detection throughput on {card} (`benchmarks/det_throughput.py`)\n\n"
        f"The paper's COCO pairs, random {args.height}x{args.width} images resized to 800 px, "
        f"batch {args.batch}, AMP {amp}, median of {args.steps} steps.\n\n"
        + table(["teacher/student", "method", "images/s", "ms / step", "peak MB"], rows),
    )


if __name__ == "__main__":
    main()
