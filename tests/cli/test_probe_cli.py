"""``fcfd probe``: JSON keys, HTML output, and clean exit-2 errors."""

from __future__ import annotations

import json

import pytest
import torch

from fcfd_viz import models
from fcfd_viz.checkpoints import save_checkpoint
from fcfd_viz.cli import main

FAST = ["--images", "4", "--n-random", "6", "--k-jacobian", "2", "--no-progress"]


# tiny tensors: one thread avoids OpenMP spin-waits when the CPU is shared
pytestmark = pytest.mark.usefixtures("one_thread_module")


@pytest.fixture(scope="module")
def ckpt(tmp_path_factory):
    torch.manual_seed(0)
    net = models.create("resnet8", num_classes=10)
    path = tmp_path_factory.mktemp("probe") / "resnet8.pt"
    save_checkpoint(
        path,
        {
            "model": net.spec(),
            "state_dict": net.state_dict(),
            "dataset": "digits",
            "input_shape": [3, 16, 16],
        },
    )
    return path


def test_probe_json(ckpt, capsys):
    rc = main(
        [
            "probe",
            str(ckpt),
            "--stage",
            "1",
            "--json",
            "--attribution",
            "grad_x_act,ablation",
            *FAST,
        ]
    )
    out = capsys.readouterr().out
    assert rc == 0
    d = json.loads(out)
    for key in (
        "anisotropy_ratio",
        "p95_p5_ratio",
        "channel_sensitivity",
        "spearman",
        "stage",
        "eps",
        "mode",
        "divergence",
        "random_p5",
        "random_p95",
        "jacobian",
        "attribution",
        "arch",
        "dataset",
    ):
        assert key in d, key
    assert (
        d["stage"] == 1 and d["eps"] == 0.05 and d["mode"] == "exact" and d["dataset"] == "digits"
    )
    sens = d["channel_sensitivity"]
    assert len(sens) == 16 and d["num_images"] == 4
    assert d["anisotropy_ratio"] == pytest.approx(max(sens) / min(sens))
    assert set(d["spearman"]) == {"grad_x_act", "ablation"}
    assert all(-1 <= v <= 1 for v in d["spearman"].values())
    assert len(d["jacobian"]["top_singular_values"]) == 2


def test_probe_fisher_absolute_and_html(ckpt, tmp_path, capsys):
    out = tmp_path / "figs" / "probe.html"
    rc = main(
        [
            "probe",
            str(ckpt),
            "--stage",
            "2",
            "--mode",
            "fisher",
            "--eps",
            "0.5",
            "--absolute",
            "--directions",
            "channel,random",
            "--attribution",
            "none",
            "--html",
            str(out),
            *FAST,
        ]
    )
    text = capsys.readouterr().out
    assert rc == 0
    assert "max/min" in text and str(out) in text
    html = out.read_text()
    assert "plotly" in html and "channel sensitivity" in html
    assert not list(out.parent.glob(".*.tmp"))  # atomic write left no temp file


@pytest.mark.parametrize(
    "extra, match",
    [
        (["--stage", "9"], "stage 9"),
        (["--stage", "-1"], "stage -1"),
        (["--stage", "1", "--eps", "0"], "eps"),
        (["--stage", "1", "--eps", "-0.1"], "eps"),
        (["--stage", "1", "--directions", "channel,up"], "up"),
        (["--stage", "1", "--attribution", "lime"], "lime"),
    ],
)
def test_probe_errors_exit_2(ckpt, capsys, extra, match):
    rc = main(["probe", str(ckpt), *extra, *FAST])
    err = capsys.readouterr().err
    assert rc == 2
    assert len(err.strip().splitlines()) == 1 and match in err and "Traceback" not in err


def test_missing_checkpoint_exit_2(tmp_path, capsys):
    rc = main(["probe", str(tmp_path / "nope.pt"), "--stage", "1"])
    err = capsys.readouterr().err
    assert rc == 2 and len(err.strip().splitlines()) == 1 and "not found" in err


def test_checkpoint_without_dataset_needs_flag(tmp_path, capsys):
    net = models.create("resnet8", num_classes=10)
    path = tmp_path / "nodata.pt"
    save_checkpoint(path, {"model": net.spec(), "state_dict": net.state_dict()})
    assert main(["probe", str(path), "--stage", "1", *FAST]) == 2
    assert "--dataset" in capsys.readouterr().err
