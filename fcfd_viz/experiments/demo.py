"""The demos: runs every app page can show, built once (``fcfd defaults [--demo NAME]``).

A :class:`Demo` names a teacher recipe and the students the Functional gap page needs.
:data:`DIGITS` (the first launch's, ``RUNS/defaults``): the default digits teacher
(:data:`~fcfd_viz.experiments.experiment.DEFAULT_TEACHER_ARCH` for
:data:`~fcfd_viz.experiments.experiment.DEFAULT_TEACHER_EPOCHS` epochs, exactly what ``fcfd
train-teacher --dataset digits`` does) and ce / kd / fcfd students of the ``digits`` smoke
preset for :data:`STUDENT_EPOCHS` epochs, seeds 0, 1 and 2 (``RUNS/defaults/{ce,kd,fcfd}``,
``...-s1``, ``...-s2``: a functional gap read off one seed of a short run sits inside the
seed-to-seed noise, so the Functional gap page shows the spread). :data:`PAIRS`
(``RUNS/pairs``): the paper's setting, 100 classes (digit-pairs), the
``pairs-resnet56-resnet20`` preset's teacher on digit-pairs' calibrated schedule and its ce /
kd / fcfd students, one seed, built only when asked (the Home page's second button, never on the
first launch). Each demo's :attr:`Demo.build_label` states its measured build time. Finished runs are reused, half-finished ones resumed; a second
caller waits on a file lock and then finds everything done. Progress goes to the callback
and to ``RUNS/<folder>/progress.json``, which the app polls while another process builds.
"""

from __future__ import annotations

import contextlib
import os
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

from fcfd_viz.io.files import read_object, write_json
from fcfd_viz.io.locks import LockBusy, file_lock
from fcfd_viz.io.procs import identity
from fcfd_viz.runs.layout import STOP_FILE, Run
from fcfd_viz.training.callbacks import Callback

DEFAULTS = "defaults"
STUDENT_METHODS = ("ce", "kd", "fcfd")
SEEDS = (0, 1, 2)  # every student method is trained with each (paired: a seed fixes the subset)
PRESET = "digits"
# the students' epochs, fewer than the preset's 30: the ten runs took 231 s on 2 AVX2 cores
# with a 15-epoch teacher and 30-epoch students, and a first launch must stay <= 180 s
STUDENT_EPOCHS = 20
# rough relative cost of one epoch (teacher: full digits; students: the 10% subset + test)
_COST = {"teacher": 1.0, "ce": 0.06, "kd": 0.1, "fcfd": 0.21}

Progress = Callable[[float, str], None]
PROGRESS_FILE = "progress.json"


@dataclass(frozen=True)
class Demo:
    """A teacher and its students, trained once into ``RUNS/<folder>``."""

    name: str  # `fcfd defaults --demo NAME`
    folder: str  # under the runs folder
    title: str  # how the Home page offers it
    preset: str  # the students' preset: teacher and student archs, dataset, knobs, schedule
    teacher_dataset: str  # the teacher trains on it with its dataset's default schedule
    student_epochs: int | None  # None: the preset's
    cost: dict  # relative cost of one epoch per run kind (the progress bar's weights)
    methods: tuple[str, ...] = STUDENT_METHODS
    seeds: tuple[int, ...] = SEEDS
    # the build's measured wall time as the Home page's button states it ("about 4 min on 2
    # idle CPU cores"), and where and how it was measured; None: not measured yet
    measured_build: str | None = None
    measured_how: str | None = None

    @property
    def build_label(self) -> str:
        """The Home page's button: ``Build <title> (<measured time>)``."""
        return f"Build {self.title} ({self.measured_build or 'build time not yet measured'})"


DIGITS = Demo(
    "digits",
    DEFAULTS,
    "digits (10 classes)",
    PRESET,
    "digits",
    STUDENT_EPOCHS,
    _COST,
    measured_build="about 80 s on 2 idle CPU cores",
    measured_how="`fcfd defaults` from scratch, runs then the gap page's connectors and reports "
    "(docs/benchmarks.md, 'Connector fit, 2 threads, shared teacher, idle machine')",
)
PAIRS = Demo(
    "pairs",
    "pairs",
    "the paper's setting (100 classes)",
    "pairs-resnet56-resnet20",
    "digit-pairs",
    None,
    # progress weights only: rough per-epoch costs from the step-time ratios of resnet56 ->
    # resnet20 (docs/benchmarks.md, "Training step time"); every run sees all 10,000 canvases
    {"teacher": 1.0, "ce": 0.45, "kd": 0.7, "fcfd": 1.3},
    seeds=(0,),
    measured_build=None,  # to measure: `time fcfd defaults --demo pairs` on 2 idle cores
)
DEMOS = {d.name: d for d in (DIGITS, PAIRS)}


