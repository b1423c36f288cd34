"""COCO-style mAP of a detector (torchmetrics' ``MeanAveragePrecision``, pycocotools backend),
reported in percent like top-1: ``map`` (AP at IoU .50:.95), ``map_50``, ``map_75``."""

from __future__ import annotations

from contextlib import nullcontext

import torch
from torch import Tensor

KEYS = ("map", "map_50", "map_75")


def mean_ap(preds: list[dict[str, Tensor]], targets: list[dict[str, Tensor]]) -> dict[str, float]:
    """mAP in percent of ``preds`` (``boxes`` xyxy, ``scores``, ``labels`` per image) against
    ``targets`` (``boxes``, ``labels``). A class never predicted nor present counts nowhere."""
    metric = _metric()
    metric.update(preds, targets)
    return _percent(metric.compute())


def _metric():
    from torchmetrics.detection import MeanAveragePrecision

    # the metric sees the whole test set in this process (under DDP only rank 0 evaluates), so
    # it must not all-gather its state from ranks that never call compute()
    return MeanAveragePrecision(box_format="xyxy", iou_type="bbox", sync_on_compute=False)


def _percent(result: dict) -> dict[str, float]:
    # torchmetrics says -1 where no ground truth exists at all; that is 0 found here
    return {k: max(0.0, 100.0 * float(result[k])) for k in KEYS}


@torch.no_grad()
def evaluate_detector(model, loader, device: torch.device, amp_dtype=None) -> dict[str, float]:
    """``map``, ``map_50``, ``map_75`` (%) of ``model`` (a torchvision detector) on ``loader``
    of ``(images, targets)`` batches, in eval mode (its mode is restored)."""
    was = model.training
    model.eval()
    metric = _metric()
    ctx = torch.autocast(device.type, dtype=amp_dtype) if amp_dtype else nullcontext()
    for images, targets in loader:
        with ctx:
            out = model([im.to(device) for im in images])
        preds = [
            {k: v.detach().float().cpu() if k != "labels" else v.cpu() for k, v in o.items()}
            for o in out
        ]
        metric.update(preds, [{k: v.cpu() for k, v in t.items()} for t in targets])
    model.train(was)
    return _percent(metric.compute())
