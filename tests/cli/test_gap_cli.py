"""``fcfd gap``: JSON keys, HTML output, and exit 2 on a mismatched teacher/student pair."""

from __future__ import annotations

import json

import pytest
import torch

from fcfd_viz import distill, models
from fcfd_viz.cli import main
from fcfd_viz.runs.checkpoints import save_checkpoint

SHAPE = [3, 16, 16]
FAST = ["--fit-max-epochs", "3", "--fit-data", "student", "--no-progress"]


# tiny tensors: one thread avoids OpenMP spin-waits when the CPU is shared
pytestmark = pytest.mark.usefixtures("one_thread_module")


@pytest.fixture(scope="module")
def ckpts(tmp_path_factory):
    root = tmp_path_factory.mktemp("gapcli")
    torch.manual_seed(0)
    teacher = models.create("resnet8", num_classes=10).eval()
    paths = {"teacher": root / "teacher.pt"}
    save_checkpoint(
        paths["teacher"],
        {
            "model": teacher.spec(),
            "state_dict": teacher.state_dict(),
            "dataset": "digits",
            "input_shape": SHAPE,
        },
    )
    for method in ("kd", "fcfd"):
        d = distill.create(
            method, models.create("resnet8", num_classes=10), teacher, input_shape=SHAPE
        )
        paths[method] = root / f"{method}.pt"
        save_checkpoint(
            paths[method],
            {
                **d.checkpoint_state(),
                "dataset": "digits-hard",
                "input_shape": SHAPE,
                "seed": 0,
                "teacher": str(paths["teacher"]),
            },
        )
    paths["cifar"] = root / "cifar.pt"
    save_checkpoint(
        paths["cifar"],
        {
            "model": teacher.spec(),
            "state_dict": teacher.state_dict(),
            "dataset": "cifar10",
            "input_shape": [3, 32, 32],
            "method": {"method": "kd"},
        },
    )
    return paths


@pytest.mark.parametrize("method", ["lstsq", "adam"])
def test_gap_json(ckpts, capsys, method):
    rc = main(
        [
            "gap",
            "--teacher",
            str(ckpts["teacher"]),
            "--student",
            str(ckpts["kd"]),
            "--student",
            str(ckpts["fcfd"]),
            "--json",
            "--fit-method",
            method,
            *FAST,
        ]
    )
    d = json.loads(capsys.readouterr().out)
    assert rc == 0
    for key in (
        "bn",
        "bn_label",
        "stages",
        "num_images",
        "teacher_accuracy",
        "students",
        "reading",
        "teacher",
    ):
        assert key in d, key
    assert d["bn"] == "eval" and d["stages"] == [1, 2, 3] and d["num_images"] == 360
    assert set(d["students"]) == {"kd (fitted)", "fcfd (own bridges)", "fcfd (fitted)"}
    for name, s in d["students"].items():
        for key in ("appearance", "functional", "reverse", "path_accuracy", "fit", "accuracy"):
            assert key in s, (name, key)
        assert set(s["appearance"]) == set(s["functional"]) == {"1", "2", "3"}
        assert all(v >= 0 for v in s["functional"].values())
        assert {"SSTT", "SSST", "TTSS", "TTTS"} <= set(s["path_accuracy"])
    fit = d["students"]["kd (fitted)"]["fit"]
    assert fit["num_images"] < 200 and fit["config"]["method"] == method  # 10% of 1437
    if method == "adam":  # the loop hits the 3-epoch cap
        assert fit["epochs"] == 3 and not fit["converged"]
    else:  # the solve, then the LeakyReLU bridges' refinement, capped by --fit-max-epochs
        assert fit["epochs"] == 3 and fit["converged"]
        for b in fit["bridges"].values():
            assert b["final_loss"] == b["kept_mse"] <= b["curve"][0]
    assert d["students"]["fcfd (own bridges)"]["fit"] is None


