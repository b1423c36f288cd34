"""Where and how a process runs: the device, the precision, the random seeds, its place in
a torchrun job, and a model's top-1 / top-5 on a loader under those settings.

The trainer, the pipeline, the CLI and the notebooks share these; none of them trains.
"""

from __future__ import annotations

import atexit
import os
import random
from contextlib import ExitStack, contextmanager, nullcontext
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
    try:
        dev = torch.device(name)
    except (RuntimeError, TypeError, ValueError):  # "Expected one of cpu, cuda, ..."
        raise UserError(
            f"--device {name!r} is not a device; use auto, cpu, cuda or cuda:N"
        ) from None
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise UserError("--device cuda asked for, but CUDA is not available; use --device cpu")
    if dev.type == "cuda" and dev.index is not None and dev.index >= torch.cuda.device_count():
        raise UserError(
            f"--device {name}: this machine has {torch.cuda.device_count()} CUDA device(s); "
            "use cuda:0 to cuda:N-1"
        )
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


# /proc/cpuinfo flags of a CPU that computes bf16 natively (AVX512-BF16 dot products, AMX
# tiles); elsewhere bf16 autocast is emulated and no faster than fp32
BF16_CPU_FLAGS = ("avx512_bf16", "amx_bf16")


def cpu_flags() -> frozenset[str]:
    """This machine's CPU feature flags from ``/proc/cpuinfo`` (empty where there is none);
    ``FCFD_CPU_FLAGS`` (space-separated), when set, stands in for them (``FCFD_CPU_FLAGS=``:
    a CPU without bf16, as the test suite runs everywhere)."""
    if "FCFD_CPU_FLAGS" in os.environ:
        return frozenset(os.environ["FCFD_CPU_FLAGS"].split())
    try:
        text = open("/proc/cpuinfo").read()
    except OSError:
        return frozenset()
    for line in text.splitlines():
        if line.startswith(("flags", "Features")):  # x86 / ARM
            return frozenset(line.split(":", 1)[1].split())
    return frozenset()


def cpu_has_fast_bf16(flags: frozenset[str] | set[str] | None = None) -> bool:
    """True where the CPU has bf16 hardware (``flags``: CPU feature flags, default this
    machine's :func:`cpu_flags`). A hardware fact, never a timing."""
    flags = cpu_flags() if flags is None else flags
    return any(f in flags for f in BF16_CPU_FLAGS)


def autocast_dtype(
    precision: str, device: torch.device, flags: frozenset[str] | set[str] | None = None
) -> torch.dtype | None:
    """The autocast dtype of ``TrainConfig.precision`` (``auto|fp32|bf16|fp16``; the old
    ``--amp`` values ``off`` = fp32) on ``device``; None for full precision.

    ``auto``: on CUDA bf16 where supported, else fp16 (with a GradScaler); on CPU bf16 where
    the CPU has bf16 hardware (:func:`cpu_has_fast_bf16` of ``flags``), else fp32.
    """
    if precision in ("fp32", "off"):
        return None
    if precision == "fp16":
        return torch.float16
    if precision == "bf16":
        return torch.bfloat16
    if device.type == "cuda":
        return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    if device.type == "cpu" and cpu_has_fast_bf16(flags):
        return torch.bfloat16
    return None


def precision_name(dtype: torch.dtype | None) -> str:
    """``fp32``, ``bf16`` or ``fp16``: the name of an :func:`autocast_dtype` result."""
    return {None: "fp32", torch.bfloat16: "bf16", torch.float16: "fp16"}[dtype]


# /proc/cpuinfo flag of the x86 CPUs on which fp32 channels_last training steps were
# measured faster than contiguous ones: 6-29% of a KD or FCFD step on a native AVX2 CPU,
# 2-15% with AVX2 emulated on an AVX-512 one (docs/benchmarks.md, "fp32 modes on ... AVX2 CPU")
CHANNELS_LAST_FP32_FLAGS = ("avx2",)


