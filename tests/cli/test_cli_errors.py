"""Issue #11 through the command line: what ``--overwrite`` may delete, and bad input as one
line with exit status 2 (never a traceback), nothing lost or overwritten."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from helpers import FAST, fails, snapshot

from fcfd_viz.cli import main
from fcfd_viz.runs.checkpoints import save_checkpoint

pytestmark = pytest.mark.usefixtures("one_thread")

CE = ["distill", "--method", "ce", "--student", "resnet8", "--subset", "0.1", "--epochs", "1"]


def kd(teacher: Path, out: Path, *extra: str) -> list[str]:
    return ["distill", "--method", "kd", "--teacher", str(teacher), "--student", "resnet8",
            "--subset", "0.1", "--epochs", "1", "--out", str(out), *FAST, *extra]  # fmt: skip


@pytest.fixture
def teacher(digits_teacher: Path, tmp_path: Path) -> Path:
    """A private copy of the session's teacher run (a test may try to clobber it)."""
    dst = tmp_path / "teacher"
    shutil.copytree(digits_teacher, dst)
    return dst


# ------------------------------------------------------------------ 1. --overwrite
def test_overwrite_refuses_a_folder_that_is_not_a_run(capsys, tmp_path: Path):
    thesis = tmp_path / "thesis"
    (thesis / "chapters").mkdir(parents=True)
    (thesis / "thesis.tex").write_text("years of work")
    (thesis / "chapters" / "one.tex").write_text("more")
    before = snapshot(thesis)
    fails(capsys, [*CE, "--out", str(thesis), "--overwrite", *FAST], "not a run directory",
          "chapters", "thesis.tex")  # fmt: skip
    assert snapshot(thesis) == before
    # a run directory with one foreign file in it is not replaced either
    run = tmp_path / "run"
    assert main([*CE, "--out", str(run), *FAST]) == 0
    (run / "notes.txt").write_text("mine")
    before = snapshot(run)
    fails(capsys, [*CE, "--out", str(run), "--overwrite", *FAST], "notes.txt")
    assert snapshot(run) == before


def test_overwrite_never_replaces_the_teacher(capsys, teacher: Path):
    before = snapshot(teacher.parent)
    for target in (teacher, teacher.parent):  # the teacher's run, or a folder holding it
        fails(capsys, kd(teacher, target, "--overwrite"), "holds the teacher")
        fails(capsys, kd(teacher / "best.pt", target, "--overwrite"), "holds the teacher")
    assert snapshot(teacher.parent) == before
    assert json.loads((teacher / "config.json").read_text())["teacher"] is None


def test_overwrite_replaces_a_run_directory(capsys, tmp_path: Path):
    run = tmp_path / "run"
    assert main([*CE, "--out", str(run), *FAST]) == 0
    (run / ".last.pt.stale.tmp").write_bytes(b"")  # left by a killed writer: a run file too
    capsys.readouterr()
    assert main([*CE, "--out", str(run), "--overwrite", "--seed", "5", *FAST]) == 0
    assert json.loads((run / "config.json").read_text())["train"]["seed"] == 5
    assert not list(run.glob("*.tmp"))


@pytest.mark.parametrize("device", ["foo", "cuda:99"])
def test_overwrite_checks_the_device_before_deleting(capsys, tmp_path: Path, device):
    """Issue #29: ``--device cuda --overwrite`` on a CPU machine (or ``--device foo``, a
    traceback) deleted every file of the old run first; without --overwrite it left a folder
    holding only ``.writer.lock``. (cuda:99: no machine has it, with or without CUDA.)"""
    run = tmp_path / "run"
    assert main([*CE, "--out", str(run), *FAST]) == 0
    before = snapshot(run)
    bad = [*CE, "--no-progress", "--device", device]
    fails(capsys, [*bad, "--out", str(run), "--overwrite"], "--device")
    assert snapshot(run) == before
    fails(capsys, [*bad, "--out", str(tmp_path / "new")], "--device")
    assert not (tmp_path / "new").exists()


def test_a_run_never_goes_inside_another(capsys, tmp_path: Path):
    """Issue #29: ``--out runs/done/nested`` was accepted; deleting ``done`` then took the
    nested run from under its trainer."""
    done = tmp_path / "done"
    assert main([*CE, "--out", str(done), *FAST]) == 0
    before = snapshot(done)
    for nested in (done / "nested", done / "tb" / "x", done / "a" / "b"):
        fails(capsys, [*CE, "--out", str(nested), *FAST], "inside the run directory", str(done))
    assert snapshot(done) == before and sorted(p.name for p in done.iterdir()) == sorted(
        {Path(k).parts[0] for k in before}
    )
    # a folder holding runs is not replaced by one
    fails(capsys, [*CE, "--out", str(tmp_path), "--overwrite", *FAST], "not a run directory")
    assert snapshot(done) == before


