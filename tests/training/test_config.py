"""Training settings (fcfd_viz.training.config): validation and learning-rate schedules."""

from __future__ import annotations

import math

import pytest

from fcfd_viz.errors import UserError
from fcfd_viz.training.config import TrainConfig, lr_at


def test_lr_schedules():
    step = TrainConfig(epochs=6, lr=0.1, schedule="step", milestones=[2, 4], gamma=0.1)
    assert [lr_at(step, e) for e in range(6)] == pytest.approx([0.1, 0.1, 0.01, 0.01, 0.001, 0.001])
    cos = TrainConfig(epochs=4, lr=0.2, schedule="cosine")
    expected = [0.1 * (1 + math.cos(math.pi * e / 4)) for e in range(4)]
    assert [lr_at(cos, e) for e in range(4)] == pytest.approx(expected)
    assert lr_at(cos, 0) == pytest.approx(0.2) and lr_at(cos, 2) == pytest.approx(0.1)
    warm = TrainConfig(epochs=6, lr=0.4, schedule="cosine", warmup_epochs=2)
    lrs = [lr_at(warm, e) for e in range(6)]
    assert lrs[:3] == pytest.approx([0.2, 0.4, 0.4])  # linear warm-up, then cosine from the top
    assert lrs[3:] == pytest.approx([0.2 * (1 + math.cos(math.pi * k / 4)) for k in (1, 2, 3)])
    warm_step = TrainConfig(epochs=6, lr=0.1, schedule="step", milestones=[4], warmup_epochs=4)
    assert [lr_at(warm_step, e) for e in range(6)] == pytest.approx(
        [0.025, 0.05, 0.075, 0.1, 0.01, 0.01]
    )
    # within the warm-up the lr ramps per step: `done` is the fraction of the epoch's steps
    assert lr_at(warm, 0, 0.5) == pytest.approx(0.1) and lr_at(warm, 1, 0.25) == pytest.approx(0.25)
    one = TrainConfig(epochs=3, lr=0.2, schedule="cosine", warmup_epochs=1)
    assert [lr_at(one, 0, k / 4) for k in (1, 2, 3, 4)] == pytest.approx([0.05, 0.1, 0.15, 0.2])
    const = TrainConfig(epochs=3, lr=0.3, schedule="constant")
    assert [lr_at(const, e) for e in range(3)] == pytest.approx([0.3] * 3)


@pytest.mark.parametrize(
    "bad, match",
    [
        ({"epochs": 0}, "epochs"),
        ({"epochs": -2}, "epochs"),
        ({"lr": 0.0}, "lr"),
        ({"schedule": "linear"}, "schedule"),
        ({"amp": "fp8"}, "amp"),
    ],
)
def test_train_config_validation(bad: dict, match: str):
    with pytest.raises(UserError, match=match):
        TrainConfig(**bad).validate()


@pytest.mark.parametrize(
    "bad, match",
    [
        ({"lr": float("nan")}, "--lr"),
        ({"lr": float("inf")}, "--lr"),
        ({"weight_decay": -1.0}, "--weight-decay"),
        ({"epochs": 2.5}, "epochs"),
        ({"milestones": [1, "x"]}, "--milestones"),
    ],
)
def test_train_config_rejects_nan_and_junk(bad: dict, match: str):
    with pytest.raises(UserError, match=match):
        TrainConfig(**bad).validate()
