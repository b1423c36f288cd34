"""Loaders over :mod:`fcfd_viz.data.datasets`: the global batch split across torchrun ranks,
and each epoch's data a function of (seed, epoch).
"""

from __future__ import annotations

import os
from functools import partial
from typing import Any

import torch
from torch.utils.data import DataLoader, Dataset, DistributedSampler, Subset

from fcfd_viz.data.datasets import EMBEDDED, DataConfig, DataInfo, build_datasets
from fcfd_viz.errors import UserError


def rank_batch_size(batch_size: int, world_size: int) -> int:
    """Each rank's share of the global ``batch_size``, or a one-line UserError when the
    ranks cannot share it evenly."""
    if batch_size % world_size:
        lower = batch_size - batch_size % world_size
        fits = f"{lower} or {lower + world_size}" if lower else str(world_size)
        raise UserError(
            f"--batch-size {batch_size} is the global batch, split across the {world_size} "
            f"ranks of this torchrun job, so it must be divisible by {world_size}; use {fits}"
        )
    return batch_size // world_size


def batch_record(cfg: DataConfig, world_size: int) -> dict:
    """What config.json records of how a run's batch was split (``distributed``)."""
    per_rank = rank_batch_size(cfg.batch_size, world_size)
    return {"world_size": world_size, "batch_size": cfg.batch_size, "rank_batch_size": per_rank}


def make_loaders(
    cfg: DataConfig, seed: int = 0, rank: int = 0, world_size: int = 1, device: str = "cpu"
) -> tuple[DataLoader, DataLoader, DataInfo]:
    """Train and test loaders; the train loader is sharded over ``world_size`` ranks, each
    loading its share of the global batch ``cfg.batch_size`` (a UserError unless it divides).

    Shuffling is driven by a generator the trainer reseeds at every epoch (see
    :func:`set_epoch`), so an epoch's order depends only on (seed, epoch): a resumed run sees
    the same batches as an uninterrupted one.
    """
    cfg.validate()
    per_rank = rank_batch_size(cfg.batch_size, world_size)
    train, test, info = build_datasets(cfg)
    in_memory = cfg.dataset in EMBEDDED
    workers = (
        cfg.num_workers
        if cfg.num_workers is not None
        else (0 if in_memory else min(4, os.cpu_count() or 1))
    )
    pin = device.startswith("cuda")
    # workers hold copies of the dataset: one that changes every epoch (digit-pairs' fresh
    # canvases) needs them started again each epoch, after set_epoch
    changes = getattr(base_dataset(train), "fresh", False)
    loader = partial(
        DataLoader,
        num_workers=workers,
        pin_memory=pin,
        persistent_workers=workers > 0 and not changes,
    )
    if world_size > 1:
        sampler: DistributedSampler[Any] = DistributedSampler(
            train, num_replicas=world_size, rank=rank, shuffle=True, seed=seed
        )
        train_loader = loader(train, batch_size=per_rank, sampler=sampler, drop_last=False)
    else:
        gen = torch.Generator().manual_seed(seed)
        train_loader = loader(train, batch_size=cfg.batch_size, shuffle=True, generator=gen)
    test_loader = loader(test, batch_size=max(cfg.batch_size, 256), shuffle=False)
    return train_loader, test_loader, info


def base_dataset(data: Dataset) -> Dataset:
    """The dataset under any :class:`~torch.utils.data.Subset` wrappers."""
    while isinstance(data, Subset):
        data = data.dataset
    return data


def set_epoch(loader: DataLoader, seed: int, epoch: int) -> None:
    """Make the epoch's data a function of (seed, epoch): its shuffling, augmentation in the
    main process, and a dataset's own per-epoch canvases (digit-pairs' ``fresh``)."""
    data = base_dataset(loader.dataset)
    if hasattr(data, "set_epoch"):
        data.set_epoch(epoch)
    if isinstance(loader.sampler, DistributedSampler):
        loader.sampler.set_epoch(epoch)
    elif loader.generator is not None:
        loader.generator.manual_seed(seed * 100_003 + epoch)
