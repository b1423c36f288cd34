"""The trainer: exact resume, STOP, divergence (run directories: test_runs.py; checkpoints:
test_checkpoints.py; the config and lr schedules: test_train_config.py)."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from helpers import CrashAt, Interrupt

from fcfd_viz.data.datasets import DataConfig
from fcfd_viz.experiments.experiment import ExperimentConfig, run_experiment
from fcfd_viz.runs.layout import Run
from fcfd_viz.training.callbacks import Callback
from fcfd_viz.training.config import TrainConfig, lr_at

pytestmark = pytest.mark.usefixtures("one_thread")


def tiny(
    method: str = "ce", teacher: Path | None = None, epochs: int = 4, **knobs
) -> ExperimentConfig:
    """resnet8 on 20% of digits at 16x16: 5 steps an epoch."""
    return ExperimentConfig(
        method=method,
        student="resnet8",
        teacher=str(teacher) if teacher else None,
        data=DataConfig(dataset="digits", image_size=16, subset=0.2),
        train=TrainConfig(epochs=epochs, device="cpu", seed=3, lr=0.05),
        method_kwargs=knobs,
    )


def without_seconds(records: list[dict]) -> list[dict]:
    return [{k: v for k, v in r.items() if k != "seconds"} for r in records]


def assert_same_run(a: Path, b: Path) -> None:
    ra, rb = Run(a).metrics(), Run(b).metrics()
    assert len(ra) == len(rb) == 4
    assert without_seconds(ra) == without_seconds(rb)
    sa, sb = Run(a).summary(), Run(b).summary()
    assert {k: v for k, v in sa.items() if k != "seconds"} == {
        k: v for k, v in sb.items() if k != "seconds"
    }
    for name in ("last.pt", "best.pt"):
        ca = torch.load(a / name, weights_only=True)
        cb = torch.load(b / name, weights_only=True)
        assert ca["epoch"] == cb["epoch"]
        assert ca["state_dict"].keys() == cb["state_dict"].keys()
        for k in ca["state_dict"]:
            assert torch.equal(ca["state_dict"][k], cb["state_dict"][k]), (name, k)
        assert ca["extras"].keys() == cb["extras"].keys()
        for m in ca["extras"]:
            for k in ca["extras"][m]:
                assert torch.equal(ca["extras"][m][k], cb["extras"][m][k]), (name, m, k)


def interrupted_then_resumed(cfg: ExperimentConfig, out: Path) -> None:
    with pytest.raises(Interrupt):  # killed in epoch 3, after epoch 2's checkpoint
        run_experiment(cfg, out, callbacks=[CrashAt(epoch=2, step=1)], progress=False)
    assert Run(out).status()["state"] == "failed"
    assert torch.load(out / "last.pt", weights_only=True)["epoch"] == 2
    assert len(Run(out).metrics()) == 2
    # the config given here is ignored: a resume continues the run's own config.json
    run_experiment(tiny(epochs=1), out, resume=True, progress=False)
    assert Run(out).status()["state"] == "completed"


@pytest.mark.slow
def test_resume_ce_equals_uninterrupted(tmp_path: Path):
    run_experiment(tiny(), tmp_path / "full", progress=False)
    interrupted_then_resumed(tiny(), tmp_path / "resumed")
    assert_same_run(tmp_path / "full", tmp_path / "resumed")
    records = Run(tmp_path / "full").metrics()
    assert [r["lr"] for r in records] == pytest.approx([lr_at(tiny().train, e) for e in range(4)])
    assert [r["epoch"] for r in records] == [1, 2, 3, 4]
    assert all(r["steps"] == 5 for r in records)


@pytest.mark.slow
def test_resume_fcfd_equals_uninterrupted(tmp_path: Path, digits_teacher: Path):
    cfg = tiny("fcfd", digits_teacher, feat_warmup_epochs=3, num_paths=2)
    run_experiment(cfg, tmp_path / "full", progress=False)
    interrupted_then_resumed(
        tiny("fcfd", digits_teacher, feat_warmup_epochs=3, num_paths=2), tmp_path / "resumed"
    )
    assert_same_run(tmp_path / "full", tmp_path / "resumed")
    rec = Run(tmp_path / "full").metrics()[-1]
    assert any(k.startswith("func_kl/") for k in rec["losses"]) and "app/stage3" in rec["losses"]
    ckpt = torch.load(tmp_path / "full" / "last.pt", weights_only=True)
    assert set(ckpt["extras"]) == {"s2t", "t2s"}
    assert ckpt["method"] == "fcfd" and ckpt["method_config"]["feat_warmup_epochs"] == 3


# ------------------------------------------------------------------ STOP
class StopAt(Callback):
    """Touch the run's STOP file (what the app's Stop button does) at one step."""

    def __init__(self, epoch: int, step: int) -> None:
        self.epoch, self.step, self.steps_seen = epoch, step, 0

    def on_step_end(self, trainer, step, losses) -> None:
        self.steps_seen += 1
        if len(trainer.history) == self.epoch and step == self.step:
            trainer.run.request_stop()


@pytest.mark.slow
def test_stop_file_stops_after_the_current_step_and_resume_replays_the_partial_epoch(
    tmp_path: Path,
):
    out = tmp_path / "run"
    stop = StopAt(epoch=1, step=1)
    summary = run_experiment(tiny(), out, callbacks=[stop], progress=False)
    assert stop.steps_seen == 5 + 2  # epoch 1 whole, then steps 0 and 1 of epoch 2
    assert Run(out).status()["state"] == "stopped"
    # the partial epoch 2 is dropped: last.pt and the metrics end with epoch 1
    assert summary["stopped"] is True and summary["epochs"] == 1
    assert [r["steps"] for r in Run(out).metrics()] == [5]
    assert torch.load(out / "last.pt", weights_only=True)["epoch"] == 1
    # a resumed run is not stopped again by the old request, and replays epoch 2 exactly
    summary = run_experiment(tiny(), out, resume=True, progress=False)
    assert Run(out).status()["state"] == "completed"
    assert summary["stopped"] is False and summary["epochs"] == 4
    whole = tmp_path / "whole"
    run_experiment(tiny(), whole, progress=False)
    strip = lambda rs: [{k: v for k, v in r.items() if k != "seconds"} for r in rs]  # noqa: E731
    assert strip(Run(out).metrics()) == strip(Run(whole).metrics())


# ------------------------------------------------------------------ divergence
class BlowUpAt(Callback):
    """From the first step of ``epoch`` (0-based) on, an absurd learning rate: a real
    divergence of a real run (the loss explodes or turns NaN a few steps later)."""

    def __init__(self, epoch: int) -> None:
        self.epoch = epoch
        self.saved: bytes | None = None

    def on_epoch_end(self, trainer, record) -> None:
        self.saved = (trainer.run.path / "last.pt").read_bytes()  # what a later epoch must keep

    def on_step_end(self, trainer, step, losses) -> None:
        if len(trainer.history) >= self.epoch:
            for g in trainer.optimizer.param_groups:
                g["lr"] = 1e8


def test_divergence_stops_with_one_line_and_keeps_the_last_good_checkpoint(tmp_path: Path):
    from fcfd_viz.errors import Diverged

    out = tmp_path / "run"
    blow = BlowUpAt(epoch=1)
    with pytest.raises(Diverged) as e:
        run_experiment(tiny(epochs=3), out, callbacks=[blow], progress=False)
    msg = str(e.value)
    assert "\n" not in msg and "training diverged in epoch 2" in msg and "--lr" in msg
    assert "epoch 1 and earlier" in msg
    assert (out / "last.pt").read_bytes() == blow.saved  # untouched by the bad epoch
    assert [r["epoch"] for r in Run(out).metrics()] == [1]
    status = Run(out).status()
    assert status["state"] == "diverged" and status["error"] == msg


def test_a_diverged_step_leaves_the_weights_and_the_optimizer_as_they_were():
    """The finiteness check runs after the backward (so a GPU need not wait for the forward
    before the backward is queued) but before the optimizer step: a NaN loss changes nothing."""
    from fcfd_viz import distill, models
    from fcfd_viz.errors import Diverged
    from fcfd_viz.training.trainer import Trainer

    torch.manual_seed(0)
    d = distill.create("ce", models.create("resnet8", 10), input_shape=(3, 16, 16))
    cfg = TrainConfig(epochs=1, device="cpu", lr=0.05)
    trainer = Trainer(d, [], [], cfg, progress=False)
    x, y = torch.randn(8, 3, 16, 16), torch.randint(0, 10, (8,))
    trainer.model.train()
    trainer._step(x, y)  # a good step: momentum buffers exist now
    weights = {k: v.clone() for k, v in d.state_dict().items()}
    momenta = [s["momentum_buffer"].clone() for s in trainer.optimizer.state.values()]
    with pytest.raises(Diverged, match="nan"):
        trainer._step(torch.full_like(x, float("nan")), y)
    for k, v in d.state_dict().items():
        if not k.endswith(("running_mean", "running_var", "num_batches_tracked")):
            assert torch.equal(v, weights[k]), k  # (BN statistics saw the batch: a forward)
    after = [s["momentum_buffer"] for s in trainer.optimizer.state.values()]
    assert all(torch.equal(a, b) for a, b in zip(after, momenta))


class LrPerStep(Callback):
    """The optimizer's lr at every step, per epoch."""

    def __init__(self) -> None:
        self.lrs: list[list[float]] = []

    def on_step_end(self, trainer, step, losses) -> None:
        if step == 0:
            self.lrs.append([])
        self.lrs[-1].append(trainer.optimizer.param_groups[0]["lr"])


def test_lr_warm_up_ramps_per_step(tmp_path: Path):
    """A one-epoch warm-up ramps over that epoch's steps (it was per epoch, so one warm-up
    epoch trained at the full lr from the first step: detection distillation diverged)."""
    cfg = tiny(epochs=2)
    cfg.train.warmup_epochs, cfg.train.schedule = 1, "constant"
    seen = LrPerStep()
    run_experiment(cfg, tmp_path / "run", callbacks=[seen], progress=False)
    assert seen.lrs[0] == pytest.approx([0.05 * k / 5 for k in (1, 2, 3, 4, 5)])  # 5 steps
    assert seen.lrs[1] == pytest.approx([0.05] * 5)
    # an epoch's record keeps the lr of its last step
    assert [r["lr"] for r in Run(tmp_path / "run").metrics()] == pytest.approx([0.05, 0.05])
