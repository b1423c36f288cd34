"""The Detection page's detectors, test canvases, detections and gap reports, cached.

Detectors come from ``st.cache_resource`` (one shared, read-only instance per checkpoint file
and mtime); a test image's detections and the gap report from ``st.cache_data``. The gap
report is also kept on disk in RUNS/.cache (keyed by the checkpoints' paths and mtimes and
every setting), like the Functional gap page's, so a restarted app shows it at once.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import state
import streamlit as st

from fcfd_viz.runs.layout import CACHE_DIR

if TYPE_CHECKING:
    from fcfd_viz.detection.gap_report import DetGapReport

# what the info box tells someone without detection runs, with the runs folder filled in
HOW_TO_TRAIN = """No detection runs in `{root}` yet. Train a teacher and distil students from a shell:

```bash
fcfd train-teacher --task detection --preset det-digits --out {root}/det-teacher
fcfd distill --task detection --preset det-digits --method fcfd --teacher {root}/det-teacher --out {root}/det-fcfd
fcfd distill --task detection --preset det-digits --method kd --teacher {root}/det-teacher --out {root}/det-kd
```

(`--preset det-digits-smoke` instead: a one-minute check whose numbers mean nothing.)"""


def detector(path: str | Path):
    """(eval-mode detector, checkpoint metadata) shared by all sessions (:func:`state.model`,
    which rebuilds any task's network); never modify it."""
    return state.model(path)


@st.cache_resource(max_entries=4, show_spinner=False)
def _test_split(dataset: str, size: int):
    from fcfd_viz.detection.data import detection_datasets

    return detection_datasets(dataset, None, size)[1]


def test_split(path: str | Path):
    """The test split of the dataset a detector checkpoint was trained on."""
    meta = detector(path)[1]
    shape = meta.get("input_shape") or [3, 64, 64]
    return _test_split(meta.get("dataset") or "digit-boxes", int(shape[-1]))


@st.cache_data(max_entries=256, show_spinner=False)
def _detections(path: str, mtime: float, index: int) -> dict:
    import torch

    net = state._model(path, mtime)[0]
    image, _ = test_split(path)[index]
    with torch.no_grad():
        (out,) = net([image])
    return {k: v.detach().cpu() for k, v in out.items()}


def detections(path: str | Path, index: int) -> dict:
    """``{"boxes", "labels", "scores"}`` of a detector on test image ``index``."""
    return _detections(*state.ckpt_file(path), index)


# ---------------------------------------------------------------- the gap
def _gap_path(root: str, key: list) -> Path:
    from fcfd_viz.analysis.base import result_file

    return result_file(Path(root) / CACHE_DIR, "detgap", key)


def _key(teacher: str, students: list[dict], settings: tuple) -> list:
    labels = state.gap_labels(students)
    return [
        state.ckpt_file(teacher),
        [[lab, *state.ckpt_file(c["path"])] for lab, c in zip(labels, students)],
        list(settings),
    ]


@st.cache_data(max_entries=32, show_spinner=False)
def _gap(root: str, key: list, teacher: str, paths: tuple, labels: tuple, settings: tuple):
    from dataclasses import replace

    from fcfd_viz.analysis.base import stored
    from fcfd_viz.detection.gap import DET_FIT
    from fcfd_viz.detection.gap_report import DetGapReport, det_gap_inputs, det_gap_report

    test_images, fit_images, epochs = settings

    def compute() -> DetGapReport:
        inputs = det_gap_inputs(list(paths), teacher, list(labels), None, 16, *settings[:2])
        return det_gap_report(inputs, fit=replace(DET_FIT, max_epochs=epochs))

    return stored(DetGapReport, _gap_path(root, key), compute)


def gap(root: Path, teacher: str, students: list[dict], settings: tuple) -> DetGapReport:
    """The detection gap of ``students`` against ``teacher``; ``settings``: (test images,
    fit images, fit epochs). Cached in memory and in RUNS/.cache."""
    labels = tuple(state.gap_labels(students))
    paths = tuple(c["path"] for c in students)
    key = _key(teacher, students, settings)
    return _gap(str(root), key, teacher, paths, labels, tuple(settings))


def gap_cached(root: Path, teacher: str, students: list[dict], settings: tuple) -> bool:
    """Whether :func:`gap` would answer from the disk cache (no fitting)."""
    return _gap_path(str(root), _key(teacher, students, settings)).exists()
