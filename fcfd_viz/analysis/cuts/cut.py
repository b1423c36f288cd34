"""Where a probe cuts a network: after a stage of a staged net, or after any named module.

A :class:`Cut` turns a batch of images into ``(f, rest)``: the feature ``f`` at the cut
(N, ...) and ``rest``, the rest of the network as a function of a replaced feature. ``rest``
takes ``B = m * N`` maps (``m`` copies of the batch's feature, copy-major, as the probes stack
their perturbed directions) and returns (B, K) logits; it is differentiable (``torch.func``'s
``vjp`` / ``jvp`` go through it). The analyses take a cut and never ask which kind it is:

- :class:`StageCut` ``(net, stage)``: a :class:`~fcfd_viz.models.base.StagedNet` cut after
  ``stages[stage]``; ``rest`` is ``stages[stage+1:]`` then the head;
- :class:`~fcfd_viz.analysis.cuts.layer.LayerCut` ``(model, "layer3.1")``: any ``nn.Module``
  cut after a submodule named by its dotted path, through hooks (no staging needed).

>>> f, rest = make_cut(model, layer="encoder.layers.encoder_layer_0").split(images)  # doctest: +SKIP
>>> rest(f).shape                                                                   # doctest: +SKIP
torch.Size([32, 10])

Channels of a feature (:func:`channel_axis`): dim 1 of a conv map (N, C, H, W) or a vector
(N, C); the hidden size D of a token sequence (N, T, D), one channel spanning every token.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence

import torch
from torch import Tensor, nn

Rest = Callable[[Tensor], Tensor]  # replaced feature (B, ...) -> logits (B, K)


def channel_axis(shape: Sequence[int]) -> int:
    """Axis of the channels in one image's feature ``shape`` (no batch dimension).

    A token sequence (T, D) has its channels last (the hidden dimensions); every other
    shape ((C, H, W) conv maps, (C,) vectors, (C, D, H, W) volumes) has them first.
    """
    return 1 if len(shape) == 2 else 0


def model_device(model: nn.Module) -> torch.device:
    """The device of the model's first parameter (CPU for a model without parameters)."""
    return next(model.parameters(), torch.empty(0)).device


class Cut(ABC):
    """A network cut at one place; see the module docstring.

    Attributes:
        model: the whole network (``model(images)`` gives its logits).
        module: the submodule whose output is the feature (captum attributes to it).
        stage: the stage index of a :class:`StageCut`, else None.
        layer: the dotted module name of a layer cut, else None.
    """

    model: nn.Module
    module: nn.Module
    stage: int | None = None
    layer: str | None = None

    @property
    def label(self) -> str:
        """``"stage 2"`` or ``"layer3.1"``: where the cut is, for people."""
        return f"stage {self.stage}" if self.layer is None else self.layer

    @abstractmethod
    def split(self, images: Tensor) -> tuple[Tensor, Rest]:
        """``(f, rest)`` for ``images`` (N, ...): the feature at the cut (no gradient) and the
        rest of the network from a replaced feature of ``m * N`` maps."""

    def features(self, images: Tensor) -> Tensor:
        """The feature at the cut for ``images`` (no gradient)."""
        return self.split(images)[0]

    @abstractmethod
    def rest(self, f: Tensor) -> Tensor:
        """Logits from a replaced feature (a layer cut: of the batch last :meth:`split`)."""


class StageCut(Cut):
    """A :class:`~fcfd_viz.models.base.StagedNet` cut after ``stages[stage]``."""

    def __init__(self, model, stage: int) -> None:
        self.model = model
        self.stage = model.check_stage(stage)
        self.module = model.stages[self.stage]

    def split(self, images: Tensor) -> tuple[Tensor, Rest]:
        with torch.no_grad():  # images follow the model (a CUDA model takes CPU batches)
            f = self.model.run_stages(images.to(model_device(self.model)), 0, self.stage + 1)
        return f, self.rest

    def rest(self, f: Tensor) -> Tensor:
        """Logits from the stage output: ``stages[stage+1:]`` then the head."""
        return self.model.forward_from(f, self.stage + 1)
