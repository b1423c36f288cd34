"""The CRD / RepDistiller parameter names of the CIFAR zoo: ours <-> theirs, per family.

The CIFAR-100 teachers that CRD (Tian et al. 2020) published, and that the FCFD authors and
mdistiller reuse, are state_dicts of CRD's model classes (``conv1``, ``layer1.0.bn2``,
``block3.layer.5.convShortcut``, ``blocks.6.0.conv.7``, ``classifier``, ...). Our networks
hold the same tensors under staged names (``stages.1.0.body.2.1``, ``head.fc``). The maps
are derived from the network itself, not listed: in a residual unit CRD numbers its convs
``conv1, conv2, ...`` and its BatchNorms ``bn1, bn2, ...`` in the order they run, which is
the order our units register them; convs and BNs outside units (stem, WRN's final BN,
ShuffleNetV2's last 1x1) are numbered the same way at network level; VGG and MobileNetV2
keep CRD's ``nn.Sequential`` indices. ``tests/fixtures/crd_state_dict_keys.json`` holds the keys
and shapes of CRD's own models, and the tests check every map against it.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Callable, Iterator

from torch import Tensor, nn

from fcfd_viz.errors import UserError
from fcfd_viz.models.base import StagedNet
from fcfd_viz.models.cifar_resnet import BasicBlock
from fcfd_viz.models.cifar_resnet50 import Bottleneck
from fcfd_viz.models.mobilenetv2 import SETTINGS, InvertedResidual
from fcfd_viz.models.shufflenet import ShuffleV1Unit, ShuffleV2Down, ShuffleV2Unit
from fcfd_viz.models.wrn import PreActBlock

# our arch name -> CRD's model name (what its teacher folders are called: resnet32x4_vanilla)
CRD_NAMES: dict[str, str] = {
    **{f"resnet{d}": f"resnet{d}" for d in (8, 14, 20, 32, 44, 56, 110)},
    "resnet8x4": "resnet8x4",
    "resnet32x4": "resnet32x4",
    "resnet8_w025": "resnet8_w025",  # ours: CRD's ResNet class at widths 4, 4, 8, 16
    "resnet50": "ResNet50",
    **{f"wrn_{d}_{k}": f"wrn_{d}_{k}" for d in (16, 40) for k in (1, 2)},
    **{f"vgg{n}": f"vgg{n}" for n in (8, 11, 13, 16, 19)},
    "mobilenetv2": "MobileNetV2",
    "shufflev1": "ShuffleV1",
    "shufflev2": "ShuffleV2",
}
UNITS = (BasicBlock, Bottleneck, PreActBlock, ShuffleV1Unit, ShuffleV2Down, ShuffleV2Unit)


def resolve_arch(name: str) -> str:
    """Our arch name for ``name`` (ours or CRD's, e.g. ``ResNet50``, ``resnet32x4_vanilla``),
    or a :class:`UserError` listing the architectures that have a CRD layout."""
    bare = re.sub(r"_vanilla$", "", name)
    by_crd = {v.lower(): k for k, v in CRD_NAMES.items()}
    arch = bare if bare in CRD_NAMES else by_crd.get(bare.lower())
    if arch is None:
        close = difflib.get_close_matches(bare, [*CRD_NAMES, *CRD_NAMES.values()], n=3)
        hint = f" Did you mean {', '.join(dict.fromkeys(close))}?" if close else ""
        raise UserError(
            f"{name!r} has no CRD layout.{hint} Architectures with one: {', '.join(CRD_NAMES)}"
        )
    return arch


def _has_state(m: nn.Module) -> bool:
    return any(True for _ in m.parameters(recurse=False)) or any(
        True for _ in m.buffers(recurse=False)
    )


def _join(*parts: str) -> str:
    return ".".join(p for p in parts if p)


class _Numbering:
    """CRD's names for loose convs and BNs: ``conv1, conv2, ...`` and ``bn1, bn2, ...``."""

    def __init__(self) -> None:
        self.count = {nn.Conv2d: 0, nn.BatchNorm2d: 0}

    def __call__(self, m: nn.Module) -> str:
        kind = type(m)
        if kind not in self.count:
            raise ValueError(f"no CRD name for a loose {kind.__name__}")
        self.count[kind] += 1
        return f"{'conv' if kind is nn.Conv2d else 'bn'}{self.count[kind]}"


def _unit_names(unit: nn.Module, ours: str, theirs: str, shortcut: str) -> dict[str, str]:
    """A residual unit: numbered convs and BNs; our ``shortcut`` child is CRD's ``shortcut``."""
    number, names = _Numbering(), {}
    for name, m in unit.named_modules():
        if not _has_state(m):
            continue
        if name == "shortcut" or name.startswith("shortcut."):
            names[_join(ours, name)] = _join(theirs, shortcut + name[len("shortcut") :])
        else:
            names[_join(ours, name)] = _join(theirs, number(m))
    return names


def _leaves(net: nn.Module) -> Iterator[tuple[str, nn.Module]]:
    """Modules with their own state, in registration (= state_dict) order, a unit whole."""
    skip = None
    for name, m in net.named_modules():
        if skip is not None and name.startswith(skip):
            continue
        skip = None
        if isinstance(m, (*UNITS, InvertedResidual)):
            skip = f"{name}."
            yield name, m
        elif _has_state(m):
            yield name, m


def _residual(unit_prefix: Callable[[int, int], str], shortcut: str, fc: str):
    """Families of residual units in stages (CIFAR ResNets, ResNet50, WRN, ShuffleNets)."""

    def names(net: StagedNet) -> dict[str, str]:
        number, out, seen = _Numbering(), {"head.fc": fc}, {}
        for name, m in _leaves(net.stages):
            ours = f"stages.{name}"
            if isinstance(m, UNITS):
                stage = int(name.split(".")[0])
                b = seen[stage] = seen.get(stage, -1) + 1  # the unit's index in its stage
                out |= _unit_names(m, ours, unit_prefix(stage, b), shortcut)
            else:
                out[ours] = number(m)
        return out

    return names


def _vgg(net: StagedNet) -> dict[str, str]:
    """``stages.s.k`` -> ``block{s}.{k - j}``, ``j`` the index of the stage's first conv
    (our stages start with the ReLU and pool that CRD applies between its blocks)."""
    out = {"head.fc": "classifier"}
    for s, stage in enumerate(net.stages):
        first = next(k for k, m in enumerate(stage) if isinstance(m, nn.Conv2d))
        for k, m in enumerate(stage):
            if _has_state(m):
                out[f"stages.{s}.{k}"] = f"block{s}.{k - first}"
    return out


def _mobilenetv2(net: StagedNet) -> dict[str, str]:
    """Stem ``conv1.k``; inverted residuals ``blocks.{setting}.{repeat}.conv.k`` in order;
    the closing 1x1 conv and BN ``conv2.0`` / ``conv2.1``."""
    slots = iter([(i, j) for i, (_, _, n, _) in enumerate(SETTINGS) for j in range(n)])
    out, tail = {"head.fc": "classifier"}, 0
    for name, m in _leaves(net.stages):
        ours = f"stages.{name}"
        if isinstance(m, InvertedResidual):
            i, j = next(slots)
            for k, _ in _leaves(m.body):
                out[f"{ours}.body.{k}"] = f"blocks.{i}.{j}.conv.{k}"
        elif name.startswith("0."):
            out[ours] = f"conv1.{name.split('.')[1]}"
        else:
            out[ours], tail = f"conv2.{tail}", tail + 1
    return out


_FAMILIES: dict[str, Callable[[StagedNet], dict[str, str]]] = {
    "resnet": _residual(lambda s, b: f"layer{s}.{b}", "downsample", "fc"),
    "resnet50": _residual(lambda s, b: f"layer{s}.{b}", "shortcut", "linear"),
    "wrn": _residual(lambda s, b: f"block{s}.layer.{b}", "convShortcut", "fc"),
    "shuffle": _residual(lambda s, b: f"layer{s}.{b}", "shortcut", "linear"),
    "vgg": _vgg,
    "mobilenetv2": _mobilenetv2,
}


def family(arch: str) -> str:
    """The name-map family of an arch with a CRD layout (see :data:`CRD_NAMES`)."""
    arch = resolve_arch(arch)
    if arch in ("resnet50", "mobilenetv2"):
        return arch
    for prefix in ("resnet", "wrn", "vgg", "shuffle"):
        if arch.startswith(prefix):
            return prefix
    raise AssertionError(arch)  # every CRD_NAMES entry has a family


def key_map(net: StagedNet) -> dict[str, str]:
    """Our state_dict key -> CRD's, for every entry of ``net.state_dict()``, in its order."""
    modules = _FAMILIES[family(net.arch)](net)
    out = {}
    for key in net.state_dict():
        path, _, leaf = key.rpartition(".")
        out[key] = f"{modules[path]}.{leaf}"
    if len(set(out.values())) != len(out):  # a map that merges two tensors is a bug here
        raise ValueError(f"the CRD name map of {net.arch} is not one-to-one")
    return out


def to_crd(net: StagedNet) -> dict[str, Tensor]:
    """``net``'s state_dict under CRD's names (what CRD's model classes ``load_state_dict``)."""
    names = key_map(net)
    return {names[k]: v for k, v in net.state_dict().items()}
