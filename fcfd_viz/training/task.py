"""What the shared :class:`~fcfd_viz.training.trainer.Trainer` needs to know about a kind of problem.

A :class:`Task` says how a batch moves to the device and is counted, what a training step
adds to the epoch's statistics, how the student is evaluated (the metrics of the epoch's
record), which results a checkpoint and the summary carry as "best", and which metric
decides ``best.pt``. :data:`CLASSIFICATION` (top-1 / top-5) is the default and writes what
runs always wrote; :class:`~fcfd_viz.detection.task.Detection` (mAP) is the other.
"""

from __future__ import annotations

from typing import Any, ClassVar

import torch
from torch import Tensor


class Task:
    """The trainer's seam; every method has the classification behaviour's shape.

    ``best`` is a dict of the best-so-far results a checkpoint stores and the summary
    reports (classification: ``best_top1``, ``best_top5``; detection: ``best_map``).
    """

    name: ClassVar[str] = "task"
    # every training batch has one shape (so cuDNN may time its algorithms once and keep the
    # fastest: torch.backends.cudnn.benchmark); detection's resized images vary
    fixed_input_shape: ClassVar[bool] = True

    def to_device(self, x: Any, y: Any, device: torch.device, channels_last: bool):
        """The batch ``(x, y)`` on ``device`` (images channels_last when asked)."""
        raise NotImplementedError

    def count(self, y: Any) -> int:
        """Images in a batch: what per-image loss averages weigh by."""
        return len(y)

    def step_stats(self, output: Any, y: Any) -> dict[str, Tensor]:
        """Sums a training step adds to the epoch's statistics (keys start with ``_``)."""
        return {}

    def train_record(self, totals: dict[str, float], n: float) -> dict[str, float]:
        """The epoch record's training results from the summed ``totals`` (popped) of
        ``n`` images."""
        return {}

    def evaluate(self, student, loader, device, amp_dtype) -> dict[str, float]:
        """The epoch record's test results of ``student`` on ``loader``."""
        raise NotImplementedError

    def no_eval(self) -> dict[str, float]:
        """The test results a rank that does not evaluate records (all zero)."""
        raise NotImplementedError

    def initial_best(self) -> dict[str, float | None]:
        raise NotImplementedError

    def best_from(self, ckpt: dict) -> dict[str, float | None]:
        """The bests a ``last.pt`` checkpoint stored (for a resume)."""
        raise NotImplementedError

    def track(self, best: dict, record: dict) -> None:
        """Update every rank's running bests from the epoch ``record`` (all but the one that
        decides ``best.pt``)."""

    def improved(self, best: dict, record: dict) -> bool:
        """Whether ``record`` beats the best so far on the deciding metric (``best`` updated)."""
        raise NotImplementedError

    def summary(self, last: dict, best: dict, student) -> dict:
        """summary.json's results (last and best epoch) and what it says of the student."""
        raise NotImplementedError


class Classification(Task):
    """Top-1 / top-5: ``train_top1``, ``test_top1`` ... in records, best by test top-1."""

    name = "classification"

    def to_device(self, x: Tensor, y: Tensor, device, channels_last: bool):
        x, y = x.to(device, non_blocking=True), y.to(device, non_blocking=True)
        if channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        return x, y

    def step_stats(self, output: Tensor, y: Tensor) -> dict[str, Tensor]:
        from fcfd_viz.training.runtime import hits

        correct, correct5 = hits(output.detach(), y)
        return {"_correct": correct, "_correct5": correct5}

    def train_record(self, totals: dict[str, float], n: float) -> dict[str, float]:
        correct, correct5 = totals.pop("_correct"), totals.pop("_correct5")
        return {"train_top1": 100.0 * correct / n, "train_top5": 100.0 * correct5 / n}

    def evaluate(self, student, loader, device, amp_dtype) -> dict[str, float]:
        from fcfd_viz.training.runtime import evaluate

        acc = evaluate(student, loader, device, amp_dtype)
        return {"test_top1": acc.top1, "test_top5": acc.top5}

    def no_eval(self) -> dict[str, float]:
        return {"test_top1": 0.0, "test_top5": 0.0}

    def initial_best(self) -> dict[str, float | None]:
        return {"best_top1": 0.0, "best_top5": None}  # best_top5 None: before the first epoch

    def best_from(self, ckpt: dict) -> dict[str, float | None]:
        # best_top5: None in checkpoints from before top-5
        return {"best_top1": float(ckpt["best_top1"]), "best_top5": ckpt.get("best_top5")}

    def track(self, best: dict, record: dict) -> None:
        best["best_top5"] = max(record["test_top5"], best["best_top5"] or 0.0)

    def improved(self, best: dict, record: dict) -> bool:
        if record["test_top1"] > best["best_top1"]:
            best["best_top1"] = record["test_top1"]
            return True
        return False

    def summary(self, last: dict, best: dict, student) -> dict:
        return {
            "top1": last.get("test_top1"),
            "best_top1": best["best_top1"],
            "top5": last.get("test_top5"),
            "best_top5": best["best_top5"],
        }


CLASSIFICATION = Classification()
