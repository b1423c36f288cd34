"""What a run writes keeps ``method`` (the name) apart from ``method_config`` (its knobs), and
stores the student's arch once (issue #12); run folders written before still list, resume,
evaluate and load into the functional gap."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import torch

from fcfd_viz import distill, models
from fcfd_viz.analysis.gap.functional import FunctionalGap
from fcfd_viz.analysis.gap.inputs import gap_loaders, load_students
from fcfd_viz.cli import main
from fcfd_viz.runs.listing import list_runs
from fcfd_viz.training.config import TrainConfig
from fcfd_viz.training.trainer import Trainer

pytestmark = pytest.mark.usefixtures("one_thread")

DATA = Path(__file__).parents[1] / "fixtures" / "run_before_12"
FAST = ["--device", "cpu", "--no-progress"]
KNOBS = {  # the fcfd run's method entry in its files, less the name
    "ce_weight": 1.0,
    "temperature": 4.0,
    "kd_weight": 1.0,
    "feat_weight": 0.5,
    "feat_warmup_epochs": 20,
    "mix_weight": 1.0,
    "paths": "bi",
    "num_paths": 1,
    "teacher_bn": "frozen",
}


def checkpoint_tensors(entries: dict, teacher) -> tuple[dict, object]:
    """Weights for a checkpoint of the old format: a net of its arch, bridges when its
    method had them (built from the old ``method`` dict), the optimizer without momentum."""
    net = models.create(entries["model"]["arch"], num_classes=entries["model"]["num_classes"])
    knobs = {k: v for k, v in entries["method"].items() if k != "method"}
    d = distill.create(entries["method"]["method"], net, teacher, entries["input_shape"], **knobs)
    tensors = {"state_dict": net.state_dict(), "extras": d.extras_state_dict()}
    if "optimizer" in entries:
        tensors["optimizer"] = {"state": {}, **entries["optimizer"]}
    return tensors, net


@pytest.fixture
def old_root(tmp_path, monkeypatch) -> Path:
    """A copy of ``tests/fixtures/run_before_12`` with its checkpoints rebuilt: every entry as
    fcfd-viz 30740ac saved it, plus tensors of the shapes it held. The cwd is the copy (the
    fcfd run names its teacher ``teacher/best.pt``)."""
    root = tmp_path / "old"
    shutil.copytree(DATA, root, ignore=shutil.ignore_patterns("README.md"))
    teacher = None
    for run in ("teacher", "fcfd"):
        for name in ("best.pt", "last.pt"):
            entries = json.loads((root / run / f"{name}.json").read_text())
            tensors, net = checkpoint_tensors(entries, teacher)
            torch.save({**entries, **tensors}, root / run / name)
            (root / run / f"{name}.json").unlink()
        teacher = net
    monkeypatch.chdir(root)
    return root


def test_old_run_folder_lists_evaluates_and_loads_into_the_gap(old_root, capsys):
    rows = {r["name"]: r for r in list_runs(old_root)}
    assert {n: (r["method"], r["student"], r["state"]) for n, r in rows.items()} == {
        "teacher": ("ce", "resnet8_w025", "completed"),
        "fcfd": ("fcfd", "resnet8_w025", "stopped"),
    }
    assert rows["fcfd"]["epochs"] == "1/2" and rows["fcfd"]["teacher"] == "teacher/best.pt"
    assert main(["eval", "fcfd", "--json", "--device", "cpu"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["arch"] == "resnet8_w025" and result["dataset"] == "digits"

    loaded = load_students(["fcfd"])  # the teacher it recorded
    assert loaded.info["students"]["fcfd"]["method"] == "fcfd"
    assert loaded.methods == {"fcfd": "fcfd"} and loaded.bridges["fcfd"] is not None
    assert not hasattr(loaded.students["fcfd"], "gap_method")  # nothing hung on the module
    test_loader, _ = gap_loaders(loaded)
    gap = FunctionalGap(*loaded, loaded.info["input_shape"], methods=loaded.methods)
    entry = gap.compute(test_loader, fit=False).entries["fcfd (own bridges)"]
    assert entry.method == "fcfd" and entry.student == "fcfd"
    assert main(["gap", "--student", "fcfd", "--no-fit", "--json", "--no-progress"]) == 0
    assert set(json.loads(capsys.readouterr().out)["inputs"]) == {"fcfd"}


def test_old_run_resumes_and_writes_the_new_form(old_root, capsys):
    config = (old_root / "fcfd" / "config.json").read_text()
    assert main(["distill", "--resume", "--out", "fcfd", *FAST]) == 0
    assert "fcfd resnet8_w025 on digits" in capsys.readouterr().out
    assert (old_root / "fcfd" / "config.json").read_text() == config  # a resume keeps it
    summary = json.loads((old_root / "fcfd" / "summary.json").read_text())
    assert summary["epochs"] == 2 and summary["method"] == "fcfd"
    assert summary["arch"] == summary["student"] == "resnet8_w025"
    assert summary["num_classes"] == 10 and summary["teacher"] == "teacher/best.pt"
    assert [r["epoch"] for r in map(json.loads, open("fcfd/metrics.jsonl"))] == [1, 2]
    ckpt = torch.load(old_root / "fcfd" / "last.pt", weights_only=True)
    assert ckpt["method"] == "fcfd" and ckpt["method_config"] == KNOBS
    assert ckpt["model"]["arch"] == "resnet8_w025"  # the arch's one home in a checkpoint
    assert not {"arch", "student", "num_classes"} & set(ckpt)
    assert {r["name"]: r["state"] for r in list_runs(old_root)}["fcfd"] == "completed"
    # best.pt is whichever epoch scored higher: the old file or a new one, read alike
    for path in ("fcfd/last.pt", "fcfd"):
        assert load_students([path]).methods == {"fcfd": "fcfd"}


def test_an_old_config_with_amp_runs_as_config(old_root):
    """config.json of a run from before --precision names it ``train.amp``: read as it (the
    resume of such a run: test_old_run_resumes_and_writes_the_new_form)."""
    old = json.loads((old_root / "fcfd" / "config.json").read_text())
    assert old["train"]["amp"] == "auto" and "precision" not in old["train"]
    old["train"]["amp"] = "off"
    old["method"], old["method_config"] = "fcfd", old.pop("method_kwargs")  # after #12
    (old_root / "off.json").write_text(json.dumps(old))
    argv = ["--config", "off.json", "--epochs", "1", "--out", "again", *FAST]
    assert main(["distill", *argv]) == 0
    new = json.loads((old_root / "again" / "config.json").read_text())
    assert new["train"]["precision"] == "fp32" and "amp" not in new["train"]
    assert new["runtime"]["precision"] == "fp32" and not new["runtime"]["channels_last"]


def test_new_runs_write_the_name_and_the_knobs_apart(tmp_path):
    out = tmp_path / "fcfd"
    argv = ["distill", "--method", "ce", "--student", "resnet8_w025", "--subset", "0.1"]
    assert main([*argv, "--epochs", "1", "--ce-weight", "0.5", "--out", str(out), *FAST]) == 0
    config = json.loads((out / "config.json").read_text())
    assert config["method"] == "ce" and config["method_config"] == {"ce_weight": 0.5}
    ckpt = torch.load(out / "last.pt", weights_only=True)
    assert ckpt["method"] == "ce" and ckpt["method_config"] == {"ce_weight": 0.5}
    assert not {"arch", "student", "num_classes"} & set(ckpt)


def test_the_trainer_refuses_meta_that_would_replace_checkpoint_state():
    d = distill.create("ce", models.create("resnet8_w025", num_classes=10))
    cfg = TrainConfig(epochs=1, device="cpu")
    for key in ("method", "model", "method_config"):
        trainer = Trainer(d, [], [], cfg, meta={key: "x"}, progress=False)
        with pytest.raises(ValueError, match=key):
            trainer.checkpoint(1, with_optimizer=False)