def student_key(method: str, seed: int) -> str:
    """``"kd"`` for seed 0 (the name default runs always had), ``"kd-s1"`` for seed 1."""
    return method if seed == 0 else f"{method}-s{seed}"


def key_method(key: str) -> str:
    """The method of a :func:`student_key` (``"kd-s1"`` -> ``"kd"``; ``"teacher"`` stays)."""
    return key.split("-s")[0]


def default_names(demo: Demo = DIGITS) -> dict[str, str]:
    """``{"teacher": "defaults/teacher", "ce": "defaults/ce", ..., "fcfd-s2": ...}``: the
    demo's runs' names inside a runs folder (how the app's lists name them), in the order
    they are built: the teacher, then seed 0's students (every page works once they exist),
    then the other seeds'."""
    keys = ["teacher"] + [student_key(m, s) for s in demo.seeds for m in demo.methods]
    return {k: f"{demo.folder}/{k}" for k in keys}


def default_paths(runs_dir: str | os.PathLike, demo: Demo = DIGITS) -> dict[str, Path]:
    """``{"teacher": RUNS/defaults/teacher, "ce": ..., "kd": ..., "fcfd-s2": ...}``."""
    return {k: Path(runs_dir) / name for k, name in default_names(demo).items()}


def default_groups(runs_dir: str | os.PathLike, demo: Demo = DIGITS) -> dict[str, list[Path]]:
    """``{"teacher": [RUNS/defaults/teacher], "ce": [seed 0, 1, 2 runs], "kd": [...], ...}``."""
    groups: dict[str, list[Path]] = {}
    for key, path in default_paths(runs_dir, demo).items():
        groups.setdefault(key_method(key), []).append(path)
    return groups


def is_done(path: str | os.PathLike) -> bool:
    """A run directory whose training completed (summary written, not stopped)."""
    run = Run(path)
    summ = run.summary()
    if not summ:
        return False
    return not summ.get("stopped") and run.status().get("state") != "running"


def defaults_ready(runs_dir: str | os.PathLike, demo: Demo = DIGITS) -> bool:
    """True when every run of ``demo`` is complete."""
    return all(is_done(p) for p in default_paths(runs_dir, demo).values())


def default_configs(
    runs_dir: str | os.PathLike, epochs: int | None = None, demo: Demo = DIGITS
) -> dict:
    """The :class:`~fcfd_viz.experiments.experiment.ExperimentConfig` of every run of ``demo``
    (``epochs`` overrides every run's epochs: tests use it)."""
    from fcfd_viz.data.datasets import DataConfig
    from fcfd_viz.experiments import presets
    from fcfd_viz.experiments.experiment import ExperimentConfig
    from fcfd_viz.experiments.tasks import task
    from fcfd_viz.training.config import TrainConfig

    paths = default_paths(runs_dir, demo)
    p = presets.load(demo.preset)
    # the schedule `fcfd train-teacher --dataset D` uses, on the preset's teacher arch
    teacher_train = TrainConfig(
        **task("classification").teacher_defaults(demo.teacher_dataset)["train"]
    )
    teacher_train.epochs = epochs or teacher_train.epochs
    cfgs = {
        "teacher": ExperimentConfig(
            method="ce",
            student=p.teacher,
            data=DataConfig(dataset=demo.teacher_dataset),
            train=teacher_train,
        )
    }
    for seed, m in ((s, m) for s in demo.seeds for m in demo.methods):
        train = TrainConfig(**p.train)
        train.epochs = epochs or demo.student_epochs or train.epochs
        train.seed = seed
        cfgs[student_key(m, seed)] = ExperimentConfig(
            method=m,
            student=p.student,
            teacher=str(paths["teacher"].resolve()) if m != "ce" else None,
            data=DataConfig(dataset=p.dataset, **p.data),
            train=train,
            method_kwargs=p.knobs_for(m),
        )
    return cfgs


