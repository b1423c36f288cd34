"""Checkpoints written before the stage cuts moved to the FCFD authors' points.

Checkpoint format ``fcfd-viz/1`` cut VGG, ShuffleNetV1, WRN (last stage), MobileNetV2 (stem
and last stage) and the ImageNet MobileNet elsewhere, and gave ShuffleNetV2 a 3x3 stem.
Format ``fcfd-viz/2`` cuts where the authors do (see ``docs/fidelity.md``). Every network
computes the same function either way, except ShuffleNetV2, whose stem is now CRD's 1x1 conv.

* network weights of a moved family are renamed to today's layout (:func:`upgrade`): the
  converted network gives the same logits (pinned by ``tests/models/test_legacy.py``);
* a ShuffleNetV2 with the old 3x3 stem cannot be converted: loading it is a :class:`UserError`;
* bridges and connectors saved beside a network (``extras``) were trained on features that
  now mean something else when either side of the pair is of a moved family: whoever needs
  them calls :func:`check_extras`, which refuses them with a message naming the change.
"""

from __future__ import annotations

import re
from collections.abc import Callable

from fcfd_viz.errors import UserError

OLD_FORMAT = "fcfd-viz/1"
CHANGE = (
    "fcfd-viz 0.2 moved the stage cuts of vgg, shufflev1, wrn, mobilenetv2 and mobilenet_v1 to "
    "the FCFD authors' points (pre-activation features, docs/fidelity.md)"
)


def _shift_index(stages: tuple[int, ...], by: Callable[[int, int], tuple[int, int]]):
    """A renamer of ``stages.<i>.<j>.rest`` keys: ``(i, j) -> by(i, j)`` for ``i`` in ``stages``."""
    pattern = re.compile(r"^stages\.(\d+)\.(\d+)\.(.*)$")

    def rename(key: str) -> str:
        m = pattern.match(key)
        if not m or int(m[1]) not in stages:
            return key
        i, j = by(int(m[1]), int(m[2]))
        return f"stages.{i}.{j}.{m[3]}"

    return rename


def _mobilenet_v1(i: int, j: int) -> tuple[int, int]:
    # old stage 0 = stem conv, bn, relu, separable 64, separable 128; old stage 1 = separable
    # 128. New stage 0 = the stem alone; new stage 1 = the three separables.
    if i == 0 and j >= 3:
        return 1, j - 3
    if i == 1:
        return 1, j + 2
    return i, j


def _family(arch: str) -> str | None:
    """The moved family ``arch`` belongs to, or None when its cuts did not change."""
    if re.fullmatch(r"vgg\d+", arch):
        return "vgg"
    if arch.startswith("wrn_"):
        return "wrn"
    if arch in ("mobilenetv2", "shufflev1", "shufflev2", "mobilenet_v1"):
        return arch
    return None


# Per family: old state-dict key -> new key. VGG and MobileNetV2 stages gained a leading ReLU
# (one index later); WRN's last stage ends at a bare BN instead of Sequential(BN, ReLU).
_RENAMES: dict[str, Callable[[str], str]] = {
    "vgg": _shift_index((1, 2, 3, 4), lambda i, j: (i, j + 1)),
    "mobilenetv2": _shift_index((1,), lambda i, j: (i, j + 1)),
    "wrn": lambda key: key.replace("stages.3.1.0.", "stages.3.1.", 1),
    "mobilenet_v1": _shift_index((0, 1), _mobilenet_v1),
    "shufflev1": lambda key: key,
}


def upgrade(ckpt: dict) -> dict:
    """Bring a format-1 checkpoint dict to today's layout in place (see the module docstring).

    Renames the network's weights of a moved family and records ``converted_from``. Raises
    :class:`UserError` for a ShuffleNetV2 with the old 3x3 stem.
    """
    spec = ckpt.get("model") or {}
    arch = str(spec.get("arch", ""))
    family = _family(arch)
    where = ckpt.get("path", "the checkpoint")
    state = ckpt.get("state_dict")
    if family == "shufflev2":
        stem = (state or {}).get("stages.0.0.weight")
        if stem is not None and tuple(stem.shape[-2:]) != (1, 1):
            raise UserError(
                f"{where} holds a shufflev2 with the 3x3 stem of fcfd-viz < 0.2; its stem is now "
                "a 1x1 conv as in CRD and the FCFD authors' code, so these weights cannot be "
                "converted: train it again"
            )
    elif family is not None and isinstance(state, dict):
        rename = _RENAMES[family]
        ckpt["state_dict"] = {rename(k): v for k, v in state.items()}
    ckpt["converted_from"] = OLD_FORMAT
    return ckpt


def check_extras(ckpt: dict, *archs: str | None) -> None:
    """Refuse the bridges/connectors of a converted checkpoint when any of ``archs`` (the
    student's, the teacher's) is of a family whose cuts moved: they map features that now
    mean something else."""
    if ckpt.get("converted_from") != OLD_FORMAT or not ckpt.get("extras"):
        return
    moved = sorted({a for a in archs if a and _family(a) is not None})
    if moved:
        raise UserError(
            f"{ckpt.get('path', 'the checkpoint')} was written before {CHANGE}; its bridges were "
            f"trained on the old features of {', '.join(moved)} and cannot be used: start a new "
            "run (the network weights themselves still load)"
        )
