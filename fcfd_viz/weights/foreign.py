"""Weights files from elsewhere, read safely and fitted to a zoo network.

A weights file is what other code bases save: a bare ``state_dict``, or a checkpoint dict
whose ``model`` (or ``state_dict``) entry is one, as CRD / RepDistiller save their CIFAR
teachers. :func:`read_weights` loads it with ``torch.load(weights_only=True)`` and says what
it found; :func:`fit_weights` checks it against a network key by key and shape by shape,
under CRD's names (:mod:`fcfd_viz.models.crd`) or ours, and names the first misfit.
:mod:`fcfd_viz.weights.interop` turns a fitted file into a run directory and a run back into a file.
"""

from __future__ import annotations

import hashlib
import os
import pickle
import re
import warnings
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import Tensor

from fcfd_viz import models
from fcfd_viz.errors import UserError
from fcfd_viz.models import crd

ENTRIES = ("model", "state_dict")  # checkpoint entries that may hold the state_dict
OUR_PREFIXES = ("stages.", "head.")  # every key of a StagedNet starts with one
DP_PREFIX = "module."  # nn.DataParallel's wrapper
TORCH_MAGIC = (b"PK\x03\x04", b"\x80")  # torch.save since 1.6 (zip), before it (pickle)


@dataclass
class WeightsFile:
    """The tensors of a weights file and how they were stored.

    ``container``: ``"state_dict"`` (bare) or the checkpoint entry that held them
    (``"checkpoint['model']"``, as CRD saves); ``names``: ``"crd"`` or ``"fcfd-viz"``; ``stripped``: the
    ``module.`` prefix of ``nn.DataParallel`` when every key had it (removed here).
    """

    path: Path
    state: dict[str, Tensor]
    container: str
    names: str
    stripped: str | None = None

    def describe(self) -> str:
        extra = f", {self.stripped!r} prefix removed" if self.stripped else ""
        return f"{self.container}, {self.names} names{extra}"

    def source(self) -> dict:
        """What a run records of where its weights came from."""
        return {
            "path": str(self.path.resolve()),
            "sha256": sha256(self.path),
            "format": self.container,
            "names": self.names,
            "stripped_prefix": self.stripped,
        }


def sha256(path: str | os.PathLike) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def _tensor_dict(obj) -> bool:
    return isinstance(obj, dict) and bool(obj) and all(isinstance(v, Tensor) for v in obj.values())


def read_weights(path: str | os.PathLike) -> WeightsFile:
    """The state_dict a file holds (see :class:`WeightsFile`), or a one-line :class:`UserError`
    (not found, not a PyTorch file, objects beyond tensors, no state_dict in it)."""
    from fcfd_viz.models.legacy import OLD_FORMAT
    from fcfd_viz.runs.checkpoints import CKPT_FORMAT

    path = Path(path)
    if not path.is_file():
        what = "is a directory" if path.is_dir() else "not found"
        raise UserError(f"weights file {path} {what}; pass the .pth/.pt file to import")
    with open(path, "rb") as f:
        magic = f.read(4)
    if not magic.startswith(TORCH_MAGIC):
        raise UserError(f"{path} is not a PyTorch checkpoint (neither torch's zip nor a pickle)")
    try:
        with warnings.catch_warnings():  # torch warns about pickle protocols on stderr
            warnings.simplefilter("ignore")
            obj = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as e:
        if "weights only" not in str(e).lower():
            raise UserError(
                f"{path} is not a PyTorch checkpoint ({str(e).splitlines()[0]})"
            ) from None
        culprit = re.search(r"Unsupported global: GLOBAL ([\w.]+)", str(e))
        held = f" ({culprit[1]})" if culprit else ""
        raise UserError(
            f"{path} cannot be loaded safely: torch.load(weights_only=True) refused it, as it "
            f"holds Python objects beyond tensors{held} or is not a PyTorch file; if you trust "
            "it, save its state_dict alone with torch.save and import that file"
        ) from None
    except Exception as e:  # a zip that is not torch's, a truncated file, ...
        raise UserError(f"{path} is not a PyTorch checkpoint ({type(e).__name__})") from None
    if isinstance(obj, dict) and obj.get("format") in (CKPT_FORMAT, OLD_FORMAT):
        raise UserError(
            f"{path} is already an fcfd-viz checkpoint: pass it (or its run directory) directly"
        )
    if _tensor_dict(obj):
        container, state = "state_dict", obj
    else:
        entry = next(
            (e for e in ENTRIES if isinstance(obj, dict) and _tensor_dict(obj.get(e))), None
        )
        if entry is None:
            found = f"a dict with keys {sorted(map(str, obj))[:6]}" if isinstance(obj, dict) else (
                type(obj).__name__
            )  # fmt: skip
            raise UserError(
                f"{path} holds no state_dict (found {found}); expected a dict of tensors or a "
                "checkpoint whose 'model' entry is one, as CRD saves its teachers"
            )
        container, state = f"checkpoint[{entry!r}]", obj[entry]
    stripped = None
    if all(k.startswith(DP_PREFIX) for k in state):
        state, stripped = {k[len(DP_PREFIX) :]: v for k, v in state.items()}, DP_PREFIX
    names = "fcfd-viz" if any(k.startswith(OUR_PREFIXES) for k in state) else "crd"
    return WeightsFile(path, dict(state), container, names, stripped)


