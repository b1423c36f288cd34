"""An imported teacher is an ordinary run: its accuracy is measured when the data is there
(digits always, CIFAR from ``--data-dir``), and ``eval``, ``distill --teacher``, ``probe``
and ``gap`` read it."""

from __future__ import annotations

import json
import os
import pickle
from pathlib import Path

import numpy as np
import pytest
import torch
from test_cli_train import FAST, ok
from test_weights_cmds import constant, imported

from fcfd_viz.data.digits import DigitsDataset
from fcfd_viz.models import crd

pytestmark = pytest.mark.usefixtures("one_thread")


def test_accuracy_is_measured_on_digits_and_the_run_serves_every_command(tmp_path, capsys):
    net = constant("resnet8", label=3, num_classes=10)
    torch.save({"model": crd.to_crd(net)}, tmp_path / "t.pth")
    teacher = tmp_path / "teacher"
    out = imported(capsys, tmp_path / "t.pth", "resnet8", teacher, "--dataset", "digits")
    want = 100.0 * float((DigitsDataset(False).targets == 3).float().mean())
    assert json.loads((teacher / "summary.json").read_text())["top1"] == pytest.approx(want)
    assert f"test top-1 {want:.2f}% on digits" in out
    ev = json.loads(ok(capsys, ["eval", str(teacher), "--json", "--device", "cpu"]))
    assert ev["top1"] == pytest.approx(want)

    student = tmp_path / "fcfd"
    ok(capsys, ["distill", "--method", "fcfd", "--teacher", str(teacher), "--student", "resnet8",
                "--subset", "0.1", "--epochs", "1", "--out", str(student), *FAST])  # fmt: skip
    probe = json.loads(ok(capsys, ["probe", str(teacher), "--stage", "1", "--images", "4",
                                   "--n-random", "4", "--k-jacobian", "2", "--json", "--no-progress"]))  # fmt: skip
    assert probe["arch"] == "resnet8" and probe["dataset"] == "digits"
    gap = json.loads(ok(capsys, ["gap", "--teacher", str(teacher), "--student", str(student),
                                 "--no-fit", "--json", "--no-progress"]))  # fmt: skip
    assert gap["teacher_accuracy"] == pytest.approx(want)


def fake_cifar100(root: Path, labels: list[int], monkeypatch) -> None:
    """A CIFAR-100 folder in torchvision's layout with ``labels`` as both splits; its files
    are not the real ones, so torchvision's checksum test is told to accept any file."""
    import torchvision.datasets.cifar as tv_cifar

    folder = root / "cifar-100-python"
    folder.mkdir(parents=True)
    rng = np.random.default_rng(0)
    for split in ("train", "test"):
        pixels = rng.integers(0, 256, (len(labels), 3 * 32 * 32), dtype=np.uint8)
        (folder / split).write_bytes(pickle.dumps({"data": pixels, "fine_labels": labels}))
    (folder / "meta").write_bytes(pickle.dumps({"fine_label_names": [str(i) for i in range(100)]}))
    monkeypatch.setattr(tv_cifar, "check_integrity", lambda path, md5=None: os.path.isfile(path))


def test_accuracy_is_measured_when_cifar_is_in_data_dir(tmp_path, capsys, monkeypatch):
    fake_cifar100(tmp_path / "data", [5, 5, 5, 1, 2, 3, 4, 6], monkeypatch)
    torch.save({"model": crd.to_crd(constant("resnet8", 5, 100))}, tmp_path / "t.pth")
    out = imported(capsys, tmp_path / "t.pth", "resnet8", tmp_path / "t",
                   "--data-dir", str(tmp_path / "data"), "--device", "cpu")  # fmt: skip
    assert "test top-1 37.50% on cifar100 (8 images)" in out
    assert json.loads((tmp_path / "t" / "summary.json").read_text())["top1"] == 37.5