def test_gap_batch_html_no_fit(ckpts, tmp_path, capsys):
    out = tmp_path / "figs" / "gap.html"
    rc = main(
        [
            "gap",
            "--student",
            str(ckpts["fcfd"]),
            "--bn",
            "batch",
            "--no-fit",
            "--html",
            str(out),
            "--no-progress",
        ]
    )  # the teacher comes from the student's checkpoint
    text = capsys.readouterr().out
    assert rc == 0
    assert "batch-statistics" in text and "functional KL" in text and str(out) in text
    html = out.read_text()
    assert "plotly" in html and "Appearance vs functional gap" in html and "Mixed-path" in html
    assert not list(out.parent.glob(".*.tmp"))


@pytest.mark.parametrize(
    "extra, match",
    [
        (["--student", "CIFAR"], "cifar10"),
        (["--student", "KD", "--no-fit"], "drop --no-fit"),  # not "pass a training loader"
        (["--student", "KD", "--fit-max-epochs", "0"], "max_epochs"),
        (["--student", "KD", "--fit-method", "sgd"], "fit method"),
        (["--student", "KD", "--fit-ridge", "-1"], "ridge"),
        (["--student", "KD", "--fit-images", "0"], "number of images"),
    ],
)
def test_gap_errors_exit_2(ckpts, capsys, extra, match):
    extra = [str(ckpts[a.lower()]) if a in ("CIFAR", "KD") else a for a in extra]
    rc = main(["gap", "--teacher", str(ckpts["teacher"]), *extra, "--no-progress"])
    err = capsys.readouterr().err
    assert rc == 2
    assert len(err.strip().splitlines()) == 1 and match in err and "Traceback" not in err


def test_fit_data_choice(ckpts):
    from fcfd_viz.analysis.gap.inputs import gap_loaders, load_students

    loaded = load_students([ckpts["kd"]], ckpts["teacher"])
    test, full = gap_loaders(loaded)
    _, own = gap_loaders(loaded, "student")
    assert len(test.dataset) == 360 and len(full["kd"].dataset) == 1437
    assert len(own["kd"].dataset) < 200  # the student's 10% digits-hard subset
    # --fit-images: a prefix of that data, the same images for every student
    _, few = gap_loaders(loaded, fit_images=50)
    _, y_few = next(iter(few["kd"]))
    _, y_full = next(iter(full["kd"]))  # (the training split's images are augmented)
    assert len(few["kd"].dataset) == 50 and torch.equal(y_few, y_full[:50])
    assert len(set(y_few.tolist())) == 10  # the split is shuffled: every class in a prefix
    _, same = gap_loaders(loaded, fit_images=10_000)
    assert len(same["kd"].dataset) == 1437


def test_gap_spectrum_json_text_and_html(ckpts, capsys, tmp_path):
    """``--spectrum N``: the error spectrum of every entry (kd fitted; fcfd fitted and through
    its own bridges) on N images, the predictor comparison, two more figures; none without it."""
    args = ["gap", "--teacher", str(ckpts["teacher"]), "--student", str(ckpts["kd"])]
    args += ["--student", str(ckpts["fcfd"]), *FAST]
    html = tmp_path / "gap.html"
    assert main([*args, "--json", "--spectrum", "8", "--html", str(html)]) == 0
    d = json.loads(capsys.readouterr().out)
    spec = d["spectrum"]
    assert spec["images"] == 8 and spec["stages"] == d["stages"]
    assert set(spec["entries"]) == set(d["students"])
    for e in spec["entries"].values():
        assert set(e["means"]) == {"l2", "fisher", "kl"}
        assert all(len(e["means"][m]) == len(d["stages"]) for m in e["means"])
        # the cumulative share runs up to the rank of the tail's Fisher metric: K - 1 = 9
        assert all(len(s) == 9 and s == sorted(s) for s in e["share"])
    assert set(spec["predictors"]) == {"l2", "fisher", "points", "per_stage"}
    assert set(spec["predictors"]["per_stage"]) == {str(k) for k in d["stages"]}
    page = html.read_text()
    assert "Where the appearance error lies" in page and "predicts function" in page
    assert main([*args, "--spectrum", "8"]) == 0
    text = capsys.readouterr().out
    assert "error spectrum (8 test images" in text and "Spearman with the KL" in text
    assert main([*args, "--json"]) == 0
    assert "spectrum" not in json.loads(capsys.readouterr().out)
    assert main([*args, "--spectrum", "0"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "--spectrum" in err
