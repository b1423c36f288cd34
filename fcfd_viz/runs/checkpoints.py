"""Checkpoints: written atomically, loaded with ``torch.load(weights_only=True)``, rebuilt
into the staged net they hold.

A checkpoint is a dict tagged ``format``: the model spec (arch, num_classes, arch_kwargs),
the student's ``state_dict``, ``extras`` (bridges, connectors), the method's config, the
epoch, best top-1 and, in ``last.pt``, the optimizer state and its epoch's metrics line.
Files of the older format ``fcfd-viz/1`` are converted on load (:mod:`fcfd_viz.models.legacy`).
torch is imported inside the functions: listing runs and reading metrics need none.
"""

from __future__ import annotations

import os
from pathlib import Path

from fcfd_viz.errors import UserError
from fcfd_viz.io.checks import is_count
from fcfd_viz.io.files import atomic_write_with

# format 2: stage cuts at the FCFD authors' points; format-1 files are converted on load
CKPT_FORMAT = "fcfd-viz/2"


def save_checkpoint(path: str | os.PathLike, ckpt: dict) -> None:
    """Save ``ckpt`` atomically: ``torch.save`` to a temp file, fsync, rename. A failed write
    (disk full) removes the temp file and raises a one-line :class:`UserError`."""
    import torch  # here, not at the top: listing runs and reading metrics need no torch

    obj = {"format": CKPT_FORMAT, **ckpt}
    atomic_write_with(path, lambda f: torch.save(obj, f))


def checkpoint_file(path: str | os.PathLike) -> Path:
    """The file a checkpoint path names: the file itself, or a run directory's ``best.pt``
    (else its ``last.pt``). Raises :class:`UserError` when it does not exist."""
    path = Path(path)
    if path.is_dir():  # a run directory: take its best (else last) checkpoint
        cand = [path / "best.pt", path / "last.pt"]
        path = next((p for p in cand if p.exists()), cand[0])
    if not path.exists():
        raise UserError(
            f"checkpoint {path} not found; pass a .pt file or a run directory with best.pt"
        )
    return path


def checkpoint_key(path: str | os.PathLike) -> tuple[str, float]:
    """``(absolute checkpoint file, its mtime)`` of a checkpoint path (:func:`checkpoint_file`):
    what a result computed from it is cached on; a checkpoint training writes anew changes it."""
    file = checkpoint_file(path).resolve()
    return str(file), file.stat().st_mtime


def load_checkpoint(path: str | os.PathLike, map_location: str = "cpu") -> dict:
    """Load an fcfd-viz checkpoint (``weights_only=True``) with clear errors for bad files;
    ``path`` may be a run directory (:func:`checkpoint_file`)."""
    import torch

    path = checkpoint_file(path)
    try:
        ckpt = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as e:
        raise UserError(
            f"checkpoint {path} is unreadable ({type(e).__name__}); it may be corrupt or not an fcfd-viz file"
        ) from None
    from fcfd_viz.models import legacy

    formats = (CKPT_FORMAT, legacy.OLD_FORMAT)
    if not isinstance(ckpt, dict) or ckpt.get("format") not in formats or "model" not in ckpt:
        raise UserError(f"{path} is not an fcfd-viz checkpoint (no {CKPT_FORMAT!r} format tag)")
    _check_model_spec(path, ckpt)
    ckpt["path"] = str(path)
    if ckpt["format"] == legacy.OLD_FORMAT:
        legacy.upgrade(ckpt)
    return ckpt


def _check_model_spec(path: Path, ckpt: dict) -> None:
    """The model spec and weights have the shapes :func:`model_from_checkpoint` reads."""
    spec = ckpt["model"]
    ok = (
        isinstance(spec, dict)
        and isinstance(spec.get("arch"), str)
        and is_count(spec.get("num_classes"))
        and spec["num_classes"] > 0
        and isinstance(spec.get("arch_kwargs", {}), dict)
        and isinstance(ckpt.get("state_dict", {}), dict)
    )
    if not ok:
        raise UserError(
            f"checkpoint {path} has a malformed model spec ({str(spec)[:80]}); "
            "it was not written by fcfd-viz or is damaged"
        )


def model_from_checkpoint(ckpt: dict | str | os.PathLike, expect_arch: str | None = None):
    """Rebuild the staged net stored in a checkpoint (arch and num_classes come from the file)."""
    from fcfd_viz import models

    if not isinstance(ckpt, dict):
        ckpt = load_checkpoint(ckpt)
    spec = ckpt["model"]
    if expect_arch is not None and spec["arch"] != expect_arch:
        raise UserError(
            f"checkpoint {ckpt.get('path')} holds a {spec['arch']}, not a {expect_arch}"
        )
    return rebuild(ckpt, lambda arch, n, **kw: models.create(arch, num_classes=n, **kw))


def rebuild(ckpt: dict, create):
    """The network of a checkpoint dict, in eval mode: ``create(arch, num_classes,
    **arch_kwargs)`` from its model spec, then its ``state_dict`` loaded; one
    :class:`UserError` line when the spec or the weights do not fit."""
    spec = ckpt["model"]
    try:
        net = create(spec["arch"], spec["num_classes"], **spec.get("arch_kwargs", {}))
    except (TypeError, ValueError) as e:  # arch_kwargs the architecture does not take
        raise UserError(
            f"checkpoint {ckpt.get('path')} has a malformed model spec: {str(e).splitlines()[0]}"
        ) from None
    try:
        net.load_state_dict(ckpt["state_dict"])
    except RuntimeError as e:
        raise UserError(
            f"checkpoint {ckpt.get('path')} does not fit a {spec['arch']}: {str(e).splitlines()[0]}"
        ) from None
    return net.eval()
