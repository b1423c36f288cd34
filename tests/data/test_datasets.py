"""Data: stratified subsets, CIFAR errors, loader determinism."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from fcfd_viz.data.datasets import DataConfig, build_datasets, stratified_subset
from fcfd_viz.data.loaders import batch_record, make_loaders, set_epoch
from fcfd_viz.errors import UserError


def test_stratified_subset_is_per_class_and_seeded():
    y = np.repeat(np.arange(10), 50)
    a, b, c = (
        stratified_subset(y, 0.1, 0),
        stratified_subset(y, 0.1, 0),
        stratified_subset(y, 0.1, 1),
    )
    assert a == b and a != c
    assert np.bincount(y[a], minlength=10).tolist() == [5] * 10
    assert len(stratified_subset(y, 0.001, 0)) == 10  # at least one image per class
    with pytest.raises(UserError):
        stratified_subset(y, 0.0, 0)


def test_digits_hard_uses_a_ten_percent_subset():
    train, test, info = build_datasets(DataConfig(dataset="digits-hard", subset_seed=3))
    assert info.num_classes == 10 and info.input_shape == (3, 16, 16)
    assert 135 <= len(train) <= 150 and len(test) == 360


def test_cifar_absent_gives_one_clear_error(tmp_path):
    with pytest.raises(UserError) as e:
        build_datasets(DataConfig(dataset="cifar100", data_dir=str(tmp_path)))
    msg = str(e.value)
    assert str(tmp_path) in msg and "--download" in msg and "--data-dir" in msg


def test_unknown_dataset_and_imagenet_without_dir():
    with pytest.raises(UserError, match="unknown dataset"):
        build_datasets(DataConfig(dataset="mnist"))
    with pytest.raises(UserError, match="--data-dir"):
        build_datasets(DataConfig(dataset="imagenet"))


def test_imagenet_folder_loads_a_tiny_generated_tree(tmp_path):
    from PIL import Image

    for split in ("train", "val"):
        for cls in ("a", "b"):
            d = tmp_path / split / cls
            d.mkdir(parents=True)
            for i in range(2):
                Image.fromarray(np.full((40, 40, 3), 60 * i, dtype=np.uint8)).save(d / f"{i}.png")
    train, test, info = build_datasets(
        DataConfig(dataset="imagenet", data_dir=str(tmp_path), image_size=32)
    )
    assert info.num_classes == 2 and info.input_shape == (3, 32, 32)
    assert train[0][0].shape == (3, 32, 32) and len(test) == 4


def test_epoch_order_depends_only_on_seed_and_epoch():
    def order(epoch):
        loader, _, _ = make_loaders(
            DataConfig(dataset="digits-hard", subset_seed=0, batch_size=16), seed=5
        )
        set_epoch(loader, 5, epoch)
        torch.manual_seed(epoch)  # augmentation draws, as the trainer seeds them per epoch
        return torch.cat([y for _, y in loader])

    assert torch.equal(order(2), order(2))
    assert not torch.equal(order(1), order(2))


def test_batch_size_is_global_and_split_across_ranks():
    cfg = DataConfig(dataset="digits", subset=0.1, batch_size=16)
    one, _, _ = make_loaders(cfg, seed=0)
    ranks = [make_loaders(cfg, seed=0, rank=r, world_size=2)[0] for r in (0, 1)]
    # per optimizer step, the two ranks together load the batch one process loads alone
    assert one.batch_size == 16 and [loader.batch_size for loader in ranks] == [8, 8]
    assert len(ranks[0]) == len(ranks[1]) == len(one)  # as many steps per epoch
    assert batch_record(cfg, 2) == {"world_size": 2, "batch_size": 16, "rank_batch_size": 8}
    with pytest.raises(UserError, match=r"--batch-size 16 .* divisible by 3; use 15 or 18"):
        make_loaders(cfg, world_size=3)