class _EpochProgress(Callback):
    def __init__(self, report: Progress, key: str, offset: float, weight: float, total: float):
        self.report, self.key, self.offset, self.weight, self.total = (
            report,
            key,
            offset,
            weight,
            total,
        )

    def on_epoch_end(self, trainer, record: dict) -> None:
        done = self.offset + self.weight * record["epoch"]
        msg = (
            f"{self.key}: epoch {record['epoch']}/{trainer.cfg.epochs}, "
            f"test top-1 {record['test_top1']:.1f}%"
        )
        self.report(min(1.0, done / self.total), msg)


def ensure_defaults(
    runs_dir: str | os.PathLike,
    progress: Progress | None = None,
    epochs: int | None = None,
    share: float = 1.0,
    demo: Demo = DIGITS,
) -> dict[str, Path]:
    """Train whatever run of ``demo`` is missing; returns :func:`default_paths`.

    ``progress(fraction, message)`` is called after every epoch and at the end. Later calls
    return at once. ``epochs`` shortens every run (for tests; the app never sets it).
    ``share`` < 1 scales the reported fractions into [0, share]: the build goes on with a
    phase that reports the rest (``fcfd defaults``' gap phase), so it is not done at the end.
    """
    from fcfd_viz.experiments.experiment import run_experiment

    paths = default_paths(runs_dir, demo)
    d = Path(runs_dir) / demo.folder
    d.mkdir(parents=True, exist_ok=True)

    written = progress_writer(d / PROGRESS_FILE, progress)
    report = lambda fraction, message: written(share * fraction, message)  # noqa: E731
    t0 = time.perf_counter()
    with _build_lock(d, progress):
        waited = time.perf_counter() - t0
        cfgs = default_configs(runs_dir, epochs, demo)
        cost = {k: demo.cost[key_method(k)] * c.train.epochs for k, c in cfgs.items()}
        total, offset, trained = sum(cost.values()), 0.0, False
        t0 = time.perf_counter()
        for key, cfg in cfgs.items():
            path = paths[key]
            if not is_done(path):
                trained = True
                report(offset / total, f"{key}: starting")
                resumable = (path / "last.pt").exists() and (path / "config.json").exists()
                (path / STOP_FILE).unlink(missing_ok=True)
                cb = _EpochProgress(report, key, offset, demo.cost[key_method(key)], total)
                run_experiment(
                    cfg, path, resume=resumable, overwrite=True, callbacks=[cb], progress=False
                )
            offset += cost[key]
        how = f"another process built them while this one waited {waited:.0f} s"
        done = f"defaults ready: {how}" if waited >= 1 else "defaults ready"
        if trained:
            report(1.0, f"defaults ready in {time.perf_counter() - t0:.0f} s")
        elif share < 1:  # a phase of this process follows: the file says where the build is
            report(1.0, done)
        elif progress is not None:  # the file keeps the builder's own last line
            progress(1.0, done)
    return paths


@contextlib.contextmanager
def _build_lock(folder: Path, progress: Progress | None) -> Iterator[None]:
    """The defaults build's lock; a second build says it waits for the first before it does
    (a wait of minutes must not look like a hang, nor end in "ready in 0 s")."""
    with contextlib.ExitStack() as stack:
        try:
            stack.enter_context(file_lock(folder / ".lock", wait=False))
        except LockBusy:
            if progress is not None:
                progress(0.0, "another process is building the defaults; waiting for it to end")
            stack.enter_context(file_lock(folder / ".lock"))
        yield


def defaults_progress(runs_dir: str | os.PathLike, demo: Demo = DIGITS) -> dict | None:
    """The last ``progress.json`` of a demo's build (``fraction``, ``message``, ``pid``)."""
    return read_progress(Path(runs_dir) / demo.folder / PROGRESS_FILE)


def progress_writer(file: Path, progress: Progress | None) -> Progress:
    """A :data:`Progress` that writes ``file`` (fraction, message, this process's identity,
    time: what :func:`read_progress` reads in another process) and calls ``progress``."""

    def report(fraction: float, message: str) -> None:
        write_json(
            file, {"fraction": fraction, "message": message, **identity(), "time": time.time()}
        )
        if progress is not None:
            progress(fraction, message)

    return report


def read_progress(file: Path) -> dict | None:
    """A progress file of :func:`progress_writer` (fraction clamped to [0, 1]), or None when
    absent or junk."""
    p = read_object(file)[0]
    if not p:
        return None
    fraction = p.get("fraction")
    if not isinstance(fraction, (int, float)) or isinstance(fraction, bool) or fraction != fraction:
        return None  # absent or junk: no build to report
    return {**p, "fraction": min(1.0, max(0.0, float(fraction))), "message": str(p.get("message"))}
