"""Where and how a process runs: the device, the precision, the random seeds, its place in
a torchrun job, and a model's top-1 / top-5 on a loader under those settings.

The trainer, the pipeline, the CLI and the notebooks share these; none of them trains.
"""

from __future__ import annotations

import atexit
import os
import random
from contextlib import nullcontext
from dataclasses import dataclass

import numpy as np
import torch
import torch.distributed as dist
from torch import Tensor

from fcfd_viz.errors import UserError


def resolve_device(name: str) -> torch.device:
    """``"auto"`` (CUDA when available, else CPU), ``"cpu"``, ``"cuda"``, ``"cuda:N"``; a
    :class:`UserError` when CUDA is asked for and absent."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    dev = torch.device(name)
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise UserError("--device cuda asked for, but CUDA is not available; use --device cpu")
    return dev


def seed_everything(seed: int) -> None:
    """Seed Python's, NumPy's and torch's random number generators."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def dist_info() -> tuple[int, int, int]:
    """(rank, world_size, local_rank) from torchrun's environment; (0, 1, 0) otherwise."""
    return (
        int(os.environ.get("RANK", 0)),
        int(os.environ.get("WORLD_SIZE", 1)),
        int(os.environ.get("LOCAL_RANK", 0)),
    )


def join_process_group(device: torch.device) -> None:
    """Start torchrun's process group (NCCL on CUDA, else gloo) unless one is running."""
    if dist.is_initialized():
        return
    dist.init_process_group("nccl" if device.type == "cuda" else "gloo")
    # later runs in this process reuse the group; it is left at exit, while the interpreter is
    # whole: a rank whose gloo threads are torn down during static destruction aborts
    # ("terminate called without an active exception")
    atexit.register(_leave_process_group)


def _leave_process_group() -> None:
    if dist.is_initialized():
        dist.destroy_process_group()


def autocast_dtype(amp: str, device: torch.device) -> torch.dtype | None:
    """The autocast dtype of ``TrainConfig.amp`` (``auto|bf16|fp16|off``) on ``device``; None
    for full precision (``off``, or ``auto`` off CUDA). ``auto`` is bf16 where supported."""
    if amp == "off" or (amp == "auto" and device.type != "cuda"):
        return None
    if amp == "fp16":
        return torch.float16
    if amp == "auto" and not torch.cuda.is_bf16_supported():
        return torch.float16
    return torch.bfloat16


TOP_K = 5  # the second accuracy every run reports beside top-1


@dataclass(frozen=True)
class Accuracy:
    """Test accuracy (%) of a model: ``top1`` and ``top5``. ``top5`` counts a hit when the label
    is among the ``k = min(5, classes)`` highest logits, so with 5 classes or fewer it is 100
    by definition (``k`` says which k was used)."""

    top1: float
    top5: float
    k: int
    n: int  # images seen


def hits(logits: Tensor, y: Tensor, k: int = TOP_K) -> tuple[Tensor, Tensor]:
    """Right answers in a batch, as 0-dim tensors: (top-1, top-``min(k, classes)``).

    ``logits`` (B, C), ``y`` (B,). Top-1 is the argmax, as everywhere else in fcfd-viz.
    """
    top = logits.topk(min(k, logits.shape[1]), dim=1).indices  # (B, k)
    return (logits.argmax(1) == y).sum(), (top == y[:, None]).any(1).sum()


@torch.no_grad()
def evaluate(model: torch.nn.Module, loader, device: torch.device, amp_dtype=None) -> Accuracy:
    """Top-1 and top-5 accuracy of ``model`` on ``loader`` in eval mode (its mode is restored)."""
    was = model.training
    model.eval()
    top1 = top5 = total = 0
    k = TOP_K
    ctx = torch.autocast(device.type, dtype=amp_dtype) if amp_dtype else nullcontext()
    for x, y in loader:
        x, y = x.to(device, non_blocking=True), y.to(device, non_blocking=True)
        with ctx:
            logits = model(x)  # (B, C)
        one, five = hits(logits, y)
        top1, top5, total = top1 + one.item(), top5 + five.item(), total + len(y)
        k = min(TOP_K, logits.shape[1])
    model.train(was)
    n = max(1, total)
    return Accuracy(100.0 * top1 / n, 100.0 * top5 / n, k, total)
