"""The app's launch form (fcfd_viz.jobs.spec): the command a spec runs and what it refuses."""

from __future__ import annotations

import pytest

from fcfd_viz.errors import UserError
from fcfd_viz.jobs.spec import JobSpec, validate


def test_spec_argv_passes_every_knob_and_the_teacher_only_when_used(digits_teacher):
    ce = JobSpec("a", method="ce", teacher=str(digits_teacher)).argv()
    assert "--temperature" not in ce and "--teacher" not in ce
    kd = JobSpec("a", method="kd", teacher=str(digits_teacher), knobs={"temperature": 2.0}).argv()
    assert kd[kd.index("--temperature") + 1] == "2.0" and "--teacher" in kd
    knobs = {"feat_weight": 0.5, "paths": "s2t", "teacher_bn": "batch", "num_paths": 1}
    fcfd = JobSpec("a", method="fcfd", epochs=3, knobs=knobs).argv()
    for name, value in knobs.items():  # any knob of the method, not a fixed few
        flag = "--" + name.replace("_", "-")
        assert fcfd[fcfd.index(flag) + 1] == str(value)
    assert fcfd[fcfd.index("--epochs") + 1] == "3"


def test_validate_rejects_bad_specs(digits_teacher, tmp_path):
    import torch

    from fcfd_viz import models
    from fcfd_viz.runs.checkpoints import save_checkpoint

    for bad in ("", "../x", "defaults", ".jobs", "a b"):
        with pytest.raises(UserError, match="run name"):
            validate(JobSpec(bad, method="ce"))
    with pytest.raises(UserError, match="needs a teacher"):
        validate(JobSpec("x", method="kd"))
    with pytest.raises(UserError, match="epochs"):
        validate(JobSpec("x", method="ce", epochs=0))
    with pytest.raises(UserError, match="temperature must be a finite number > 0"):
        validate(JobSpec("x", method="kd", teacher=str(digits_teacher), knobs={"temperature": 0}))
    with pytest.raises(UserError, match="has no option"):  # a knob the method lacks
        validate(JobSpec("x", method="ce", knobs={"temperature": 2.0}))
    net = models.create("resnet8", num_classes=100)
    cifar = tmp_path / "cifar.pt"
    save_checkpoint(
        cifar,
        {
            "model": net.spec(),
            "state_dict": net.state_dict(),
            "dataset": "cifar100",
            "input_shape": [3, 32, 32],
        },
    )
    with pytest.raises(UserError, match="same dataset"):
        validate(JobSpec("x", method="kd", teacher=str(cifar)))
    validate(JobSpec("x", method="kd", teacher=str(digits_teacher)))
    assert torch.is_tensor(net.state_dict()["head.fc.weight"])


def test_spec_argv_of_a_cifar_preset_names_its_data_folder_and_device(tmp_path, digits_teacher):
    from fcfd_viz.experiments import presets
    from fcfd_viz.jobs.spec import preset_status

    (tmp_path / "cifar-100-python").mkdir()  # the folder is all a presence check looks for
    spec = JobSpec("x", method="ce", preset="resnet56-resnet20", student="resnet8", device="cpu")
    spec.data_dir = str(tmp_path)
    validate(spec)
    argv = spec.argv()
    for flag, value in [
        ("--preset", "resnet56-resnet20"),
        ("--student", "resnet8"),
        ("--device", "cpu"),
        ("--data-dir", str(tmp_path.resolve())),
    ]:
        assert argv[argv.index(flag) + 1] == value, argv
    status = preset_status(str(tmp_path))
    assert status["resnet56-resnet20"] is None and status["digits"] is None
    for name, why in status.items():  # every CIFAR-100 preset runs; ImageNet says why not
        dataset = presets.load(name).dataset
        assert (why is None) == (dataset != "imagenet"), (name, why)
    assert "train/ and val/" in status["imagenet-resnet34-resnet18"]
    kd = JobSpec("x", method="kd", preset="resnet56-resnet20", teacher=str(digits_teacher))
    kd.data_dir = str(tmp_path)
    with pytest.raises(UserError, match="10 classes, but the student data is cifar100"):
        validate(kd)  # a digits teacher for a CIFAR-100 preset


def test_validate_refuses_a_preset_whose_data_is_absent(tmp_path, monkeypatch):
    monkeypatch.delenv("FCFD_DATA_DIR", raising=False)
    spec = JobSpec("x", method="ce", preset="resnet56-resnet20", data_dir=str(tmp_path))
    with pytest.raises(UserError, match=r"cifar100 not found in .*cifar-100-python"):
        validate(spec)
    with pytest.raises(UserError, match="train/ and val/"):
        validate(JobSpec("x", method="ce", preset="imagenet-resnet34-resnet18"))
    assert "--data-dir" not in JobSpec("x", method="ce").argv()  # digits: none needed


def test_device_choices_follow_the_gpus(monkeypatch):
    import torch

    from fcfd_viz.jobs.spec import device_choices

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert device_choices() == ["auto", "cpu"]
    with pytest.raises(UserError, match="device 'cuda:0' is not available here"):
        validate(JobSpec("x", method="ce", device="cuda:0"))
    validate(JobSpec("x", method="ce", device="cpu"))
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    assert device_choices() == ["auto", "cpu", "cuda", "cuda:0", "cuda:1"]
    validate(JobSpec("x", method="ce", device="cuda:1"))


def test_default_teacher_prefers_the_presets_arch_then_the_default_run():
    from fcfd_viz.experiments import presets
    from fcfd_viz.jobs.spec import default_teacher

    digits = presets.load("digits")  # teacher resnet8x4 on digits-hard
    runs = [
        {"name": "a", "student": "resnet8", "method": "ce", "dataset": "digits"},
        {"name": "defaults/teacher", "student": "resnet8", "method": "ce", "dataset": "digits"},
        {"name": "b", "student": "resnet8x4", "method": "kd", "dataset": "digits"},
        {"name": "c", "student": "resnet8x4", "method": "ce", "dataset": "digits"},
        {"name": "d", "student": "resnet8x4", "method": "ce", "dataset": "cifar100"},
    ]
    assert default_teacher(runs, digits, "defaults/teacher") == 3
    assert default_teacher(runs[:3], digits, "defaults/teacher") == 2
    assert default_teacher(runs[:2], digits, "defaults/teacher") == 1
    assert default_teacher(runs[:1], digits, "defaults/teacher") == 0
    assert default_teacher([], digits, "defaults/teacher") == 0
