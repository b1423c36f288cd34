"""Run directories (fcfd_viz.runs.layout): refusal to clobber, atomic files, torn metrics lines."""

from __future__ import annotations

from pathlib import Path

import pytest

from fcfd_viz.errors import UserError
from fcfd_viz.runs.layout import Run
from fcfd_viz.runs.writer import prepare


def create(out: Path, resume: bool = False, overwrite: bool = False) -> Run:
    """A run folder made ready as the trainer makes it (the writer checks, then a Run)."""
    prepare(out, resume=resume, overwrite=overwrite)
    return Run(out)


def test_run_create_refuses_non_empty_and_overwrite_replaces(tmp_path: Path):
    out = tmp_path / "run"
    run = create(out)  # a new directory
    assert out.is_dir() and run.path == out
    (out / "metrics.jsonl").write_text("precious\n")
    with pytest.raises(UserError, match="not empty"):
        create(out)
    assert (out / "metrics.jsonl").read_text() == "precious\n"
    # results without the config.json of a run are nobody's we know: not replaced (#29)
    with pytest.raises(UserError, match="no config.json"):
        create(out, overwrite=True)
    (out / "config.json").write_text('{"format": "fcfd-viz/run-1"}')
    create(out, overwrite=True)
    assert out.is_dir() and list(out.iterdir()) == []
    create(out)  # an existing empty directory is fine
    with pytest.raises(UserError, match="last.pt"):
        create(out, resume=True)


def record(epoch: int) -> dict:
    """A metrics line as the trainer writes it."""
    return {"epoch": epoch, "lr": 0.1, "loss": 1.0, "losses": {"ce": 1.0}, "train_top1": 50.0,
            "test_top1": 40.0 + epoch, "seconds": 0.1, "steps": 5}  # fmt: skip


def test_run_files_are_written_atomically(tmp_path: Path):
    run = create(tmp_path / "r")
    run.append_metrics(record(1))
    run.append_metrics(record(2))
    with open(run.file("metrics.jsonl"), "a") as f:
        f.write('{"epoch": 3, "x"')  # a torn line, as after a crash of a non-atomic writer
    assert [r["epoch"] for r in run.metrics()] == [1, 2]
    run.truncate_metrics(1)
    assert [r["epoch"] for r in run.metrics()] == [1]
    leftovers = [p.name for p in run.path.iterdir() if p.name.endswith(".tmp")]
    assert leftovers == []
