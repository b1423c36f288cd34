"""Checkpoints from before the stage-cut change (format ``fcfd-viz/1``): networks convert to the
same function, the old ShuffleNetV2 stem and old bridges of moved families are refused."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from legacy_weights import DATA, NUM_CLASSES, fixed_input, synthetic_state

from fcfd_viz import distill, models
from fcfd_viz.cli import main
from fcfd_viz.errors import UserError
from fcfd_viz.models import legacy
from fcfd_viz.runs.checkpoints import load_checkpoint, model_from_checkpoint

pytestmark = pytest.mark.usefixtures("one_thread")

BEFORE = json.loads(DATA.read_text())


def old_checkpoint(path: Path, arch: str, **extra) -> Path:
    """A format-1 checkpoint file holding ``arch`` with the recorded pre-change weights."""
    state = synthetic_state(BEFORE[arch]["state"])
    spec = {"arch": arch, "num_classes": NUM_CLASSES, "arch_kwargs": {}}
    torch.save({"format": legacy.OLD_FORMAT, "model": spec, "state_dict": state, **extra}, path)
    return path


@pytest.mark.parametrize("arch", [a for a in BEFORE if a != "shufflev2"])
def test_old_checkpoint_gives_the_logits_from_before_the_change(arch: str, tmp_path) -> None:
    net = model_from_checkpoint(old_checkpoint(tmp_path / "old.pt", arch))
    with torch.no_grad():
        logits = net(fixed_input(BEFORE[arch]["input_size"])).double()
    before = torch.tensor(BEFORE[arch]["logits"], dtype=torch.float64)
    assert before.std() > 0.5  # a non-trivial function
    torch.testing.assert_close(logits, before, rtol=1e-5, atol=1e-5 * before.abs().max().item())


def test_unconverted_old_weights_do_not_load_into_moved_families() -> None:
    """Control: without the conversion the old layout does not fit VGG, MobileNetV2, WRN."""
    for arch in ("vgg8", "mobilenetv2", "wrn_16_1", "mobilenet_v1"):
        net = models.create(arch, num_classes=NUM_CLASSES)
        with pytest.raises(RuntimeError):
            net.load_state_dict(synthetic_state(BEFORE[arch]["state"]))


def test_old_shufflev2_stem_is_refused(tmp_path) -> None:
    with pytest.raises(UserError, match="1x1 conv") as e:
        load_checkpoint(old_checkpoint(tmp_path / "old.pt", "shufflev2"))
    assert "\n" not in str(e.value)


def _fcfd(student: str, teacher: str):
    torch.manual_seed(0)
    s = models.create(student, num_classes=NUM_CLASSES)
    t = models.create(teacher, num_classes=NUM_CLASSES)
    return distill.create("fcfd", s, t, input_shape=(3, 16, 16))


@pytest.mark.parametrize(
    "student, teacher, refused",
    [
        ("wrn_16_1", "resnet8", True),  # the student's cuts moved
        ("resnet8", "wrn_16_1", True),  # the teacher's cuts moved
        ("resnet8", "resnet8x4", False),  # nothing moved: old bridges still mean the same
    ],
)
def test_old_bridges_refused_when_either_side_moved(student, teacher, refused, tmp_path) -> None:
    d = _fcfd(student, teacher)
    extras = d.extras_state_dict()
    state = d.student.state_dict()
    if student == "wrn_16_1":  # write the student in the old layout
        state = {k.replace("stages.3.1.", "stages.3.1.0."): v for k, v in state.items()}
    path = tmp_path / "old.pt"
    spec = {"arch": student, "num_classes": NUM_CLASSES, "arch_kwargs": {}}
    torch.save(
        {"format": legacy.OLD_FORMAT, "model": spec, "state_dict": state, "extras": extras}, path
    )
    ckpt = load_checkpoint(path)
    fresh = _fcfd(student, teacher)
    if refused:
        with pytest.raises(UserError, match="stage cuts") as e:
            fresh.load_checkpoint_state(ckpt)
        assert "start a new run" in str(e.value)
    else:
        fresh.load_checkpoint_state(ckpt)
        for k, v in fresh.extras_state_dict()["s2t"].items():
            assert torch.equal(v, extras["s2t"][k])
    # network weights alone always load (what a teacher or an evaluation needs)
    assert model_from_checkpoint(ckpt).arch == student


def test_resume_of_an_old_run_with_moved_cuts_exits_2(digits_teacher, tmp_path, capsys) -> None:
    """End to end: ``fcfd distill --resume`` of a format-1 FCFD run of a WRN student stops with
    one line naming the change, and leaves the run as it was."""
    out = tmp_path / "run"
    argv = ["distill", "--method", "fcfd", "--student", "wrn_16_1", "--teacher"]
    argv += [str(digits_teacher), "--dataset", "digits", "--subset", "0.1", "--epochs", "1"]
    assert main([*argv, "--out", str(out), "--device", "cpu", "--no-progress"]) == 0
    ckpt = torch.load(out / "last.pt", weights_only=True)
    ckpt["format"] = legacy.OLD_FORMAT
    ckpt["state_dict"] = {
        k.replace("stages.3.1.", "stages.3.1.0."): v for k, v in ckpt["state_dict"].items()
    }
    torch.save(ckpt, out / "last.pt")
    before = {p.name: p.read_bytes() for p in out.iterdir() if p.is_file()}
    capsys.readouterr()
    code = main(["distill", "--resume", "--out", str(out), "--epochs", "2", "--no-progress"])
    err = capsys.readouterr().err.strip()
    assert code == 2 and len(err.splitlines()) == 1 and "stage cuts" in err, err
    after = {p.name: p.read_bytes() for p in out.iterdir() if p.is_file()}
    assert {k: v for k, v in after.items() if k != "status.json"} == {
        k: v for k, v in before.items() if k != "status.json"
    }
