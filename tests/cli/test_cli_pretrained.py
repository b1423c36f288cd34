"""``fcfd train-teacher --weights``: fine-tuning a tv_* net from pretrained weights in the hub
cache (a fake file), recorded in config.json and the checkpoint; ``fcfd models`` shows which
architectures take weights."""

from __future__ import annotations

import json

import pytest
import torch

from fcfd_viz.cli import main
from fcfd_viz.runs.checkpoints import load_checkpoint, model_from_checkpoint

pytestmark = pytest.mark.usefixtures("one_thread")

ARCH = "tv_mobilenet_v3_small"
FAST = ["--device", "cpu", "--no-progress", "--epochs", "1", "--subset", "0.1"]
DATA = ["--dataset", "digits", "--image-size", "32"]


def one_line_error(capsys, argv: list[str]) -> str:
    code = main(argv)
    err = capsys.readouterr().err
    assert code == 2 and len(err.strip().splitlines()) == 1 and "Traceback" not in err
    return err.strip()


def test_fine_tune_from_pretrained_weights(fake_hub, fake_imagenet_state, tmp_path, capsys):
    out = tmp_path / "tuned"
    argv = ["train-teacher", "--arch", ARCH, "--weights", "IMAGENET1K_V1", "--out", str(out)]
    code = main([*argv, *DATA, *FAST])
    err = capsys.readouterr().err
    assert code == 0, err
    # the last layer is new (10 digits, not 1000 classes): one note line says so
    notes = [line for line in err.splitlines() if "note:" in line]
    assert len(notes) == 1 and "1000 classes" in notes[0] and "built with 10" in notes[0]
    assert json.loads((out / "config.json").read_text())["weights"] == "IMAGENET1K_V1"
    ckpt = load_checkpoint(out)
    assert ckpt["model"]["weights"] == "MobileNet_V3_Small_Weights.IMAGENET1K_V1"
    (fake_hub / "mobilenet_v3_small-047dcff4.pth").unlink()  # rebuilding needs no weights file
    net = model_from_checkpoint(ckpt)
    assert net.arch == ARCH and net.num_classes == 10
    # fine-tuned, not trained from scratch: one epoch moved the stem's weights only a little
    stem = net.state_dict()["stages.0.0.0.weight"]
    start = fake_imagenet_state["features.0.0.weight"]
    assert (stem - start).norm() < 0.5 * start.norm()


def test_weights_errors_are_one_line_and_start_no_run(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "empty_home"))
    out = tmp_path / "run"
    argv = ["train-teacher", "--out", str(out), *DATA, *FAST]
    err = one_line_error(capsys, [*argv, "--arch", "resnet8", "--weights", "IMAGENET1K_V1"])
    assert "--weights: resnet8 takes no pretrained weights" in err
    err = one_line_error(capsys, [*argv, "--arch", ARCH, "--weights", "IMAGENET1K_V1"])
    folder = tmp_path / "empty_home" / "hub" / "checkpoints"
    assert "mobilenet_v3_small-047dcff4.pth" in err and str(folder) in err
    assert not out.exists()


def test_models_lists_the_weights_of_those_that_take_them(capsys):
    assert main(["models"]) == 0
    lines = {line.split()[0]: line for line in capsys.readouterr().out.splitlines()}
    assert lines["resnet8"] == "resnet8"
    assert "--weights IMAGENET1K_V1 | DEFAULT" in lines["tv_resnet18"]
    assert "IMAGENET1K_V2" in lines["tv_mobilenet_v3_large"]


def test_random_init_records_no_weights(tmp_path, capsys):
    out = tmp_path / "scratch"
    assert main(["train-teacher", "--arch", ARCH, "--out", str(out), *DATA, *FAST]) == 0
    assert "note:" not in capsys.readouterr().err
    assert json.loads((out / "config.json").read_text())["weights"] is None
    assert "weights" not in torch.load(out / "best.pt", weights_only=True)["model"]
