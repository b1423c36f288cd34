"""Named presets: YAML files beside this module, one per teacher/student pair and protocol.

A preset names the teacher and student archs, the dataset, the method's knobs and the
training schedule. Knobs a chosen method does not have are ignored (a preset's
``feat_weight`` does not apply to ``kd``), so one preset serves every method.

Detection presets (``task: detection``) live in ``detection/`` beside them: :func:`load` finds them too, :func:`names` lists classification's
and :func:`detection_names` detection's.

May import: errors, io, distill, detection.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import yaml

from fcfd_viz.errors import UserError

PRESET_DIR = Path(__file__).parent
DETECTION_DIR = PRESET_DIR / "detection"


@dataclass
class Preset:
    """One preset file. ``source`` says where its values come from: ``authors: <their config
    file>`` when they are the FCFD authors', ``fcfd-viz: ...`` when they are ours."""

    name: str
    description: str
    source: str
    teacher: str
    student: str
    dataset: str
    method: str = "fcfd"
    method_kwargs: dict = field(default_factory=dict)
    train: dict = field(default_factory=dict)
    data: dict = field(default_factory=dict)
    task: str = "classification"  # or detection (fcfd_viz.detection)

    def knobs_for(self, method: str) -> dict:
        """The preset's method knobs that ``method``'s config accepts."""
        if self.task == "detection":
            from fcfd_viz.detection.methods import knobs
        else:
            from fcfd_viz.distill import knobs

        names = {k.name for k in knobs(method)}
        return {k: v for k, v in self.method_kwargs.items() if k in names}


def names() -> list[str]:
    """The classification presets."""
    return sorted(p.stem for p in PRESET_DIR.glob("*.yaml"))


def detection_names() -> list[str]:
    """The detection presets (``--task detection``)."""
    return sorted(p.stem for p in DETECTION_DIR.glob("*.yaml"))


def load(name: str) -> Preset:
    """The preset called ``name`` (see :func:`names` and :func:`detection_names`)."""
    path = PRESET_DIR / f"{name}.yaml"
    if not path.exists():
        path = DETECTION_DIR / f"{name}.yaml"
    if not path.exists():
        every = ", ".join(names() + detection_names())
        raise UserError(f"unknown preset {name!r}; choose one of {every}")
    with open(path) as f:
        raw = yaml.safe_load(f)
    return Preset(name=name, **raw)