def test_overwrite_replaces_only_our_runs(capsys, tmp_path: Path):
    """Issue #29: a folder holding another tool's ``config.json`` and ``status.json`` was
    replaced by --overwrite: file names do not make a run. Runs of earlier versions (no
    format marker, our keys) still are ours."""
    other = tmp_path / "other"
    other.mkdir()
    (other / "config.json").write_text('{"model": "bert", "lr": 0.1}')
    (other / "status.json").write_text('{"state": "done"}')
    before = snapshot(other)
    fails(capsys, [*CE, "--out", str(other), "--overwrite", *FAST], "not an fcfd-viz run")
    (other / "config.json").unlink()  # results of someone, no config.json: not ours either
    fails(capsys, [*CE, "--out", str(other), "--overwrite", *FAST], "no config.json")
    assert set(snapshot(other)) == set(before) - {"config.json"}
    run = tmp_path / "run"
    assert main([*CE, "--out", str(run), *FAST]) == 0
    config = json.loads((run / "config.json").read_text())
    assert config["format"] == "fcfd-viz/run-1"
    del config["format"]  # as written before the marker
    (run / "config.json").write_text(json.dumps(config))
    capsys.readouterr()
    assert main([*CE, "--out", str(run), "--overwrite", "--seed", "3", *FAST]) == 0
    assert json.loads((run / "config.json").read_text())["train"]["seed"] == 3


def _other_network(best: Path) -> None:
    """Replace the checkpoint ``best`` by another network of the same architecture."""
    ckpt = torch.load(best, weights_only=True)
    ckpt["state_dict"] = {k: v + 1 if v.is_floating_point() else v
                          for k, v in ckpt["state_dict"].items()}  # fmt: skip
    save_checkpoint(best, {k: v for k, v in ckpt.items() if k != "format"})


def test_the_teacher_is_pinned_by_path_and_hash(capsys, teacher: Path, monkeypatch):
    """Issue #29: the teacher was recorded as typed (``runs/teacher``), so a resume from
    another directory distilled from another network; and a replaced teacher went unseen."""
    from fcfd_viz.runs.provenance import file_sha256

    monkeypatch.chdir(teacher.parent)
    student = teacher.parent / "kd"
    argv = kd(Path("teacher"), Path("kd"), "--epochs", "2")
    argv[argv.index("--teacher") + 1] = "teacher"  # relative, as typed
    assert main(argv) == 0
    config = json.loads((student / "config.json").read_text())
    assert config["teacher"] == str(teacher)
    assert config["teacher_sha256"] == file_sha256(teacher / "best.pt")
    elsewhere = teacher.parent / "elsewhere"
    shutil.copytree(teacher, elsewhere / "teacher")  # another "teacher" there
    _other_network(elsewhere / "teacher" / "best.pt")
    monkeypatch.chdir(elsewhere)  # the recorded path still names the right one
    assert main(["distill", "--resume", "--out", str(student), *FAST]) == 0
    _other_network(teacher / "best.pt")  # the recorded teacher, replaced
    before = snapshot(student)
    line = fails(capsys, ["distill", "--resume", "--out", str(student), *FAST], "changed since")
    assert config["teacher_sha256"][:12] in line and str(teacher / "best.pt") in line
    fails(capsys, ["gap", "--student", str(student), "--no-progress"], "changed since")
    assert snapshot(student) == before


def test_replacing_a_teacher_students_name_needs_force(capsys, teacher: Path):
    """Issue #29: ``train-teacher --overwrite`` of a teacher that students were distilled
    from succeeded silently, and ``fcfd gap`` then measured against the new network."""
    student = teacher.parent / "kd"
    assert main(kd(teacher, student)) == 0
    before = snapshot(teacher)
    again = ["train-teacher", "--arch", "resnet8", "--subset", "0.1", "--epochs", "1",
             "--seed", "7", "--out", str(teacher), "--overwrite", *FAST]  # fmt: skip
    fails(capsys, again, "is the teacher of", str(student), "--force")
    assert snapshot(teacher) == before
    capsys.readouterr()
    assert main([*again, "--force"]) == 0
    fails(capsys, ["gap", "--student", str(student), "--no-progress"], "changed since")