def expected_keys(net: models.StagedNet, names: str) -> dict[str, str]:
    """Our state_dict key -> the key a file with ``names`` (crd or fcfd-viz) stores it under."""
    if names == "crd":
        return crd.key_map(net)
    return {k: k for k in net.state_dict()}


def _shape(t: Tensor) -> list[int]:
    return list(t.shape)


def misfits(net: models.StagedNet, state: dict[str, Tensor], names: str):
    """``(missing, wrong_shape, unexpected)`` file keys of ``state`` against ``net``, each in
    order (wrong shapes as ``(key, file shape, needed shape)``). A missing BatchNorm
    ``num_batches_tracked`` (files saved by PyTorch < 0.4.1) is not counted: it is zero."""
    keys, own = expected_keys(net, names), net.state_dict()
    missing, wrong = [], []
    for ours, theirs in keys.items():
        if theirs not in state:
            if not theirs.endswith("num_batches_tracked"):
                missing.append(theirs)
        elif state[theirs].shape != own[ours].shape:
            wrong.append((theirs, _shape(state[theirs]), _shape(own[ours])))
    known = set(keys.values())
    return missing, wrong, [k for k in state if k not in known]


def fit_weights(net: models.StagedNet, weights: WeightsFile, dataset: str) -> None:
    """Load ``weights`` into ``net`` (in place), or a one-line :class:`UserError` naming the
    first missing or mis-shaped key (both shapes), the unexpected keys, and any arch the file
    fits instead."""
    missing, wrong, unexpected = misfits(net, weights.state, weights.names)
    if missing or wrong or unexpected:
        raise UserError(_misfit_message(net, weights, dataset, missing, wrong, unexpected))
    keys, own = expected_keys(net, weights.names), net.state_dict()
    net.load_state_dict({k: weights.state.get(keys[k], own[k]) for k in own})


def _misfit_message(
    net: models.StagedNet,
    weights: WeightsFile,
    dataset: str,
    missing: list[str],
    wrong: list[tuple[str, list[int], list[int]]],
    unexpected: list[str],
) -> str:
    order = list(expected_keys(net, weights.names).values())
    first = min([*missing, *(w[0] for w in wrong)], key=order.index, default=None)
    parts = []
    if first in missing:
        parts.append(f"missing key {first!r} (needed shape {_needed(net, weights, first)})")
    elif first is not None:
        _, got, need = next(w for w in wrong if w[0] == first)
        parts.append(f"key {first!r} has shape {got}, a {net.arch} for {dataset} needs {need}")
    more = len(missing) + len(wrong) - (first is not None)
    if more:
        parts.append(f"{more} more key{'s' * (more > 1)} missing or mis-shaped")
    if unexpected:
        shown = ", ".join(repr(k) for k in unexpected[:3])
        parts.append(
            f"unexpected keys {shown}"
            + (f" (+{len(unexpected) - 3})" if len(unexpected) > 3 else "")
        )
    head = {v for k, v in expected_keys(net, weights.names).items() if k.startswith("head.")}
    if not missing and not unexpected and {w[0] for w in wrong} <= head:
        outputs = next(w[1][0] for w in wrong)
        fix = f"its classifier has {outputs} outputs, {dataset} {net.num_classes}: check --dataset"
    else:
        cands = _candidates(net.arch, weights.path)
        fits = [a for a in cands if _fits(a, net.num_classes, weights)]
        fix = (
            f"the file fits {', '.join(fits)}: pass --arch {fits[0]}"
            if fits
            else "check --arch (the network the file was trained as) and --dataset"
        )
    return f"{weights.path} ({weights.describe()}) does not fit a {net.arch}: {'; '.join(parts)}; {fix}"


def _needed(net: models.StagedNet, weights: WeightsFile, key: str) -> list[int]:
    ours = {v: k for k, v in expected_keys(net, weights.names).items()}[key]
    return _shape(net.state_dict()[ours])


def _candidates(arch: str, path: Path) -> list[str]:
    """Archs worth trying when a file does not fit ``arch``: the one its path names (CRD's
    teacher folders are ``resnet32x4_vanilla``), then ``arch``'s family."""
    named = []
    for part in (path.parent.name, path.stem):
        try:
            named.append(crd.resolve_arch(part))
        except UserError:
            pass
    same = [a for a in crd.CRD_NAMES if crd.family(a) == crd.family(arch)]
    return [a for a in dict.fromkeys([*named, *same]) if a != arch]


def _fits(arch: str, num_classes: int, weights: WeightsFile) -> bool:
    """``weights`` fit ``arch`` exactly."""
    return not any(
        misfits(models.create(arch, num_classes=num_classes), weights.state, weights.names)
    )
