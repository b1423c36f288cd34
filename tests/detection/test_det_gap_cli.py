"""``fcfd gap`` on detector checkpoints: per-level text and JSON, one-line errors for a
detection teacher mixed with classification students."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from fcfd_viz.cli import main

pytestmark = pytest.mark.usefixtures("one_thread")
TINY = ["--images", "4", "--fit-images", "8", "--fit-max-epochs", "2", "--no-progress"]


def classifier(path: Path) -> Path:
    from fcfd_viz import models
    from fcfd_viz.runs.checkpoints import save_checkpoint

    net = models.create("resnet8", num_classes=10)
    save_checkpoint(
        path, {"model": net.spec(), "state_dict": net.state_dict(), "dataset": "digits"}
    )
    return path


def test_gap_of_detectors_text_json_and_html(det_runs: Path, tmp_path: Path, capsys):
    det = det_runs / "det"
    students = ["--student", str(det / "kd"), "--student", str(det / "fcfd")]
    html = tmp_path / "gap.html"
    assert main(["gap", *students, *TINY, "--json", "--html", str(html)]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["task"] == "detection" and out["levels"] == ["p2", "p3", "p4", "p5", "p6"]
    assert Path(out["teacher"]).parent == det / "teacher"  # the teacher the students recorded
    assert set(out["students"]) == {"kd (fitted)", "fcfd (own bridges)", "fcfd (fitted)"}
    assert out["num_images"] == 4 and sum(out["rois_per_level"].values()) == out["num_rois"] > 0
    kd = out["students"]["kd (fitted)"]
    assert kd["method"] == "kd" and kd["fit"]["num_images"] == 8 and kd["fit"]["epochs"] <= 2
    assert all(v > 0 for v in kd["appearance"].values()) and kd["functional"]["p6"] is None
    assert kd["all"]["functional"] > 0 and out["students"]["fcfd (own bridges)"]["fit"] is None
    assert "smallest functional gap" in out["reading"]
    assert "appearance gap (MSE after the bridge)" in html.read_text()

    assert main(["gap", "--student", str(det / "fcfd"), *TINY, "--no-fit"]) == 0
    text = capsys.readouterr().out
    assert "fcfd (own bridges):" in text and "fitted" not in text
    assert "p6: appearance" in text and "(the box head does not read it)" in text
    assert "all levels: functional KL" in text


def test_detection_mixed_with_classification_is_one_line(det_runs: Path, tmp_path, capsys):
    det, clf = det_runs / "det", str(classifier(tmp_path / "clf.pt"))
    cases = [
        (["--teacher", str(det / "teacher"), "--student", clf], "is a detector but student"),
        (["--teacher", clf, "--student", str(det / "kd")], "is a classifier but student"),
        (["--student", str(det / "kd"), "--bn", "batch"], "drop --bn batch"),
    ]
    for argv, message in cases:
        assert main(["gap", *argv, *TINY]) == 2, argv
        err = capsys.readouterr().err
        assert message in err and len(err.strip().splitlines()) == 1, err
