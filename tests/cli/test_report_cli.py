"""``fcfd report``: the page written atomically, an existing --out kept without --force, and
one error line (exit 2) for a missing or broken run directory."""

from __future__ import annotations

import pytest
from helpers import fails, ok

from fcfd_viz.cli import build_parser, main

CURVES_ONLY = ["--no-probe", "--no-gap", "--no-progress"]


def test_help_names_every_part(capsys):
    with pytest.raises(SystemExit) as e:
        main(["report", "--help"])
    text = capsys.readouterr().out
    assert e.value.code == 0
    for word in ("offline", "config.json", "--teacher", "--no-probe", "--no-gap", "--force"):
        assert word in text, word
    main_help = build_parser().format_help()
    assert "report" in main_help and "offline HTML page of runs" in main_help


def test_writes_the_page_and_keeps_an_existing_one(runs_root, tmp_path, capsys):
    out = tmp_path / "pages" / "study.html"
    kd = str(runs_root / "defaults" / "kd")
    printed = ok(capsys, ["report", kd, "--out", str(out), *CURVES_ONLY])
    page = out.read_text()
    assert str(out) in printed and page.startswith("<!DOCTYPE html>")
    assert "fcfd distill --config" in page and "Training curves" in page
    out.write_text("mine")
    line = fails(capsys, ["report", kd, "--out", str(out), *CURVES_ONLY], "exists", "--force")
    assert line.startswith("fcfd report: error:") and out.read_text() == "mine"
    ok(capsys, ["report", kd, "--out", str(out), "--force", *CURVES_ONLY])
    assert out.read_text().startswith("<!DOCTYPE html>")
    assert not list(out.parent.glob(".*.tmp"))  # the atomic write left no temp file


@pytest.mark.parametrize(
    "make, needles",
    [
        (lambda d: d / "nope", ("nope", "no such run directory")),
        (lambda d: d, ("not a run directory", "config.json")),
    ],
)
def test_a_bad_run_dir_is_one_line(tmp_path, capsys, make, needles):
    out = tmp_path / "r.html"
    fails(capsys, ["report", str(make(tmp_path)), "--out", str(out), *CURVES_ONLY], *needles)
    assert not out.exists()


def test_bad_options_are_one_line(runs_root, tmp_path, capsys):
    kd, out = str(runs_root / "defaults" / "kd"), str(tmp_path / "r.html")
    fails(capsys, ["report", kd, "--out", out, "--images", "0"], "--images must be >= 1")
    fails(capsys, ["report", kd, "--out", str(tmp_path)], "is a directory")
    fails(capsys, ["report", kd, "--teacher", str(tmp_path / "t"), "--out", out], "not found")
    assert not (tmp_path / "r.html").exists()


def test_no_report_inside_a_run_directory(runs_root, tmp_path, capsys):
    """``--force --out RUN/best.pt`` wrote HTML over a checkpoint (issue #29)."""
    import shutil

    run = tmp_path / "kd"
    shutil.copytree(runs_root / "defaults" / "kd", run)
    best = (run / "best.pt").read_bytes()
    for target in (run / "best.pt", run / "report.html", run / "tb" / "r.html"):
        argv = ["report", str(run), "--out", str(target), "--force", *CURVES_ONLY]
        fails(capsys, argv, "inside the run directory", str(run))
    assert (run / "best.pt").read_bytes() == best
    assert not (run / "report.html").exists() and not (run / "tb" / "r.html").exists()
