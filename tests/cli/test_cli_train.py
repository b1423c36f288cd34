"""The ``fcfd`` command line: train-teacher, eval, runs, distill, and its error contract (exit
2, one line on stderr, no traceback, no run directory clobbered)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from fcfd_viz.cli import main
from fcfd_viz.errors import UserError
from fcfd_viz.runs.checkpoints import model_from_checkpoint

pytestmark = pytest.mark.usefixtures("one_thread")

FAST = ["--device", "cpu", "--no-progress"]
SUMMARY_KEYS = {
    "top1",
    "best_top1",
    "top5",
    "best_top5",
    "epochs",
    "seconds",
    "method",
    "arch",
    "student",
    "teacher",
    "dataset",
    "seed",
}


def ok(capsys, argv: list[str]) -> str:
    code = main(argv)
    out, err = capsys.readouterr()
    assert code == 0, err
    return out


def fails(capsys, argv: list[str], *needles: str) -> str:
    """Run ``argv``; it must exit 2 with exactly one line on stderr (containing ``needles``)."""
    code = main(argv)
    out, err = capsys.readouterr()
    assert code == 2, (out, err)
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert "Traceback" not in err and lines[0].startswith("fcfd ")
    for n in needles:
        assert n in lines[0], (n, lines[0])
    return lines[0]


def snapshot(d: Path) -> dict[str, tuple[bytes, int]]:
    return {
        str(p.relative_to(d)): (p.read_bytes(), p.stat().st_mtime_ns)
        for p in sorted(d.rglob("*"))
        if p.is_file()
    }


def untouched_or_absent(d: Path) -> bool:
    return not d.exists() or not any(d.iterdir())


@pytest.fixture(scope="module")
def teacher_run(tmp_path_factory) -> Path:
    """``fcfd train-teacher`` of a tiny resnet8 (1 epoch on 20% of digits)."""
    out = tmp_path_factory.mktemp("cli") / "teacher"
    argv = [
        "train-teacher",
        "--arch",
        "resnet8",
        "--epochs",
        "1",
        "--subset",
        "0.2",
        "--out",
        str(out),
    ]
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # see conftest.one_thread
    try:
        assert main([*argv, *FAST]) == 0
    finally:
        torch.set_num_threads(threads)
    return out


def test_train_teacher_writes_the_run_directory(teacher_run: Path):
    for name in (
        "config.json",
        "metrics.jsonl",
        "last.pt",
        "best.pt",
        "summary.json",
        "status.json",
    ):
        assert (teacher_run / name).is_file(), name
    summary = json.loads((teacher_run / "summary.json").read_text())
    assert SUMMARY_KEYS <= set(summary)
    assert summary["method"] == "ce" and summary["arch"] == summary["student"] == "resnet8"
    assert summary["teacher"] is None and summary["dataset"] == "digits" and summary["seed"] == 0
    assert summary["epochs"] == 1 and 0 <= summary["top1"] <= summary["best_top1"] <= 100
    records = [
        json.loads(line) for line in (teacher_run / "metrics.jsonl").read_text().splitlines()
    ]
    assert len(records) == 1
    keys = {"epoch", "lr", "loss", "losses", "train_top1", "test_top1", "seconds"}
    assert keys | {"train_top5", "test_top5"} <= set(records[0])
    # 10 classes: the top-5 holds the top-1 (all rank-1 hits are top-5 hits)
    assert records[0]["test_top1"] <= records[0]["test_top5"] == summary["top5"] <= 100
    assert summary["best_top5"] == summary["top5"]  # one epoch
    assert set(records[0]["losses"]) == {"ce"}
    config = json.loads((teacher_run / "config.json").read_text())
    assert config["student"] == "resnet8" and config["train"]["epochs"] == 1
    assert config["data"]["subset"] == 0.2 and config["method"] == "ce"
    assert config["method_config"] == {"ce_weight": 1.0} and "method_kwargs" not in config
    assert json.loads((teacher_run / "status.json").read_text())["state"] == "completed"


def test_eval_json(capsys, teacher_run: Path):
    out = ok(capsys, ["eval", str(teacher_run / "best.pt"), "--json", "--device", "cpu"])
    result = json.loads(out)
    assert result["arch"] == "resnet8" and result["dataset"] == "digits" and result["n"] == 360
    summary = json.loads((teacher_run / "summary.json").read_text())
    assert result["top1"] == pytest.approx(summary["best_top1"], abs=1e-9)
    assert result["top5"] == pytest.approx(summary["best_top5"], abs=1e-9)  # one epoch
    assert result["top5_k"] == 5
    # a run directory works too, and the plain output is one line
    out = ok(capsys, ["eval", str(teacher_run), "--device", "cpu"])
    assert out.count("\n") == 1 and "resnet8 on digits" in out and "top-5" in out


def test_runs_lists_the_run(capsys, teacher_run: Path):
    out = ok(capsys, ["runs", str(teacher_run.parent)])
    header, *rows = out.strip().splitlines()
    assert header.split()[:3] == ["name", "method", "student"]
    row = next(r for r in rows if r.split()[0] == "teacher")
    assert row.split()[1:3] == ["ce", "resnet8"] and "completed" in row
    rows = json.loads(ok(capsys, ["runs", str(teacher_run.parent), "--json"]))
    assert [r["name"] for r in rows if r["run"] == str(teacher_run)] == ["teacher"]
    assert "no runs" in ok(capsys, ["runs", str(teacher_run / "nothing-here")])


def test_distill_kd(capsys, teacher_run: Path, tmp_path: Path):
    out = tmp_path / "kd"
    argv = [
        "distill",
        "--method",
        "kd",
        "--teacher",
        str(teacher_run / "best.pt"),
        "--student",
        "resnet8",
    ]
    printed = ok(capsys, [*argv, "--epochs", "1", "--subset", "0.1", "--out", str(out), *FAST])
    assert "kd resnet8 on digits" in printed
    summary = json.loads((out / "summary.json").read_text())
    assert SUMMARY_KEYS <= set(summary)
    assert summary["method"] == "kd" and summary["teacher"] == str(teacher_run / "best.pt")
    record = json.loads((out / "metrics.jsonl").read_text().splitlines()[0])
    assert set(record["losses"]) == {"ce", "kd"}
    config = json.loads((out / "config.json").read_text())
    assert config["method"] == "kd"
    assert config["method_config"] == {"ce_weight": 1.0, "temperature": 4.0, "kd_weight": 1.0}


def test_entry_points():
    """The console script is installed and runs (``python -m fcfd_viz`` runs in test_ddp)."""
    fcfd = Path(sys.executable).parent / "fcfd"
    r = subprocess.run([str(fcfd), "--help"], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    for cmd in ("train-teacher", "distill", "eval", "runs", "models", "presets"):
        assert cmd in r.stdout


# ------------------------------------------------------------------ error contract
def test_unknown_arch(capsys, tmp_path: Path):
    out = tmp_path / "new"
    fails(
        capsys,
        ["train-teacher", "--arch", "resnet9", "--epochs", "1", "--out", str(out), *FAST],
        "resnet9",
        "Did you mean",
        "resnet8",
    )
    fails(
        capsys,
        [
            "distill",
            "--method",
            "ce",
            "--student",
            "resnet8x5",
            "--epochs",
            "1",
            "--out",
            str(out),
            *FAST,
        ],
        "resnet8x4",
    )
    assert untouched_or_absent(out)


def test_missing_checkpoint(capsys, tmp_path: Path):
    missing = tmp_path / "nope.pt"
    fails(capsys, ["eval", str(missing)], "not found", str(missing))
    out = tmp_path / "new"
    argv = [
        "distill",
        "--method",
        "kd",
        "--teacher",
        str(missing),
        "--epochs",
        "1",
        "--out",
        str(out),
        *FAST,
    ]
    fails(capsys, argv, "not found")
    assert untouched_or_absent(out)


def test_corrupt_checkpoint(capsys, tmp_path: Path, teacher_run: Path):
    bad = tmp_path / "bad.pt"
    bad.write_bytes((teacher_run / "best.pt").read_bytes()[:2000])  # a truncated checkpoint
    fails(capsys, ["eval", str(bad)], "unreadable", str(bad))
    out = tmp_path / "new"
    fails(
        capsys,
        [
            "distill",
            "--method",
            "kd",
            "--teacher",
            str(bad),
            "--epochs",
            "1",
            "--out",
            str(out),
            *FAST,
        ],
        "unreadable",
    )
    assert untouched_or_absent(out)


def test_checkpoint_of_another_arch(capsys, teacher_run: Path):
    ckpt = str(teacher_run / "best.pt")
    fails(capsys, ["eval", ckpt, "--arch", "resnet32x4"], "holds a resnet8, not a resnet32x4")
    assert (
        json.loads(ok(capsys, ["eval", ckpt, "--arch", "resnet8", "--json"]))["arch"] == "resnet8"
    )
    # the library call behind it
    with pytest.raises(UserError, match="holds a resnet8, not a resnet32x4"):
        model_from_checkpoint(ckpt, expect_arch="resnet32x4")


@pytest.mark.parametrize("cmd", ["train-teacher", "distill"])
@pytest.mark.parametrize("epochs", ["0", "-1"])
def test_epochs_must_be_positive(capsys, tmp_path: Path, cmd: str, epochs: str):
    out = tmp_path / "new"
    fails(
        capsys,
        [cmd, "--epochs", epochs, "--out", str(out), *FAST],
        f"epochs must be > 0, got {epochs}",
    )
    assert untouched_or_absent(out)


def test_existing_out_is_never_clobbered(capsys, teacher_run: Path):
    before = snapshot(teacher_run)
    argv = ["train-teacher", "--arch", "resnet8", "--epochs", "1", "--out", str(teacher_run), *FAST]
    fails(capsys, argv, "not empty", "--resume", "--overwrite")
    argv = [
        "distill",
        "--method",
        "kd",
        "--teacher",
        str(teacher_run),
        "--epochs",
        "1",
        "--out",
        str(teacher_run),
        *FAST,
    ]
    fails(capsys, argv, "not empty")
    # --overwrite with a bad option fails before anything is deleted
    argv = [
        "train-teacher",
        "--arch",
        "resnet8",
        "--epochs",
        "0",
        "--overwrite",
        "--out",
        str(teacher_run),
        *FAST,
    ]
    fails(capsys, argv, "epochs")
    assert snapshot(teacher_run) == before


def test_method_needs_a_teacher(capsys, tmp_path: Path):
    out = tmp_path / "new"
    for method in ("kd", "fcfd", "fitnet", "dkd", "fcfd+dkd"):
        fails(
            capsys,
            ["distill", "--method", method, "--epochs", "1", "--out", str(out), *FAST],
            "needs a teacher",
            "--teacher",
        )
    assert untouched_or_absent(out)


def test_teacher_of_other_data(capsys, tmp_path: Path, teacher_run: Path):
    """The teacher was trained on digits at 16x16: a 24x24 or a CIFAR student cannot use it."""
    out = tmp_path / "new"
    base = [
        "distill",
        "--method",
        "kd",
        "--teacher",
        str(teacher_run),
        "--epochs",
        "1",
        "--out",
        str(out),
        *FAST,
    ]
    fails(
        capsys,
        [*base, "--image-size", "24"],
        "[3, 16, 16]",
        "[3, 24, 24]",
        "same dataset and image size",
    )
    fails(
        capsys,
        [*base, "--dataset", "cifar10", "--data-dir", str(tmp_path)],
        "cifar10",
        "same dataset and image size",
    )
    assert untouched_or_absent(out)
