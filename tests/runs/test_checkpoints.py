"""Checkpoints (fcfd_viz.runs.checkpoints): what a run saves rebuilds the model; bad, foreign,
truncated and unsafe files are one-line errors."""

from __future__ import annotations

import argparse
from pathlib import Path

import pytest
import torch

from fcfd_viz.data.datasets import DataConfig
from fcfd_viz.errors import UserError
from fcfd_viz.experiments.experiment import ExperimentConfig, run_experiment
from fcfd_viz.runs.checkpoints import (
    CKPT_FORMAT,
    checkpoint_file,
    load_checkpoint,
    model_from_checkpoint,
    save_checkpoint,
)
from fcfd_viz.training.callbacks import Callback
from fcfd_viz.training.config import TrainConfig

pytestmark = pytest.mark.usefixtures("one_thread")


class Keep(Callback):
    """Keeps the trainer so a test can look at the in-memory model afterwards."""

    def on_train_end(self, trainer, summary) -> None:
        self.trainer = trainer


def one_epoch() -> ExperimentConfig:
    """resnet8 on 20% of digits at 16x16, one epoch."""
    return ExperimentConfig(
        method="ce",
        student="resnet8",
        data=DataConfig(dataset="digits", image_size=16, subset=0.2),
        train=TrainConfig(epochs=1, device="cpu", seed=3, lr=0.05),
    )


def test_checkpoints_rebuild_the_model(tmp_path: Path):
    keep = Keep()
    out = tmp_path / "run"
    run_experiment(one_epoch(), out, callbacks=[keep], progress=False)
    for name in ("last.pt", "best.pt"):
        raw = torch.load(out / name, weights_only=True)
        assert raw["format"] == CKPT_FORMAT
        assert raw["model"]["arch"] == "resnet8" and raw["model"]["num_classes"] == 10
        assert raw["input_shape"] == [3, 16, 16] and raw["dataset"] == "digits"
    assert "optimizer" in torch.load(out / "last.pt", weights_only=True)
    student = keep.trainer.distiller.student.eval()
    x = torch.randn(4, 3, 16, 16)
    net = model_from_checkpoint(out / "last.pt", expect_arch="resnet8")
    assert not net.training and net.arch == "resnet8" and net.num_classes == 10
    with torch.no_grad():
        assert torch.equal(net(x), student(x))
        # a run directory resolves to its best checkpoint (here the only epoch, so the same net)
        assert torch.equal(model_from_checkpoint(out)(x), student(x))
    with pytest.raises(UserError, match="resnet8, not a resnet20"):
        model_from_checkpoint(out / "last.pt", expect_arch="resnet20")


def test_bad_checkpoints_are_user_errors(tmp_path: Path):
    garbage = tmp_path / "garbage.pt"
    garbage.write_bytes(b"\x00not a checkpoint\xff" * 100)
    with pytest.raises(UserError, match="unreadable"):
        load_checkpoint(garbage)
    good = tmp_path / "good.pt"
    torch.manual_seed(0)
    from fcfd_viz import models

    net = models.create("resnet8", num_classes=10)
    save_checkpoint(good, {"model": net.spec(), "state_dict": net.state_dict()})
    assert load_checkpoint(good)["model"]["arch"] == "resnet8"
    truncated = tmp_path / "truncated.pt"
    truncated.write_bytes(good.read_bytes()[: good.stat().st_size // 2])
    with pytest.raises(UserError, match="unreadable"):
        load_checkpoint(truncated)
    foreign = tmp_path / "foreign.pt"
    torch.save({"state_dict": net.state_dict()}, foreign)
    with pytest.raises(UserError, match="not an fcfd-viz checkpoint"):
        load_checkpoint(foreign)
    unsafe = tmp_path / "unsafe.pt"  # loadable only with weights_only=False
    torch.save({"format": CKPT_FORMAT, "model": net.spec(), "obj": argparse.Namespace(a=1)}, unsafe)
    with pytest.raises(UserError, match="unreadable"):
        load_checkpoint(unsafe)
    with pytest.raises(UserError, match="not found"):
        load_checkpoint(tmp_path / "missing.pt")
    with pytest.raises(UserError, match="not found"):
        load_checkpoint(tmp_path)  # a directory without best.pt / last.pt
    wrong = tmp_path / "wrong.pt"
    other = models.create("resnet14", num_classes=10)
    save_checkpoint(wrong, {"model": net.spec(), "state_dict": other.state_dict()})
    with pytest.raises(UserError, match="does not fit a resnet8"):
        model_from_checkpoint(wrong)


def test_checkpoint_file_prefers_best_then_last(tmp_path):
    run = tmp_path / "run"
    run.mkdir()
    with pytest.raises(UserError, match="best.pt not found"):
        checkpoint_file(run)
    (run / "last.pt").write_bytes(b"x")
    assert checkpoint_file(run) == run / "last.pt"
    (run / "best.pt").write_bytes(b"x")
    assert checkpoint_file(run) == run / "best.pt"
    assert checkpoint_file(run / "last.pt") == run / "last.pt"  # a file names itself
    with pytest.raises(UserError, match="nope.pt not found"):
        checkpoint_file(tmp_path / "nope.pt")
    with pytest.raises(UserError, match="best.pt is unreadable"):  # load follows the same rule
        load_checkpoint(run)


def test_common_teacher_is_the_one_the_students_recorded():
    import pytest

    from fcfd_viz.errors import UserError
    from fcfd_viz.runs.provenance import common_teacher

    assert common_teacher([{"teacher": "runs/t"}, {"teacher": "runs/t"}]) == "runs/t"
    assert common_teacher([{"teacher": "runs/t"}], teacher="other") == "other"
    for ckpts in ([{"teacher": "a"}, {"teacher": "b"}], [{"teacher": "a"}, {}]):
        with pytest.raises(UserError, match="pass --teacher"):
            common_teacher(ckpts)
