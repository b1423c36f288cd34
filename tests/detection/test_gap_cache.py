"""fcfd_viz.detection.gap_cache: the detection gap kept on disk, detections of one canvas."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from fcfd_viz.detection import data as det_data
from fcfd_viz.detection import gap_cache
from fcfd_viz.detection.gap_report import DetGapReport
from fcfd_viz.experiments.networks import network_from_checkpoint
from fcfd_viz.runs.checkpoints import checkpoint_file, load_checkpoint

pytestmark = pytest.mark.usefixtures("one_thread")
SETTINGS = (4, 8, 1)  # test images, fit images, fit epochs: a tiny gap


def test_the_gap_is_measured_once_then_read_back(det_runs: Path, tmp_path: Path, monkeypatch):
    runs = tmp_path / "det"
    shutil.copytree(det_runs / "det", runs)  # the test touches a checkpoint's mtime
    teacher, kd = str(runs / "teacher"), str(runs / "kd")
    folder = tmp_path / "cache"
    file = gap_cache.det_gap_file(folder, teacher, [("kd", kd)], SETTINGS)
    report = gap_cache.det_gap_kept(folder, teacher, [("kd", kd)], SETTINGS)
    assert isinstance(report, DetGapReport) and file.exists()
    assert "kd (fitted)" in report.to_dict()["students"]

    def measure(*args, **kwargs):
        raise AssertionError("measured again")

    monkeypatch.setattr(gap_cache, "det_gap_report", measure)
    again = gap_cache.det_gap_kept(folder, teacher, [("kd", kd)], SETTINGS)
    assert again.to_dict() == report.to_dict()
    # another label, setting or a retrained checkpoint is another gap
    assert gap_cache.det_gap_file(folder, teacher, [("other", kd)], SETTINGS) != file
    assert gap_cache.det_gap_file(folder, teacher, [("kd", kd)], (4, 8, 2)) != file
    ckpt = checkpoint_file(runs / "kd")
    os.utime(ckpt, (ckpt.stat().st_atime, ckpt.stat().st_mtime + 10))
    assert gap_cache.det_gap_file(folder, teacher, [("kd", kd)], SETTINGS) != file


def test_detections_of_one_test_canvas(det_runs: Path, monkeypatch):
    monkeypatch.setattr(det_data, "TEST_CANVASES", 4)
    ckpt = load_checkpoint(det_runs / "det" / "teacher")
    split = gap_cache.checkpoint_test_split(ckpt)
    assert len(split) == 4
    image, _ = split[0]
    assert image.shape[-1] == ckpt["input_shape"][-1] == det_data.CANVAS
    out = gap_cache.detections(network_from_checkpoint(ckpt), image)
    assert set(out) == {"boxes", "labels", "scores"}
    assert out["boxes"].device.type == "cpu" and len(out["boxes"]) == len(out["scores"])