# ------------------------------------------------------------------ 5. one line, exit 2
def test_out_that_is_a_file_or_lies_under_one(capsys, tmp_path: Path):
    f = tmp_path / "file"
    f.write_text("keep")
    fails(capsys, [*CE, "--out", str(f), *FAST], "is a file", "choose another --out")
    fails(capsys, [*CE, "--out", str(f / "run"), *FAST], "is a file")
    assert f.read_text() == "keep"


@pytest.mark.parametrize(
    "flags, needle",
    [
        (["--batch-size", "0"], "--batch-size must be an integer >= 1, got 0"),
        (["--workers", "-1"], "--workers must be an integer >= 0, got -1"),
        (["--lr", "nan"], "--lr must be a finite number > 0, got nan"),
        (["--lr", "inf"], "--lr must be a finite number > 0"),
        (["--subset", "nan"], "--subset"),
        # oneDNN issue 6035: this model's fp32 channels_last backward corrupts memory
        (["--student", "resnet8_w025", "--channels-last"], "run without --channels-last"),
    ],
)
def test_values_no_run_can_use(capsys, tmp_path: Path, flags, needle):
    fails(capsys, [*CE, "--out", str(tmp_path / "new"), *FAST, *flags], needle)
    assert not (tmp_path / "new").exists()


@pytest.mark.parametrize(
    "flags, needle",
    [
        (["--temperature", "0"], "--temperature must be a finite number > 0, got 0.0"),
        (["--kd-weight", "nan"], "--kd-weight"),
    ],
)
def test_method_knobs_no_run_can_use(capsys, tmp_path: Path, digits_teacher, flags, needle):
    fails(capsys, kd(digits_teacher, tmp_path / "new", *flags), needle)
    assert not (tmp_path / "new").exists()


def test_resume_without_a_readable_config(capsys, tmp_path: Path):
    run = tmp_path / "run"
    assert main([*CE, "--out", str(run), *FAST]) == 0
    good = (run / "config.json").read_text()
    for junk in (b"{not json", b"[1, 2]", b'{"method": "ce"}', b"\xff\xfe"):
        (run / "config.json").write_bytes(junk)
        before = snapshot(run)
        fails(capsys, ["distill", "--resume", "--out", str(run), *FAST], "cannot resume")
        assert snapshot(run) == before
    (run / "config.json").unlink()
    fails(capsys, ["distill", "--resume", "--out", str(run), *FAST], "config.json not found")
    (run / "config.json").write_text(good)
    (run / "last.pt").unlink()
    fails(capsys, ["distill", "--resume", "--out", str(run), *FAST], "last.pt not found")


@pytest.mark.parametrize(
    "spec",
    [
        {"arch": 5},
        "resnet8",
        {"arch": "resnet8", "num_classes": "ten"},
        {"arch": "resnet8", "num_classes": 10, "arch_kwargs": {"bogus": 1}},
    ],  # fmt: skip
)
def test_checkpoint_with_a_malformed_model_spec(capsys, tmp_path: Path, spec):
    bad = tmp_path / "bad.pt"
    meta = {"dataset": "digits", "input_shape": [3, 16, 16]}  # a teacher the data would fit
    save_checkpoint(bad, {"model": spec, "state_dict": {"w": torch.zeros(1)}, **meta})
    fails(capsys, ["eval", str(bad)], "malformed model spec")
    fails(capsys, kd(bad, tmp_path / "new"), "malformed model spec")
    assert not (tmp_path / "new").exists()


