"""What the app's Distill form asks for: one ``fcfd distill`` run, checked before it starts."""

from __future__ import annotations

import re
import urllib.parse
from dataclasses import dataclass, field
from pathlib import Path

from fcfd_viz.errors import UserError
from fcfd_viz.io import checks
from fcfd_viz.runs.layout import JOBS_DIR

RESERVED = ("defaults", JOBS_DIR)  # names a run may not take
# fullmatch: "$" would also match before a trailing newline
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")


@dataclass
class JobSpec:
    """What the app's launch form fills: one ``fcfd distill`` run on a preset.

    ``knobs`` holds any knobs of ``method`` by name (:func:`fcfd_viz.distill.knobs`); the
    ones left out take the preset's values, else the method's defaults. ``device`` is one
    of :func:`device_choices`; ``data_dir`` the folder of a CIFAR / ImageNet preset's data
    (None: ``$FCFD_DATA_DIR``, else ./data).
    """

    name: str
    method: str = "fcfd"
    student: str = "resnet8"
    teacher: str | None = None
    epochs: int = 30
    lr: float = 0.05
    seed: int = 0
    preset: str = "digits"
    knobs: dict = field(default_factory=dict)
    device: str = "auto"
    data_dir: str | None = None

    def argv(self) -> list[str]:
        """``fcfd distill`` arguments (without ``--out``); the teacher only for a method
        that distils from one."""
        from fcfd_viz.distill import knobs, method_class

        args = ["--preset", self.preset, "--method", self.method, "--student", self.student]
        args += ["--epochs", str(self.epochs), "--lr", str(self.lr), "--seed", str(self.seed)]
        args += ["--device", self.device]
        if self.data_dir:
            args += ["--data-dir", str(Path(self.data_dir).resolve())]
        by_name = {k.name: k for k in knobs(self.method)}
        for name, value in self.knobs.items():
            args += by_name[name].argv(value)
        if self.teacher and method_class(self.method).needs_teacher:
            args += ["--teacher", str(Path(self.teacher).resolve())]
        return args


def validate(spec: JobSpec) -> None:
    """Raise :class:`UserError` for a spec that would fail in the subprocess."""
    from fcfd_viz import models
    from fcfd_viz.data.datasets import DataConfig, missing_data
    from fcfd_viz.distill import make_config, method_class
    from fcfd_viz.experiments import presets
    from fcfd_viz.experiments.experiment import check_compatible
    from fcfd_viz.runs.checkpoints import load_checkpoint

    if not isinstance(spec.name, str) or not _NAME.fullmatch(spec.name) or spec.name in RESERVED:
        raise UserError(
            f"run name {spec.name!r} is not allowed: use letters, digits, '.', '_', '-' "
            f"(at most 64, not {' or '.join(RESERVED)})"
        )
    method = method_class(spec.method)
    preset = presets.load(spec.preset)
    models.check_name(spec.student)
    if spec.device not in device_choices():
        raise UserError(
            f"device {spec.device!r} is not available here; choose one of "
            f"{', '.join(device_choices())}"
        )
    reason = missing_data(preset.dataset, spec.data_dir)
    if reason:
        raise UserError(f"preset {spec.preset}: {reason}")
    checks.integer("epochs", spec.epochs, 1)
    checks.integer("seed", spec.seed)
    checks.number("lr", spec.lr, 0, strict=True)
    make_config(spec.method, **spec.knobs)  # unknown knobs, values out of bounds
    method.check_teacher(spec.teacher or None)
    if method.needs_teacher:
        data = DataConfig(dataset=preset.dataset, data_dir=spec.data_dir, **preset.data)
        check_compatible(load_checkpoint(spec.teacher), data)


def device_choices() -> list[str]:
    """Devices a run may ask for here: ``auto``, ``cpu``, and ``cuda``, ``cuda:0`` ...
    ``cuda:N-1`` for the N GPUs torch sees."""
    import torch

    n = torch.cuda.device_count() if torch.cuda.is_available() else 0
    return ["auto", "cpu"] + (["cuda"] + [f"cuda:{i}" for i in range(n)] if n else [])


def preset_status(data_dir: str | None) -> dict[str, str | None]:
    """Every preset name -> None when it can run with ``data_dir``, else why not (one line)."""
    from fcfd_viz.data.datasets import missing_data
    from fcfd_viz.experiments import presets

    return {n: missing_data(presets.load(n).dataset, data_dir) for n in presets.names()}


def default_teacher(runs: list[dict], preset, fallback: str) -> int:
    """Index in ``runs`` (rows of checkpoints: ``name``, ``student`` arch, ``method``,
    ``dataset``) of the teacher a launch of ``preset`` starts with: a run of the preset's
    teacher arch on its dataset (a ``ce`` one first), else the run named ``fallback``, else 0."""
    same = preset.dataset.replace("-hard", "")

    def rank(r: dict) -> tuple:
        on_data = str(r.get("dataset", "")).replace("-hard", "") == same
        arch = r.get("student") == preset.teacher and on_data
        return (arch and r.get("method") == "ce", arch, r.get("name") == fallback, on_data)

    if not runs:
        return 0
    return max(range(len(runs)), key=lambda i: (rank(runs[i]), -i))


def run_path(runs_dir: Path, name: str) -> Path:
    """``RUNS/name`` for the name of a run in the runs folder (``kd-s1``, ``defaults/kd``).

    Refused with a :class:`UserError`: absolute names, ``..`` or ``.`` parts, control
    characters (a trailing newline), the job registry, and anything that resolves (through
    symlinks) outside the runs folder or to the folder itself.
    """
    if not isinstance(name, str) or not name or any(ord(c) < 32 or c == "\x7f" for c in name):
        raise UserError(f"run name {name!r} is not allowed: it must be a plain relative name")
    parts = Path(name).parts
    if Path(name).is_absolute() or "\\" in name:
        raise UserError(f"run name {name!r} is not allowed: name a run inside {runs_dir}")
    if any(p in ("", ".", "..") for p in name.split("/")) or parts[0] == JOBS_DIR:
        raise UserError(f"run name {name!r} is not allowed: it must stay inside {runs_dir}")
    path = Path(runs_dir) / name
    root = Path(runs_dir).resolve()
    if root not in path.resolve().parents:
        raise UserError(f"run name {name!r} is not allowed: it leads outside {root}")
    return path


def record_key(name: str) -> str:
    """The file stem of job ``name``'s records: percent-encoded, so two names never share
    one (``a/b`` -> ``a%2Fb``, while ``a__b`` stays itself)."""
    return urllib.parse.quote(name, safe="")


def key_name(stem: str) -> str:
    """Inverse of :func:`record_key`."""
    return urllib.parse.unquote(stem)
