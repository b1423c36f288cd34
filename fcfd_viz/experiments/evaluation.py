"""``fcfd eval`` of a classifier checkpoint: top-1 and top-5 on its dataset's test split
(a detector's: :func:`fcfd_viz.detection.task.evaluate_checkpoint`)."""

from __future__ import annotations

from fcfd_viz.data.datasets import DataConfig, dataset_size
from fcfd_viz.data.loaders import make_loaders
from fcfd_viz.errors import UserError
from fcfd_viz.models.input_size import checkpoint_input_size
from fcfd_viz.runs.checkpoints import model_from_checkpoint
from fcfd_viz.training.runtime import evaluate, resolve_device


def evaluate_classifier(
    ckpt: dict,
    arch: str | None = None,
    dataset: str | None = None,
    data_dir: str | None = None,
    download: bool = False,
    size: int | None = None,
    batch_size: int | None = None,
    workers: int | None = None,
    device: str = "auto",
) -> dict:
    """ckpt, arch, dataset, top1, top5 (%), top5_k (min(5, classes)) and n (test images) of
    the checkpoint dict ``ckpt`` on its dataset's test split (or ``dataset``'s); ``arch``
    refuses a checkpoint of another architecture."""
    net = model_from_checkpoint(ckpt, expect_arch=arch)
    dataset = dataset or ckpt.get("dataset")
    if dataset is None:
        raise UserError("the checkpoint names no dataset; pass --dataset")
    cfg = DataConfig(
        dataset=dataset,
        data_dir=data_dir,
        download=bool(download),
        image_size=size or checkpoint_input_size(ckpt),
        batch_size=batch_size or 256,
        num_workers=workers,
    )
    _, test_loader, info = make_loaders(cfg)
    if info.num_classes != net.num_classes:
        raise UserError(
            f"checkpoint has {net.num_classes} classes but {dataset} has {info.num_classes}"
        )
    dev = resolve_device(device)
    acc = evaluate(net.to(dev), test_loader, dev)
    return {
        "ckpt": ckpt["path"],
        "arch": net.arch,
        "dataset": dataset,
        "top1": acc.top1,
        "top5": acc.top5,
        "top5_k": acc.k,  # min(5, classes): with 5 classes or fewer top-5 is 100 by definition
        "n": dataset_size(test_loader.dataset),
    }