def uses_channels_last(
    setting: bool | None,
    amp_dtype: torch.dtype | None,
    device: torch.device,
    precision: str = "auto",
    flags: frozenset[str] | set[str] | None = None,
) -> bool:
    """Whether training runs channels_last: ``setting`` when given (``--channels-last``); by
    default on CUDA, on CPU with autocast (``amp_dtype`` bf16/fp16), and on an x86 CPU in
    fp32 when ``precision`` is ``auto`` (:data:`CHANNELS_LAST_FP32_FLAGS` in ``flags``,
    default this machine's :func:`cpu_flags`): a hardware fact, never a timing. ``--precision
    fp32`` stays contiguous: the exact fp32 path of old, whose numbers do not depend on the
    thread count (channels_last convolutions sum in a thread-dependent order on CPU)."""
    if setting is not None:
        return setting
    if device.type == "cuda" or amp_dtype is not None:
        return True
    if device.type != "cpu" or precision != "auto":
        return False
    flags = cpu_flags() if flags is None else flags
    return any(f in flags for f in CHANNELS_LAST_FP32_FLAGS)


# oneDNN's fp32 CPU 1x1 convolution with stride > 1 computes its weight gradient through a
# workspace that it overruns when a channels_last input has fewer channels than its block (8
# on AVX2, 16 on AVX-512): heap corruption or wrong gradients (oneDNN issue 6035, open; here
# resnet8_w025's 4-channel shortcut aborted the process on an AVX2 CPU, torch 2.14.1)
CHANNELS_LAST_MIN_SHORTCUT_CHANNELS = 16


def channels_last_hazard(model: torch.nn.Module) -> str | None:
    """The first convolution of ``model`` whose fp32 channels_last backward oneDNN gets
    wrong on CPU (1x1, stride > 1, fewer than 16 input channels), named; None: none."""
    for name, m in model.named_modules():
        if (
            isinstance(m, torch.nn.Conv2d)
            and m.kernel_size == (1, 1)
            and max(m.stride) > 1
            and m.in_channels < CHANNELS_LAST_MIN_SHORTCUT_CHANNELS
        ):
            return f"{name} (1x1, stride {max(m.stride)}, {m.in_channels} input channels)"
    return None


def runtime_record(
    device: torch.device,
    precision: str,
    channels_last: bool | None,
    model: torch.nn.Module | None = None,
) -> dict:
    """What a run's ``auto`` settings resolve to on ``device`` (config.json's ``runtime``):
    the autocast ``precision`` (fp32/bf16/fp16), the ``precision_setting`` asked for and
    ``channels_last``. An fp32 CPU run of a ``model`` with a :func:`channels_last_hazard`
    stays contiguous under ``auto``; asked for with ``--channels-last``, a UserError."""
    dtype = autocast_dtype(precision, device)
    cl = uses_channels_last(channels_last, dtype, device, precision)
    fp32_cpu = cl and device.type == "cpu" and dtype is None
    bad = channels_last_hazard(model) if fp32_cpu and model is not None else None
    if bad and channels_last:
        raise UserError(
            f"--channels-last: the model's {bad} has an fp32 channels_last backward that "
            "corrupts memory on CPU (oneDNN issue 6035); run without --channels-last"
        )
    return {
        "device": str(device),
        "precision": precision_name(dtype),
        "precision_setting": precision,
        "channels_last": cl and not bad,
    }


def runtime_line(record: dict) -> str:
    """The one line a run starts with, from the trainer's ``runtime`` record (config.json)."""
    how = "fp32" if record["precision"] == "fp32" else f"{record['precision']} autocast"
    return (
        f"training on {record['device']}: {how} (--precision {record['precision_setting']}), "
        f"channels_last {'on' if record['channels_last'] else 'off'}"
    )


@contextmanager
def full_precision():
    """No autocast inside, whatever encloses it (probes and gap measurements: their small
    KL divergences and finite differences need fp32)."""
    with ExitStack() as stack:
        stack.enter_context(torch.autocast("cpu", enabled=False))
        if torch.cuda.is_available():
            stack.enter_context(torch.autocast("cuda", enabled=False))
        yield


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
    top1, top5, total = 0.0, 0.0, 0
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
