"""``fcfd train-teacher --task detection`` and ``fcfd distill --task detection`` end to end."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from fcfd_viz.cli import main
from fcfd_viz.detection import data as det_data
from fcfd_viz.experiments import presets

pytestmark = pytest.mark.usefixtures("one_thread")
TINY = ["--subset", "0.008", "--batch-size", "4", "--epochs", "1", "--device", "cpu"]
QUIET = ["--no-progress", "--no-tensorboard"]


def test_train_teacher_then_distill(tmp_path: Path, monkeypatch, capsys):
    monkeypatch.setattr(det_data, "TEST_CANVASES", 8)
    teacher = tmp_path / "t"
    argv = ["train-teacher", "--task", "detection", "--arch", "det_resnet10", "--out", str(teacher)]
    assert main([*argv, *TINY, *QUIET]) == 0
    assert "test mAP" in capsys.readouterr().out
    config = json.loads((teacher / "config.json").read_text())
    assert config["task"] == "detection" and config["data"]["dataset"] == "digit-boxes"
    assert config["train"]["lr"] == 0.02  # the det-digits preset's schedule

    assert main(["eval", str(teacher), "--json", "--device", "cpu"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["map"] == json.loads((teacher / "summary.json").read_text())["map"]
    assert result["n"] == 8

    out = tmp_path / "s"
    argv = ["distill", "--preset", "det-digits-smoke", "--teacher", str(teacher)]
    argv += ["--method", "kd", "--student", "det_mobilenetv2", "--roi-l2-weight", "0.5"]
    assert main([*argv, "--out", str(out), *TINY, *QUIET]) == 0
    config = json.loads((out / "config.json").read_text())
    assert config["task"] == "detection" and config["method"] == "kd"
    assert config["method_config"] == {"temperature": 1.0, "kd_weight": 1.0, "roi_l2_weight": 0.5}
    summary = json.loads((out / "summary.json").read_text())
    assert summary["student"] == "det_mobilenetv2" and summary["best_map"] >= 0
    err = capsys.readouterr().err
    assert "expects a det_resnet18 teacher" in err  # the preset's pair, a note only


def test_bad_combinations_exit_2_with_one_line(tmp_path: Path, capsys):
    cases = [
        (["--task", "detection", "--method", "fitnet"], "no detection version"),
        (["--task", "classification", "--preset", "det-digits"], "is a detection preset"),
        (["--task", "detection", "--dataset", "cifar10"], "needs a detection dataset"),
        (["--dataset", "coco"], "add --task detection"),
        (["--task", "detection", "--student", "resnet8"], "unknown detector"),
    ]
    for extra, message in cases:
        out = tmp_path / "x"
        assert main(["distill", *extra, "--out", str(out), *QUIET]) == 2, extra
        err = capsys.readouterr().err
        assert message in err and len(err.strip().splitlines()) == 1, (extra, err)
        assert not out.exists()


def test_detection_presets_carry_the_papers_values():
    assert presets.detection_names() == [
        "coco-r101-r18",
        "coco-r101-r50",
        "coco-r50-mbv2",
        "det-digits",
        "det-digits-smoke",
    ]
    for name in presets.detection_names():
        p = presets.load(name)
        assert p.task == "detection" and p.knobs_for("fcfd")["temperature"] == 1.0
    r18 = presets.load("coco-r101-r18")
    assert (r18.teacher, r18.student) == ("frcnn_r101", "frcnn_r18")
    assert r18.method_kwargs["roi_l2_weight"] == 1.0
    assert presets.load("coco-r50-mbv2").method_kwargs["roi_l2_weight"] == 0.0
    assert r18.train["lr"] == 0.01 and r18.data["batch_size"] == 8
    assert r18.train["milestones"] == [8, 11] and r18.train["epochs"] == 12
    # one preset serves every method: kd takes all its knobs but app_weight
    kd = presets.load("det-digits").knobs_for("kd")
    assert kd == {"temperature": 1.0, "kd_weight": 1.0, "roi_l2_weight": 0.0}


def test_train_teacher_takes_a_detection_preset(tmp_path: Path, monkeypatch, capsys):
    monkeypatch.setattr(det_data, "TEST_CANVASES", 4)
    out = tmp_path / "t"
    argv = ["train-teacher", "--preset", "det-digits-smoke", "--arch", "det_resnet10"]
    assert main([*argv, "--out", str(out), *TINY, *QUIET]) == 0
    config = json.loads((out / "config.json").read_text())
    assert config["task"] == "detection" and config["train"]["lr"] == 0.02
    assert config["data"]["dataset"] == "digit-boxes" and config["method"] == "ce"
    capsys.readouterr()
    for extra in (["--preset", "det-digits", "--task", "classification"], ["--preset", "digits"]):
        assert main(["train-teacher", *extra, "--out", str(tmp_path / "x"), *QUIET]) == 2
        err = capsys.readouterr().err
        assert "takes a detection preset" in err and len(err.strip().splitlines()) == 1, err


def test_task_detection_alone_trains_on_the_detection_defaults(tmp_path: Path, det_runs, capsys):
    # without a preset this trained at the classification lr 0.05 (no warm-up, wd 5e-4):
    # at that lr a kd student diverged in epoch 1 (loss 2.7e7 on 50 canvases, 8.8e17 on all)
    out = tmp_path / "s"
    argv = ["distill", "--task", "detection", "--method", "kd"]
    argv += ["--teacher", str(det_runs / "det" / "teacher"), "--out", str(out)]
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(det_data, "TEST_CANVASES", 4)
        assert main([*argv, *TINY, *QUIET]) == 0, capsys.readouterr().err
    config = json.loads((out / "config.json").read_text())
    schedule = presets.load("det-digits").train
    assert config["train"]["lr"] == schedule["lr"] == 0.02
    assert config["train"]["warmup_epochs"] == schedule["warmup_epochs"] == 1
    assert config["train"]["weight_decay"] == schedule["weight_decay"]
    assert config["data"]["image_size"] == 64 and config["student"] == "det_resnet10"
    assert json.loads((out / "summary.json").read_text())["best_map"] >= 0
