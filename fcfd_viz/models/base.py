"""The one interface every network in fcfd-viz has: a :class:`StagedNet`.

A staged net is ``stages[0] (stem) -> stages[1] -> ... -> stages[-1] -> head``. FCFD's mixed
paths and every analysis cut a network between stages, so each stage is an ``nn.Module``
taking the previous stage's feature map, and the head is ``pool -> fc``: by default
``relu -> global avg pool -> linear``; networks whose classifier differs (ConvNeXt's
LayerNorm, VGG's MLP) bring their own ``pool`` and ``fc``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import cast

import torch
from torch import Tensor, nn

from fcfd_viz.errors import UserError

Shape3 = tuple[int, int, int]  # (C, H, W) of a stage's output


class Head(nn.Module):
    """``pool -> fc``: (N, C, H, W) -> (N, num_classes).

    By default ``pool`` is ``relu`` (when ``relu``) then a global average pool, and ``fc`` a
    fresh ``Linear(in_channels, num_classes)``. A network with another classifier passes its
    own modules: ``pool`` maps the last feature map to the vector FCFD's pooled term compares
    ((N, C, H, W) -> (N, D)), ``fc`` maps that vector to logits (a ``Linear``, or an MLP with
    dropout). ``in_channels`` and ``num_classes`` are then unused.
    """

    def __init__(
        self,
        in_channels: int,
        num_classes: int,
        relu: bool = True,
        pool: nn.Module | None = None,
        fc: nn.Module | None = None,
    ) -> None:
        super().__init__()
        self.relu = relu
        self.pool = pool  # None: global average pool (a state_dict without head.pool)
        self.fc = fc if fc is not None else nn.Linear(in_channels, num_classes)

    def pooled(self, f: Tensor) -> Tensor:
        """The vector fed to ``fc``: (N, C, H, W) -> (N, D)."""
        if self.relu:
            f = torch.relu(f)
        return f.mean(dim=(2, 3)) if self.pool is None else self.pool(f)

    def forward(self, f: Tensor) -> Tensor:
        return self.fc(self.pooled(f))


class StagedNet(nn.Module):
    """A network split into stages (stem first) plus a :class:`Head`.

    Args:
        stages: the stage modules, stem first.
        head: the classifier head.
        arch: registry name, stored in checkpoints so a model rebuilds from its file.
        num_classes: number of outputs.
        post_relu: True when each stage's *input* is expected to be post-ReLU
            (non-negative). FCFD's bridges into this network then end with a LeakyReLU.
        arch_kwargs: extra keyword arguments the registry needs to rebuild the net.

    ``weights`` names the pretrained weights the net started from (``None``: random init);
    checkpoints record it, and rebuilding from one never needs the weights file.
    """

    def __init__(
        self,
        stages: Sequence[nn.Module],
        head: Head,
        arch: str,
        num_classes: int,
        post_relu: bool = True,
        arch_kwargs: dict | None = None,
    ) -> None:
        super().__init__()
        self.stages = nn.ModuleList(stages)
        self.head = head
        self.arch = arch
        self.num_classes = num_classes
        self.post_relu = post_relu
        self.arch_kwargs = dict(arch_kwargs or {})
        self.weights: str | None = None
        self._shape_cache: dict[tuple[int, ...], list[tuple[int, int, int]]] = {}

    @property
    def num_stages(self) -> int:
        return len(self.stages)

    def check_stage(self, stage: int) -> int:
        """``stage`` as an int, or a :class:`~fcfd_viz.errors.UserError` naming the valid range."""
        last = self.num_stages - 1
        if isinstance(stage, bool) or not isinstance(stage, int) or not 0 <= stage <= last:
            raise UserError(
                f"stage {stage!r} is out of range for {self.arch} ({self.num_stages} stages): "
                f"use 0..{last}"
            )
        return stage

    def run_stages(self, f: Tensor, start: int, stop: int | None = None) -> Tensor:
        """Run ``stages[start:stop]`` on ``f`` (an image when ``start == 0``)."""
        stop = self.num_stages if stop is None else stop
        for stage in self.stages[start:stop]:
            f = stage(f)
        return f

    def forward_from(self, f: Tensor, start: int) -> Tensor:
        """Logits from a feature that is the input of ``stages[start]``."""
        return self.head(self.run_stages(f, start))

    def forward_features(self, x: Tensor) -> list[Tensor]:
        """Every stage's output, stem first: a list of ``num_stages`` (N, C_i, H_i, W_i)."""
        feats = []
        for stage in self.stages:
            x = stage(x)
            feats.append(x)
        return feats

    def forward(self, x: Tensor) -> Tensor:
        return self.head(self.run_stages(x, 0))

    @torch.no_grad()
    def feature_shapes(
        self, input_shape: Sequence[int] = (3, 32, 32)
    ) -> list[tuple[int, int, int]]:
        """(C, H, W) of each stage's output for one input of ``input_shape`` (C, H, W)."""
        key = tuple(input_shape)
        if key not in self._shape_cache:
            was_training = self.training
            self.eval()  # a dry run must not touch BatchNorm running statistics
            try:
                p = next(self.parameters())
                x = torch.zeros(1, *key, device=p.device, dtype=p.dtype)
                shapes = [cast(Shape3, tuple(f.shape[1:])) for f in self.forward_features(x)]
            finally:
                self.train(was_training)
            self._shape_cache[key] = shapes
        return self._shape_cache[key]

    def stage_channels(self, input_shape: Sequence[int] = (3, 32, 32)) -> list[int]:
        """Channel count of each stage's output."""
        return [s[0] for s in self.feature_shapes(input_shape)]

    def stage_reduction(self, input_shape: Sequence[int] = (3, 32, 32)) -> list[int]:
        """Spatial down-sampling factor of each stage's output relative to the input."""
        return [input_shape[-1] // s[-1] for s in self.feature_shapes(input_shape)]

    def spec(self) -> dict:
        """What a checkpoint needs to rebuild this net through the registry (and, when the
        net started from pretrained weights, their name, for the record)."""
        spec = {"arch": self.arch, "num_classes": self.num_classes, "arch_kwargs": self.arch_kwargs}
        if self.weights is not None:
            spec["weights"] = self.weights
        return spec
