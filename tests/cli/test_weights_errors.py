"""``fcfd import-teacher`` / ``fcfd export`` on bad input: exit 2, one line naming the
misfit and the fix, nothing written."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from test_cli_train import fails, snapshot
from test_weights_cmds import make_run, randomised

from fcfd_viz import models
from fcfd_viz.models import crd
from fcfd_viz.runs.checkpoints import save_checkpoint

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    return make_run(tmp_path_factory.mktemp("run"))


@pytest.fixture(scope="module")
def resnet8() -> dict[str, torch.Tensor]:
    """resnet8 weights (100 classes) under CRD's names."""
    return crd.to_crd(randomised("resnet8"))


def refused(capsys, tmp_path, obj, *needles: str, arch: str = "resnet8", extra=()) -> str:
    """Import ``obj`` (saved with torch.save unless it is a path): exit 2, no run written."""
    file = obj if isinstance(obj, str) else tmp_path / "w.pth"
    if not isinstance(obj, str):
        torch.save(obj, file)
    out = tmp_path / "run"
    line = fails(capsys, ["import-teacher", str(file), "--arch", arch, "--out", str(out), *extra],
                 *needles)  # fmt: skip
    assert not out.exists()
    return line


def test_missing_key_is_named_with_its_shape(capsys, tmp_path, resnet8):
    state = {k: v for k, v in resnet8.items() if k != "layer2.0.bn1.running_var"}
    refused(capsys, tmp_path, {"model": state},
            "does not fit a resnet8", "missing key 'layer2.0.bn1.running_var' (needed shape [32])")  # fmt: skip


def test_wrong_shape_names_both_shapes_and_unexpected_keys_are_listed(capsys, tmp_path, resnet8):
    state = {**resnet8, "layer1.0.conv2.weight": torch.zeros(16, 16, 1, 1), "proj.weight": torch.zeros(2)}  # fmt: skip
    refused(capsys, tmp_path, {"model": state},
            "key 'layer1.0.conv2.weight' has shape [16, 16, 1, 1], a resnet8 for cifar100 needs [16, 16, 3, 3]",
            "unexpected keys 'proj.weight'")  # fmt: skip


def test_the_arch_the_file_fits_is_suggested(capsys, tmp_path, resnet8):
    line = refused(capsys, tmp_path, {"model": resnet8}, "pass --arch resnet8", arch="resnet14")
    assert "missing key 'layer1.1.conv1.weight'" in line


def test_a_classifier_of_another_dataset_points_at_dataset(capsys, tmp_path, resnet8):
    refused(capsys, tmp_path, {"model": resnet8}, "'fc.weight' has shape [100, 64]",
            "needs [10, 64]", "classifier has 100 outputs, cifar10 10: check --dataset",
            extra=["--dataset", "cifar10"])  # fmt: skip


@pytest.mark.parametrize("arch", ["resnet18", "mobilenet_v1", "nonet"])
def test_unknown_arch(capsys, tmp_path, resnet8, arch):
    refused(capsys, tmp_path, {"model": resnet8}, f"{arch!r} has no CRD layout", arch=arch)


def test_file_not_found_or_a_folder(capsys, tmp_path):
    refused(capsys, tmp_path, str(tmp_path / "nope.pth"), "nope.pth not found")
    refused(capsys, tmp_path, str(tmp_path), "is a directory")


def test_files_that_are_not_checkpoints(capsys, tmp_path):
    (tmp_path / "notes.txt").write_text("not weights")
    refused(capsys, tmp_path, str(tmp_path / "notes.txt"), "is not a PyTorch checkpoint")
    refused(capsys, tmp_path, {"epoch": 3, "acc": torch.tensor(1.0)}, "holds no state_dict",
            "'acc', 'epoch'")  # fmt: skip
    refused(capsys, tmp_path, [torch.zeros(1)], "holds no state_dict (found list)")
    # pickled objects beyond tensors are never unpickled (weights_only)
    refused(capsys, tmp_path, {"model": {"w": torch.zeros(1)}, "acc": np.float64(1)},
            "cannot be loaded safely", "numpy")  # fmt: skip


def test_an_fcfd_checkpoint_is_used_directly(capsys, tmp_path, run):
    refused(capsys, tmp_path, str(run / "best.pt"), "already an fcfd-viz checkpoint")


def test_a_non_empty_out_is_kept(capsys, tmp_path, resnet8):
    torch.save({"model": resnet8}, tmp_path / "w.pth")
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "thesis.tex").write_text("mine")
    argv = ["import-teacher", str(tmp_path / "w.pth"), "--arch", "resnet8"]
    fails(capsys, [*argv, "--out", str(tmp_path / "out")], "not empty", "--overwrite")
    fails(capsys, [*argv, "--out", str(tmp_path / "out"), "--overwrite"], "not a run directory")
    assert [p.name for p in (tmp_path / "out").iterdir()] == ["thesis.tex"]


def test_export_refuses_to_replace_a_runs_own_checkpoint(capsys, tmp_path, run):
    before = snapshot(run)
    for target in (run / "best.pt", run / "last.pt"):
        fails(capsys, ["export", str(run), "--format", "crd", "--out", str(target),
                       "--overwrite"], "choose another --out")  # fmt: skip
    fails(capsys, ["export", str(run), "--format", "crd", "--out", str(tmp_path)],
          "is a directory")  # fmt: skip
    assert snapshot(run) == before


def test_export_crd_needs_an_arch_with_crd_layout(capsys, tmp_path):
    net = models.create("mobilenet_v1", num_classes=10)
    save_checkpoint(tmp_path / "m.pt", {"model": net.spec(), "state_dict": net.state_dict()})
    out = tmp_path / "m.pth"
    fails(capsys, ["export", str(tmp_path / "m.pt"), "--format", "crd", "--out", str(out)],
          "mobilenet_v1 has no CRD layout", "--format state_dict")  # fmt: skip
    fails(capsys, ["export", str(tmp_path / "nope"), "--format", "crd", "--out", str(out)],
          "not found")  # fmt: skip
    assert not out.exists()


def test_a_data_dir_without_cifar_is_an_error_before_anything_is_written(capsys, tmp_path, resnet8):
    (tmp_path / "data").mkdir()
    refused(capsys, tmp_path, {"model": resnet8}, "cifar100 not found", "cifar-100-python",
            extra=["--data-dir", str(tmp_path / "data")])  # fmt: skip


def test_an_existing_out_offers_only_what_import_teacher_takes(capsys, tmp_path, resnet8):
    """Issue #29: import-teacher into a run folder suggested --resume, which it does not take."""
    torch.save(resnet8, tmp_path / "w.pth")
    out = tmp_path / "run"
    out.mkdir()
    (out / "mine.txt").write_text("keep")
    argv = ["import-teacher", str(tmp_path / "w.pth"), "--arch", "resnet8", "--out", str(out)]
    line = fails(capsys, argv, "not empty", "--overwrite")
    assert "--resume" not in line and (out / "mine.txt").read_text() == "keep"
