"""``fcfd import-teacher`` and ``fcfd export``: a CRD teacher in, plain weights out, exactly.

Round trips go through the real command line and files: our state_dict -> import -> export
crd -> import -> export state_dict, with the same tensors and the same logits (bit for bit)
for one arch of every family. The exported CRD keys are the ones recorded from CRD's own
classes (``tests/fixtures/crd_state_dict_keys.json``).
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest
import torch
from test_cli_train import fails, ok

from fcfd_viz import models
from fcfd_viz.models import crd
from fcfd_viz.runs.checkpoints import load_checkpoint, model_from_checkpoint

pytestmark = pytest.mark.usefixtures("one_thread")

FACTS = json.loads(
    (Path(__file__).parents[1] / "fixtures" / "crd_state_dict_keys.json").read_text()
)
FAMILIES = ["resnet8", "resnet50", "wrn_16_1", "vgg8", "mobilenetv2", "shufflev1", "shufflev2"]


def randomised(arch: str, num_classes: int = 100, seed: int = 0) -> models.StagedNet:
    """A net whose every BatchNorm has its own random affine and statistics (a mapping that
    swapped two of them would change the logits) and a random classifier bias."""
    torch.manual_seed(seed)
    net = models.create(arch, num_classes=num_classes)
    with torch.no_grad():
        for m in net.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                m.weight.uniform_(0.5, 1.5), m.bias.normal_(0, 0.2)
                m.running_mean.normal_(0, 0.2), m.running_var.uniform_(0.5, 2.0)
                m.num_batches_tracked.fill_(seed + 7)
        net.head.fc.bias.normal_(0, 1)
    return net.eval()


def constant(arch: str, label: int, num_classes: int) -> models.StagedNet:
    """A net that predicts ``label`` for every image (its accuracy is that label's share)."""
    net = randomised(arch, num_classes)
    with torch.no_grad():
        net.head.fc.weight.zero_(), net.head.fc.bias.zero_()
        net.head.fc.bias[label] = 1.0
    return net


def make_run(root: Path) -> Path:
    """An imported resnet8 run directory (cifar100) in ``root``, made without training."""
    from fcfd_viz.weights.interop import import_teacher

    torch.save(randomised("resnet8").state_dict(), root / "w.pt")
    import_teacher(root / "w.pt", "resnet8", root / "resnet8")
    return root / "resnet8"


@pytest.fixture(scope="module")
def run(tmp_path_factory) -> Path:
    return make_run(tmp_path_factory.mktemp("run"))


def imported(capsys, file: Path, arch: str, out: Path, *extra: str) -> str:
    return ok(capsys, ["import-teacher", str(file), "--arch", arch, "--out", str(out), *extra])


@pytest.mark.parametrize("arch", FAMILIES)
def test_round_trip_is_exact_for_every_family(arch, tmp_path, capsys):
    net = randomised(arch)
    torch.save(net.state_dict(), tmp_path / "ours.pt")  # our names, a bare state_dict
    imported(capsys, tmp_path / "ours.pt", arch, tmp_path / "a")
    ok(capsys, ["export", str(tmp_path / "a"), "--format", "crd", "--out", str(tmp_path / "t.pth")])
    theirs = torch.load(tmp_path / "t.pth", weights_only=True)
    assert list(theirs) == ["model"]
    assert [[k, list(v.shape)] for k, v in theirs["model"].items()] == FACTS["archs"][arch]

    imported(capsys, tmp_path / "t.pth", arch, tmp_path / "b")
    ok(capsys, ["export", str(tmp_path / "b"), "--format", "state_dict", "--out", str(tmp_path / "back.pt")])  # fmt: skip
    back, own = torch.load(tmp_path / "back.pt", weights_only=True), net.state_dict()
    assert list(back) == list(own)
    assert all(torch.equal(back[k], v) and back[k].dtype == v.dtype for k, v in own.items())
    x = torch.randn(2, 3, 32, 32, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        want, got = net(x), model_from_checkpoint(tmp_path / "b")(x)
    assert torch.isfinite(want).all() and torch.equal(got, want)


def test_a_crd_checkpoint_becomes_a_run_that_records_its_source(tmp_path, capsys):
    net = randomised("resnet8x4")
    file = tmp_path / "resnet32x4_vanilla" / "ckpt_epoch_240.pth"
    file.parent.mkdir()
    optim = {"state": {}, "param_groups": [{"lr": 0.1, "params": [0, 1]}]}
    torch.save({"epoch": 240, "model": crd.to_crd(net), "accuracy": torch.tensor(73.1),
                "optimizer": optim}, file)  # fmt: skip
    run = tmp_path / "runs" / "t"
    out = imported(capsys, file, "resnet8x4", run)
    assert "checkpoint['model'], crd names" in out
    assert "accuracy not measured" in out and f"fcfd eval {run} --data-dir" in out

    summary = json.loads((run / "summary.json").read_text())
    assert summary["source"] == {
        "path": str(file.resolve()),
        "sha256": hashlib.sha256(file.read_bytes()).hexdigest(),
        "format": "checkpoint['model']",
        "names": "crd",
        "stripped_prefix": None,
    }
    assert summary["top1"] is None and summary["method"] == "ce"
    assert (summary["arch"], summary["dataset"], summary["input_shape"]) == ("resnet8x4", "cifar100", [3, 32, 32])  # fmt: skip
    config = json.loads((run / "config.json").read_text())
    assert (config["method"], config["student"], config["data"]["dataset"]) == ("ce", "resnet8x4", "cifar100")  # fmt: skip
    assert json.loads((run / "status.json").read_text())["state"] == "completed"
    ckpt = load_checkpoint(run)
    assert ckpt["model"]["num_classes"] == 100 and ckpt["source"] == summary["source"]
    rows = json.loads(ok(capsys, ["runs", str(tmp_path / "runs"), "--json"]))
    assert [(r["name"], r["state"], r["student"]) for r in rows] == [
        ("t", "completed", "resnet8x4")
    ]


def test_bare_and_data_parallel_state_dicts_are_accepted(tmp_path, capsys):
    net = randomised("vgg8")
    torch.save(crd.to_crd(net), tmp_path / "bare.pth")
    wrapped = {"state_dict": {f"module.{k}": v for k, v in crd.to_crd(net).items()}}
    torch.save(wrapped, tmp_path / "dp.pth")
    # a file from PyTorch < 0.4.1 has no num_batches_tracked: it is zero
    old = {k: v for k, v in crd.to_crd(net).items() if not k.endswith("num_batches_tracked")}
    torch.save({"model": old}, tmp_path / "old.pth")
    x = torch.randn(2, 3, 32, 32)
    for name, fmt in (("bare", "state_dict"), ("dp", "checkpoint['state_dict']"), ("old", None)):
        imported(capsys, tmp_path / f"{name}.pth", "vgg8", tmp_path / name, "--json")
        summary = json.loads((tmp_path / name / "summary.json").read_text())
        if fmt:
            assert summary["source"]["format"] == fmt
        with torch.no_grad():
            assert torch.equal(model_from_checkpoint(tmp_path / name)(x), net(x))
    assert summary["source"]["stripped_prefix"] is None
    dp = json.loads((tmp_path / "dp" / "summary.json").read_text())
    assert dp["source"]["stripped_prefix"] == "module."


def test_export_overwrites_only_when_asked(tmp_path, capsys, run):
    out = tmp_path / "w.pt"
    out.write_bytes(b"mine")
    argv = ["export", str(run), "--format", "state_dict", "--out", str(out)]
    fails(capsys, argv, "exists", "--overwrite")
    assert out.read_bytes() == b"mine"
    assert "resnet8" in ok(capsys, [*argv, "--overwrite"])
    assert list(torch.load(out, weights_only=True)) == list(models.create("resnet8").state_dict())
