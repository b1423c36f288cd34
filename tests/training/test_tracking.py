"""TensorBoard event files of every run (RUN/tb), read back with TensorBoard's own reader, and
the --wandb error when wandb is not installed."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from fcfd_viz.cli import main
from fcfd_viz.data.datasets import DataConfig
from fcfd_viz.errors import UserError
from fcfd_viz.experiments.experiment import ExperimentConfig, run_experiment
from fcfd_viz.runs.layout import Run
from fcfd_viz.training.callbacks import Callback
from fcfd_viz.training.config import TrainConfig
from fcfd_viz.training.tracking import scalars

pytestmark = pytest.mark.usefixtures("one_thread")


def tiny(epochs: int = 2) -> ExperimentConfig:
    """resnet8 on 10% of digits at 16x16: 3 steps an epoch."""
    return ExperimentConfig(
        method="ce",
        student="resnet8",
        data=DataConfig(dataset="digits", image_size=16, subset=0.1),
        train=TrainConfig(epochs=epochs, device="cpu", seed=0),
    )


def events(run: Path) -> dict[str, list[tuple[int, float]]]:
    """Tag -> (step, value) of every scalar event in ``run/tb``, duplicates included."""
    acc = EventAccumulator(str(run / "tb"), size_guidance={"scalars": 0})
    acc.Reload()
    return {t: [(e.step, e.value) for e in acc.Scalars(t)] for t in acc.Tags()["scalars"]}


def assert_events_are_the_metrics(run: Path) -> None:
    want: dict[str, list[tuple[int, float]]] = {}
    for rec in Run(run).metrics():
        for tag, value in scalars(rec).items():
            want.setdefault(tag, []).append((rec["epoch"], value))
    got = events(run)
    assert set(got) == set(want)
    for tag, points in want.items():  # each epoch once; event values are float32
        assert [s for s, _ in got[tag]] == [s for s, _ in points], tag
        assert [v for _, v in got[tag]] == pytest.approx([v for _, v in points], rel=1e-6), tag


def test_every_number_of_every_epoch_is_a_scalar(tmp_path):
    run_experiment(tiny(), tmp_path / "run", progress=False)
    tags = set(events(tmp_path / "run"))
    assert {"loss", "losses/ce", "lr", "train_top1", "test_top1", "seconds"} <= tags
    assert not tags & {"epoch", "steps"}
    assert_events_are_the_metrics(tmp_path / "run")
    rec = {"epoch": 3, "loss": 1.0, "losses": {"kd": 2}, "train_top5": 90.0, "ok": True}
    assert scalars(rec) == {"loss": 1.0, "losses/kd": 2.0, "train_top5": 90.0}


class CrashAt(Callback):
    """Raise at the end of the 1-based ``epoch`` (``where="epoch"``: after its metrics line,
    before TensorBoard saw it) or at the first step after it (``where="step"``)."""

    def __init__(self, epoch: int, where: str) -> None:
        self.epoch, self.where = epoch, where

    def on_epoch_end(self, trainer, record) -> None:
        if self.where == "epoch" and record["epoch"] == self.epoch:
            raise RuntimeError("killed")

    def on_step_end(self, trainer, step, losses) -> None:
        if self.where == "step" and len(trainer.history) == self.epoch:
            raise RuntimeError("killed")


@pytest.mark.parametrize("where", ["step", "epoch"])
def test_a_resumed_run_logs_each_epoch_once(tmp_path, where):
    out = tmp_path / "run"
    with pytest.raises(RuntimeError):
        run_experiment(tiny(), out, callbacks=[CrashAt(1, where)], progress=False)
    logged = {t: [s for s, _ in p] for t, p in events(out).items()}
    if where == "step":  # killed in epoch 2: epoch 1 is in tb/
        assert logged and all(steps == [1] for steps in logged.values())
    else:  # killed after epoch 1's metrics line, before its events
        assert logged == {}
    run_experiment(tiny(), out, resume=True, progress=False)
    assert [r["epoch"] for r in Run(out).metrics()] == [1, 2]
    assert_events_are_the_metrics(out)  # epoch 1 neither twice nor lost


def test_no_tensorboard_writes_no_event_files_and_overwrite_replaces_them(tmp_path, capsys):
    out = tmp_path / "run"
    flags = ["--dataset", "digits", "--image-size", "16", "--subset", "0.1", "--arch", "resnet8"]
    flags += ["--epochs", "1", "--device", "cpu", "--no-progress", "--out", str(out)]
    assert main(["train-teacher", *flags, "--no-tensorboard"]) == 0
    assert (out / "metrics.jsonl").is_file() and not (out / "tb").exists()
    assert main(["train-teacher", *flags, "--overwrite"]) == 0
    assert_events_are_the_metrics(out)
    before = sorted(p.name for p in (out / "tb").iterdir())
    assert main(["train-teacher", *flags, "--overwrite"]) == 0  # the old events go with it
    after = sorted(p.name for p in (out / "tb").iterdir())
    assert len(after) == 1 and after != before
    assert_events_are_the_metrics(out)
    (out / "tb" / "notes.txt").write_text("mine")  # tb/ holding a file of the user's
    capsys.readouterr()
    assert main(["train-teacher", *flags, "--overwrite"]) == 2
    assert "not a run directory" in capsys.readouterr().err
    assert (out / "tb" / "notes.txt").read_text() == "mine"


@pytest.mark.skipif(
    importlib.util.find_spec("wandb") is not None, reason="wandb installed: the error is moot"
)
def test_wandb_without_the_package_is_one_line_naming_pip_install(tmp_path, capsys):
    with pytest.raises(UserError, match=r"pip install wandb"):
        run_experiment(tiny(), tmp_path / "run", wandb="fcfd", progress=False)
    assert not (tmp_path / "run").exists()  # refused before any work
    args = ["distill", "--method", "ce", "--student", "resnet8", "--dataset", "digits"]
    assert main([*args, "--out", str(tmp_path / "d"), "--wandb", "fcfd"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "pip install wandb" in err
