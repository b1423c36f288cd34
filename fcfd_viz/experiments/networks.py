"""The network of any fcfd-viz checkpoint, whatever its task (the app's pages take both)."""

from __future__ import annotations


def network_from_checkpoint(ckpt: dict):
    """The eval-mode network of a loaded checkpoint: a staged net
    (:func:`~fcfd_viz.runs.checkpoints.model_from_checkpoint`) or, for ``task: detection`` in
    its model spec, a detector (:func:`fcfd_viz.detection.models.from_checkpoint`)."""
    # imported here, not above: the app's Home page imports this module and must not wait
    # for torch
    from fcfd_viz.detection.models import from_checkpoint
    from fcfd_viz.runs.checkpoints import model_from_checkpoint

    if ckpt["model"].get("task") == "detection":
        return from_checkpoint(ckpt)
    return model_from_checkpoint(ckpt)
