"""The detection gap kept on disk, and a detector's detections on one test canvas: what the
app's Detection page shows (the classification gap's cache: :mod:`fcfd_viz.analysis.reports.gap`).

A gap report is kept in ``folder/detgap-<hash>.json``, keyed by the checkpoints' files and
mtimes, the students' labels and every setting, so a restarted app (or another caller)
shows a computed gap at once and a retrained checkpoint computes it anew.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path

import torch

from fcfd_viz.analysis.base import result_file, stored
from fcfd_viz.detection.data import CANVAS, detection_datasets
from fcfd_viz.detection.gap import DET_FIT
from fcfd_viz.detection.gap_report import DetGapReport, det_gap_inputs, det_gap_report
from fcfd_viz.runs.checkpoints import checkpoint_key

# (test images, fit images, fit epochs): what the Detection page lets the user set
GapSettings = tuple[int | None, int | None, int]


def det_gap_file(
    folder: str | Path, teacher: str, students: Sequence[tuple[str, str]], settings: GapSettings
) -> Path:
    """Where :func:`det_gap_kept` keeps the gap of ``students`` ((label, checkpoint path)
    pairs) against ``teacher`` with ``settings``."""
    key = [
        checkpoint_key(teacher),
        [[label, *checkpoint_key(path)] for label, path in students],
        list(settings),
    ]
    return result_file(folder, "detgap", key)


def det_gap_kept(
    folder: str | Path, teacher: str, students: Sequence[tuple[str, str]], settings: GapSettings
) -> DetGapReport:
    """The detection gap of ``students`` ((label, checkpoint path) pairs) against ``teacher``:
    the one kept in ``folder``, else measured (``settings``: test images, fit images, fit
    epochs; 16 images a batch) and kept there."""
    test_images, fit_images, epochs = settings

    def compute() -> DetGapReport:
        paths, labels = [p for _, p in students], [lab for lab, _ in students]
        inputs = det_gap_inputs(paths, teacher, labels, None, 16, test_images, fit_images)
        return det_gap_report(inputs, fit=replace(DET_FIT, max_epochs=epochs))

    return stored(DetGapReport, det_gap_file(folder, teacher, students, settings), compute)


def checkpoint_test_split(meta: dict):
    """The test split of the dataset a detector checkpoint (its metadata) was trained on, at
    its recorded canvas size (digit-boxes' own when none is recorded)."""
    shape = meta.get("input_shape")
    return detection_datasets(
        meta.get("dataset") or "digit-boxes", None, shape[-1] if shape else CANVAS
    )[1]


def detections(detector, image: torch.Tensor) -> dict[str, torch.Tensor]:
    """``{"boxes", "labels", "scores"}`` (on the CPU) of an eval-mode ``detector`` on one
    image (C, H, W)."""
    with torch.no_grad():
        (out,) = detector([image])
    return {k: v.detach().cpu() for k, v in out.items()}
