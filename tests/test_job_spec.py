"""The app's launch form (fcfd_viz.job_spec): the command a spec runs and what it refuses."""

from __future__ import annotations

import pytest

from fcfd_viz.errors import UserError
from fcfd_viz.job_spec import JobSpec, validate


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
    from fcfd_viz.checkpoints import save_checkpoint

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
