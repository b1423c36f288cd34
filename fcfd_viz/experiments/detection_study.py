"""A detection teacher and its students from one preset, trained once into a runs folder:
what notebook 06 builds (and what ``fcfd train-teacher --task detection --preset P`` and
``fcfd distill --task detection --preset P --method M`` build one by one).

``RUNS/<folder>/teacher`` (``ce``, the preset's teacher arch) and ``RUNS/<folder>/<method>``
for every student method, with the preset's student arch, data, schedule and knobs.

>>> paths = ensure_det_runs("runs", "det-digits", ["kd", "fcfd"])  # doctest: +SKIP
>>> paths["fcfd"]                                                   # doctest: +SKIP
PosixPath('runs/det-digits/fcfd')
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path


def det_configs(
    runs_dir: str | os.PathLike,
    preset: str = "det-digits",
    methods: Sequence[str] = ("kd", "fcfd"),
    epochs: int | None = None,
    device: str = "auto",
    **overrides,
) -> dict:
    """``{"teacher": cfg, method: cfg ...}``: the ExperimentConfig of each run of ``preset``
    (``epochs`` overrides every run's; ``overrides``: ``teacher_arch``, ``student``,
    ``subset``, ``batch_size`` for short runs)."""
    from fcfd_viz.data.datasets import DataConfig
    from fcfd_viz.experiments import presets
    from fcfd_viz.experiments.experiment import ExperimentConfig
    from fcfd_viz.training.config import TrainConfig

    p = presets.load(preset)
    short = {k: overrides[k] for k in ("subset", "batch_size") if k in overrides}
    # the teacher trains on the whole split unless told otherwise (as train-teacher does)
    t_data = {**{k: v for k, v in p.data.items() if k != "subset"}, **short}
    s_data = {**p.data, **short}
    train = {**p.train, "device": device, **({"epochs": epochs} if epochs else {})}
    root = det_folder(runs_dir, preset)

    def cfg(method: str, arch: str, teacher: Path | None) -> ExperimentConfig:
        return ExperimentConfig(
            method=method,
            student=arch,
            teacher=str(teacher.resolve()) if teacher else None,
            data=DataConfig(dataset=p.dataset, **(s_data if teacher else t_data)),
            train=TrainConfig(**train),
            method_kwargs=p.knobs_for(method) if method != "ce" else {},
            task="detection",
        )

    out = {"teacher": cfg("ce", overrides.get("teacher_arch") or p.teacher, None)}
    student = overrides.get("student") or p.student
    for m in methods:
        out[m] = cfg(m, student, root / "teacher")
    return out


def det_folder(runs_dir: str | os.PathLike, preset: str) -> Path:
    """``RUNS/<preset>``: where :func:`ensure_det_runs` writes."""
    return Path(runs_dir) / preset


def ensure_det_runs(
    runs_dir: str | os.PathLike,
    preset: str = "det-digits",
    methods: Sequence[str] = ("kd", "fcfd"),
    epochs: int | None = None,
    device: str = "auto",
    progress: bool = False,
    **overrides,
) -> dict[str, Path]:
    """Train whatever of :func:`det_configs` is not finished yet (a finished run is kept);
    returns ``{"teacher": path, method: path ...}``."""
    from fcfd_viz.experiments.demo import is_done
    from fcfd_viz.experiments.experiment import run_experiment

    root = det_folder(runs_dir, preset)
    paths = {}
    for key, cfg in det_configs(runs_dir, preset, methods, epochs, device, **overrides).items():
        paths[key] = root / key
        if not is_done(paths[key]):
            run_experiment(cfg, paths[key], overwrite=True, progress=progress, tensorboard=False)
    return paths
