"""The Detection page's detectors, test canvases, detections and gap reports, cached.

Detectors come from ``st.cache_resource`` (one shared, read-only instance per checkpoint file
and mtime); a test image's detections and the gap report from ``st.cache_data``. The gap
report is also kept on disk in RUNS/.cache by the library
(:mod:`fcfd_viz.detection.gap_cache`), like the Functional gap page's, so a restarted app
shows it at once.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import gap_state
import models_state
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
    """(eval-mode detector, checkpoint metadata) shared by all sessions
    (:func:`models_state.model`, which rebuilds any task's network); never modify it."""
    return models_state.model(path)


@st.cache_resource(max_entries=4, show_spinner=False)
def cached_test_split(path: str, mtime: float):
    """The test split of the checkpoint file ``path`` (of modification time ``mtime``)."""
    from fcfd_viz.detection.gap_cache import checkpoint_test_split

    return checkpoint_test_split(models_state.cached_model(path, mtime)[1])


def test_split(path: str | Path):
    """The test split of the dataset a detector checkpoint was trained on."""
    return cached_test_split(*models_state.ckpt_file(path))


@st.cache_data(max_entries=256, show_spinner=False)
def cached_detections(path: str, mtime: float, index: int) -> dict:
    """:func:`detections` of the checkpoint file ``path`` of modification time ``mtime``."""
    from fcfd_viz.detection.gap_cache import detections as detect

    image, _ = cached_test_split(path, mtime)[index]
    return detect(models_state.cached_model(path, mtime)[0], image)


def detections(path: str | Path, index: int) -> dict:
    """``{"boxes", "labels", "scores"}`` of a detector on test image ``index``."""
    return cached_detections(*models_state.ckpt_file(path), index)


# ---------------------------------------------------------------- the gap
def _pairs(students: list[dict]) -> tuple[tuple[str, str], ...]:
    return tuple(zip(gap_state.gap_labels(students), (c["path"] for c in students)))


@st.cache_data(max_entries=32, show_spinner=False)
def cached_gap(root: str, key: str, teacher: str, students: tuple, settings: tuple):
    """The kept or measured gap (``key``: its disk file, which names the checkpoints' mtimes)."""
    from fcfd_viz.detection.gap_cache import det_gap_kept

    return det_gap_kept(Path(root) / CACHE_DIR, teacher, students, settings)


def gap(root: Path, teacher: str, students: list[dict], settings: tuple) -> DetGapReport:
    """The detection gap of ``students`` against ``teacher``; ``settings``: (test images,
    fit images, fit epochs). Cached in memory and in RUNS/.cache."""
    from fcfd_viz.detection.gap_cache import det_gap_file

    pairs, settings = _pairs(students), tuple(settings)
    key = str(det_gap_file(root / CACHE_DIR, teacher, pairs, settings))
    return cached_gap(str(root), key, teacher, pairs, settings)


def gap_cached(root: Path, teacher: str, students: list[dict], settings: tuple) -> bool:
    """Whether :func:`gap` would answer from the disk cache (no fitting)."""
    from fcfd_viz.detection.gap_cache import det_gap_file

    return det_gap_file(root / CACHE_DIR, teacher, _pairs(students), tuple(settings)).exists()
