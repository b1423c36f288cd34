"""What the app's Distill form asks for: one ``fcfd distill`` run, checked before it starts."""

from __future__ import annotations

import re
import urllib.parse
from dataclasses import dataclass, field
from pathlib import Path

from fcfd_viz import checks
from fcfd_viz.errors import UserError
from fcfd_viz.runs import JOBS_DIR

RESERVED = ("defaults", JOBS_DIR)  # names a run may not take
# fullmatch: "$" would also match before a trailing newline
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")


@dataclass
class JobSpec:
    """What the app's launch form fills: one ``fcfd distill`` run on a preset.

    ``knobs`` holds any knobs of ``method`` by name (:func:`fcfd_viz.distill.knobs`); the
    ones left out take the preset's values, else the method's defaults.
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

    def argv(self) -> list[str]:
        """``fcfd distill`` arguments (without ``--out``); the teacher only for a method
        that distils from one."""
        from fcfd_viz.distill import knobs, method_class

        args = ["--preset", self.preset, "--method", self.method, "--student", self.student]
        args += ["--epochs", str(self.epochs), "--lr", str(self.lr), "--seed", str(self.seed)]
        by_name = {k.name: k for k in knobs(self.method)}
        for name, value in self.knobs.items():
            args += by_name[name].argv(value)
        if self.teacher and method_class(self.method).needs_teacher:
            args += ["--teacher", str(Path(self.teacher).resolve())]
        return args


def validate(spec: JobSpec) -> None:
    """Raise :class:`UserError` for a spec that would fail in the subprocess."""
    from fcfd_viz import models
    from fcfd_viz.checkpoints import load_checkpoint
    from fcfd_viz.data import DataConfig
    from fcfd_viz.distill import make_config, method_class, presets
    from fcfd_viz.pipeline import check_compatible

    if not isinstance(spec.name, str) or not _NAME.fullmatch(spec.name) or spec.name in RESERVED:
        raise UserError(
            f"run name {spec.name!r} is not allowed: use letters, digits, '.', '_', '-' "
            f"(at most 64, not {' or '.join(RESERVED)})"
        )
    method = method_class(spec.method)
    models.check_name(spec.student)
    checks.integer("epochs", spec.epochs, 1)
    checks.integer("seed", spec.seed)
    checks.number("lr", spec.lr, 0, strict=True)
    make_config(spec.method, **spec.knobs)  # unknown knobs, values out of bounds
    method.check_teacher(spec.teacher or None)
    if method.needs_teacher:
        preset = presets.load(spec.preset)
        check_compatible(
            load_checkpoint(spec.teacher), DataConfig(dataset=preset.dataset, **preset.data)
        )


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
