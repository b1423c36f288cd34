"""Detection runs through the shared trainer and pipeline: the run directory, exact resume,
TensorBoard, best.pt by mAP."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from helpers import CrashAt, Interrupt

from fcfd_viz.data.datasets import DataConfig
from fcfd_viz.detection import data as det_data
from fcfd_viz.detection import models as det_models
from fcfd_viz.errors import UserError
from fcfd_viz.experiments.experiment import ExperimentConfig, run_experiment
from fcfd_viz.runs.layout import Run
from fcfd_viz.training.config import TrainConfig

pytestmark = pytest.mark.usefixtures("one_thread", "few_test_canvases")


@pytest.fixture
def few_test_canvases(monkeypatch):
    monkeypatch.setattr(det_data, "TEST_CANVASES", 8)  # evaluation in a second, not a minute


def same_run(a: Path, b: Path, epochs: int) -> None:
    strip = lambda rs: [{k: v for k, v in r.items() if k != "seconds"} for r in rs]  # noqa: E731
    ra, rb = Run(a).metrics(), Run(b).metrics()
    assert len(ra) == epochs and strip(ra) == strip(rb)
    sa, sb = Run(a).summary(), Run(b).summary()
    sa.pop("seconds"), sb.pop("seconds")
    assert sa == sb
    for name in ("last.pt", "best.pt"):
        assert (a / name).exists() == (b / name).exists()
        if not (a / name).exists():  # no epoch beat mAP 0 (an untrained tiny detector)
            continue
        ca, cb = (torch.load(x / name, weights_only=True) for x in (a, b))
        assert ca["epoch"] == cb["epoch"] and ca["best_map"] == cb["best_map"]
        for k in ca["state_dict"]:
            assert torch.equal(ca["state_dict"][k], cb["state_dict"][k]), (name, k)
        for m in ca["extras"]:
            for k in ca["extras"][m]:
                assert torch.equal(ca["extras"][m][k], cb["extras"][m][k]), (name, m, k)


def tiny(method="ce", student="det_resnet10", teacher=None, epochs=2, **knobs):
    """8 training canvases, batch 4: 2 steps an epoch."""
    return ExperimentConfig(
        method=method,
        student=student,
        teacher=str(teacher) if teacher else None,
        data=DataConfig(dataset="digit-boxes", batch_size=4, subset=0.008),
        train=TrainConfig(epochs=epochs, device="cpu", seed=1, lr=0.01, weight_decay=1e-4),
        method_kwargs=knobs,
        task="detection",
    )


@pytest.fixture(scope="module")
def det_teacher(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("det") / "teacher"
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(det_data, "TEST_CANVASES", 8)
        run_experiment(tiny(epochs=1), out, progress=False, tensorboard=False)
    return out


def test_teacher_run_directory(det_teacher: Path):
    run = Run(det_teacher)
    config = json.loads((det_teacher / "config.json").read_text())
    assert config["task"] == "detection" and config["method"] == "ce"
    (rec,) = run.metrics()
    assert {"map", "map_50", "map_75", "lr", "loss", "losses"} <= set(rec)
    assert set(rec["losses"]) == {"rpn_cls", "rpn_box", "roi_cls", "roi_box"}
    assert "train_top1" not in rec and "test_top1" not in rec
    summary = run.summary()
    assert {"map", "map_50", "map_75", "best_map"} <= set(summary) and summary[
        "task"
    ] == "detection"
    assert summary["arch"] == "det_resnet10" and summary["input_shape"] == [3, 64, 64]
    assert run.status()["state"] == "completed"
    ckpt = torch.load(det_teacher / "last.pt", weights_only=True)
    assert ckpt["best_map"] == summary["best_map"] and ckpt["model"]["task"] == "detection"
    det_models.from_checkpoint(ckpt)  # the student rebuilds from its spec
    from fcfd_viz.runs.listing import run_row

    row = run_row(det_teacher)  # the runs table lists it (no top-1: a detection run)
    assert row["state"] == "completed" and row["method"] == "ce" and row["top1"] is None


def test_fcfd_resume_equals_uninterrupted(tmp_path: Path, det_teacher: Path):
    cfg = lambda: tiny("fcfd", "det_mobilenetv2", det_teacher, roi_l2_weight=1.0)  # noqa: E731
    run_experiment(cfg(), tmp_path / "full", progress=False)
    out = tmp_path / "resumed"
    with pytest.raises(Interrupt):  # killed in epoch 2, after epoch 1's checkpoint
        run_experiment(cfg(), out, callbacks=[CrashAt(epoch=1, step=0)], progress=False)
    assert torch.load(out / "last.pt", weights_only=True)["epoch"] == 1
    run_experiment(cfg(), out, resume=True, progress=False)
    same_run(tmp_path / "full", out, epochs=2)
    rec = Run(tmp_path / "full").metrics()[-1]
    assert {"app/p2", "app/p6", "roi_kd/st", "roi_kd/ts", "roi_l2/s"} <= set(rec["losses"])
    assert list((tmp_path / "full" / "tb").glob("events.out.tfevents.*"))  # TensorBoard
    from fcfd_viz.training.tracking import logged

    tags = logged(tmp_path / "resumed" / "tb")
    assert tags["map"] == {1, 2} and tags["losses/roi_kd/ts"] == {1, 2}


def test_bad_combinations_are_one_line(tmp_path: Path, det_teacher: Path):
    with pytest.raises(UserError, match="no detection version"):
        run_experiment(tiny("fitnet", teacher=det_teacher), tmp_path / "a", progress=False)
    with pytest.raises(UserError, match="needs a detection dataset"):
        bad = tiny()
        bad.data.dataset = "digits"
        run_experiment(bad, tmp_path / "b", progress=False)
    with pytest.raises(UserError, match="add --task detection"):
        bad = tiny()
        bad.task = "classification"
        run_experiment(bad, tmp_path / "c", progress=False)
    assert not (tmp_path / "a").exists() and not (tmp_path / "c").exists()