def test_a_closed_pipe_ends_quietly():
    """``fcfd presets | head -1``: the reader is gone before the writer writes."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "fcfd_viz", "presets"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    proc.stdout.close()  # deterministic: every write of the command meets a closed pipe
    err = proc.stderr.read().decode()
    proc.wait(timeout=120)
    assert err == "" and proc.returncode == 1, err


@pytest.mark.parametrize("argv", [["runs", "{tmp}"], [*CE, "--out", "{tmp}/run", *FAST]])
def test_a_closed_stdout_is_no_error(tmp_path: Path, argv):
    """``fcfd runs >&-``: the command did its work, then AttributeError on None.flush, rc 1."""
    cmd = " ".join(a.format(tmp=tmp_path) for a in argv)
    proc = subprocess.run(
        ["sh", "-c", f"exec {sys.executable} -m fcfd_viz {cmd} >&-"],
        capture_output=True, text=True, timeout=240,
    )  # fmt: skip
    assert proc.returncode == 0 and proc.stderr == "", proc.stderr
    if "--out" in argv:
        assert json.loads((tmp_path / "run" / "status.json").read_text())["state"] == "completed"


def _deep(path: Path) -> None:
    path.write_text("[" * 900 + "]" * 900)


def _bomb(path: Path) -> None:  # 9**5 values by reference, a few hundred bytes of YAML
    lines, prev = ["a0: &a0 [1, 1, 1, 1, 1, 1, 1, 1, 1]"], "a0"
    for i in range(1, 6):
        lines.append(f"a{i}: &a{i} [{', '.join([f'*{prev}'] * 9)}]")
        prev = f"a{i}"
    path.write_text("\n".join(lines))


@pytest.mark.parametrize(
    "make, needle",
    [
        (lambda p: p.write_bytes(b"PK\x03\x04\x80\x02\xff\xfe" * 64), "not a text file"),
        (_deep, "nested deeper than"),
        (lambda p: p.write_text("x: " + "y" * (2 << 20)), "larger than 1 MiB"),
        (_bomb, "more than 10000 values"),
    ],
    ids=["binary", "deep", "huge", "alias-bomb"],
)
def test_a_config_that_is_no_settings_file(capsys, tmp_path: Path, make, needle):
    """Issue #29: a checkpoint as --config (UnicodeDecodeError), 900 nested lists
    (RecursionError, 3000 lines), /dev/zero (no cap: OOM-killed at 23 GB)."""
    config = tmp_path / "c.yaml"
    make(config)
    fails(capsys, [*CE, "--config", str(config), "--out", str(tmp_path / "new")], needle)
    assert not (tmp_path / "new").exists()


def test_config_from_dev_zero_stops_at_the_cap(tmp_path: Path):
    """``--config /dev/zero`` grew to 23 GB before the OOM killer came; here in a process
    capped at 10 GB of address space (torch maps a few), so a regression ends in a
    MemoryError instead of taking the machine."""
    out = tmp_path / "n"
    cmd = f"ulimit -v 10000000; exec {sys.executable} -m fcfd_viz distill --config /dev/zero"
    proc = subprocess.run(["sh", "-c", f"{cmd} --out {out}"], capture_output=True, text=True,
                          timeout=120)  # fmt: skip
    assert proc.returncode == 2 and "larger than 1 MiB" in proc.stderr, proc.stderr[-300:]
    assert len(proc.stderr.strip().splitlines()) == 1 and not out.exists()


def test_a_seed_no_generator_takes(capsys, tmp_path: Path):
    """``--seed 2**70`` (flag or config): ValueError: Overflow (issue #29)."""
    big = str(2**70)
    fails(capsys, [*CE, "--seed", big, "--out", str(tmp_path / "n"), *FAST], "--seed", big)
    config = tmp_path / "c.yaml"
    config.write_text(f"train:\n  seed: {big}\n")
    fails(capsys, [*CE, "--config", str(config), "--out", str(tmp_path / "n"), *FAST], "--seed")
    assert not (tmp_path / "n").exists()


@pytest.mark.parametrize(
    "value, needle",
    [("1.5", "train.epochs must be an integer, got 1.5 (float)"),
     ("true", "train.epochs must be an integer, got True (true/false)")],
)  # fmt: skip
def test_a_config_value_of_the_wrong_kind_names_the_kind(capsys, tmp_path: Path, value, needle):
    """Issue #29: `epochs: 1.5` / `true` answered "epochs must be > 0, got 1.5"."""
    config = tmp_path / "c.yaml"
    config.write_text(f"train:\n  epochs: {value}\n  milestones: [2]\n  lr: 1\n")
    fails(capsys, [*CE, "--config", str(config), "--out", str(tmp_path / "n"), *FAST], needle)
    assert not (tmp_path / "n").exists()


def test_resume_names_the_flags_it_ignores(capsys, tmp_path: Path):
    """Issue #29: `--resume` silently ignored --epochs, --method, --teacher, --overwrite."""
    run = tmp_path / "run"
    assert main([*CE, "--out", str(run), *FAST]) == 0
    capsys.readouterr()
    extra = ["--epochs", "5", "--method", "kd", "--teacher", str(run), "--overwrite"]
    assert main(["distill", "--resume", "--out", str(run), "--no-progress", *extra]) == 0
    err = capsys.readouterr().err
    note = [ln for ln in err.splitlines() if "note: --resume continues" in ln]
    assert len(note) == 1, err
    for flag in ("--epochs", "--method", "--teacher", "--overwrite"):
        assert flag in note[0], (flag, note[0])
    assert json.loads((run / "config.json").read_text())["train"]["epochs"] == 1
    main(["distill", "--resume", "--out", str(run), "--no-progress"])
    assert "note" not in capsys.readouterr().err  # nothing given: nothing said
