"""Where a process runs (fcfd_viz.training.runtime): device names, seeding, torchrun's environment."""

from __future__ import annotations

import random

import numpy as np
import pytest
import torch

from fcfd_viz.errors import UserError
from fcfd_viz.training.runtime import (
    autocast_dtype,
    dist_info,
    evaluate,
    hits,
    resolve_device,
    seed_everything,
)


def test_resolve_device():
    assert resolve_device("cpu") == torch.device("cpu")
    assert resolve_device("auto").type == ("cuda" if torch.cuda.is_available() else "cpu")
    if not torch.cuda.is_available():
        with pytest.raises(UserError, match="--device cpu"):
            resolve_device("cuda")


def test_seed_everything_seeds_all_three_generators():
    def draw():
        return random.random(), float(np.random.rand()), float(torch.rand(()))

    seed_everything(7)
    a = draw()
    seed_everything(7)
    assert draw() == a
    seed_everything(8)
    assert draw() != a


def test_dist_info_reads_torchrun_environment(monkeypatch):
    for k in ("RANK", "WORLD_SIZE", "LOCAL_RANK"):
        monkeypatch.delenv(k, raising=False)
    assert dist_info() == (0, 1, 0)
    monkeypatch.setenv("RANK", "3")
    monkeypatch.setenv("WORLD_SIZE", "4")
    monkeypatch.setenv("LOCAL_RANK", "1")
    assert dist_info() == (3, 4, 1)


def test_autocast_dtype():
    cpu = torch.device("cpu")
    assert autocast_dtype("auto", cpu) is None  # a CPU without bf16 (conftest): fp32
    assert autocast_dtype("off", cpu) is None
    assert autocast_dtype("fp16", cpu) == torch.float16
    assert autocast_dtype("bf16", cpu) == torch.bfloat16


def test_evaluate_counts_top1_in_eval_mode_and_restores_the_mode():
    # a "model" that answers the class of its first input feature, with dropout that would
    # scramble it in train mode: 3 of 4 answers right means 75%, only in eval mode
    model = torch.nn.Sequential(torch.nn.Dropout(p=0.999), torch.nn.Identity())
    x = torch.tensor([[5.0, 0.0], [0.0, 5.0], [5.0, 0.0], [0.0, 5.0]])
    y = torch.tensor([0, 1, 0, 0])
    model.train()
    loader = [(x[:2], y[:2]), (x[2:], y[2:])]
    assert evaluate(model, loader, torch.device("cpu")).top1 == 75.0
    assert model.training


def test_top5_counts_the_label_among_the_five_highest_logits():
    # 7 classes; logits = -class index, so the ranking is 0, 1, 2, ...: labels 0..4 are in
    # the top 5, labels 5 and 6 are not; only label 0 is the argmax
    logits = -torch.arange(7.0).expand(7, 7)  # (7 images, 7 classes)
    y = torch.arange(7)
    one, five = hits(logits, y)
    assert (int(one), int(five)) == (1, 5)
    acc = evaluate(torch.nn.Identity(), [(logits, y)], torch.device("cpu"))
    assert (acc.top1, acc.top5, acc.k, acc.n) == (100 / 7, 500 / 7, 5, 7)


def test_top5_with_fewer_than_five_classes_is_100_by_definition():
    logits = torch.tensor([[0.0, 1.0, 2.0], [2.0, 1.0, 0.0]])  # 3 classes
    acc = evaluate(torch.nn.Identity(), [(logits, torch.tensor([0, 2]))], torch.device("cpu"))
    assert (acc.top1, acc.top5, acc.k) == (0.0, 100.0, 3)
