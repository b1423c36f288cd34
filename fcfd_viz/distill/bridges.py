"""Bridges (connectors): map one network's stage feature into the other network's space.

A bridge is ``conv (no bias) -> BatchNorm [-> LeakyReLU(0.1)]``:

* same spatial size: 3x3 conv, stride 1;
* source twice the target's size: 3x3 conv, stride 2;
* source half the target's size: 4x4 transposed conv, stride 2;
* the LeakyReLU is added when the *target* network's stages take post-ReLU inputs.

Any other size ratio is an error that names the stage and the shapes.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import cast

import torch
from torch import nn

from fcfd_viz.errors import UserError

Shape = Sequence[int]  # (C, H, W)


class Bridge(nn.Sequential):
    """Maps a (N, C_src, H_src, W_src) feature to (N, C_dst, H_dst, W_dst)."""

    def __init__(self, src: Shape, dst: Shape, leaky: bool, stage: int | None = None) -> None:
        (cin, hs, ws), (cout, ht, wt) = tuple(src), tuple(dst)
        conv: nn.Conv2d | nn.ConvTranspose2d
        if (hs, ws) == (ht, wt):
            conv = nn.Conv2d(cin, cout, 3, stride=1, padding=1, bias=False)
        elif (hs, ws) == (2 * ht, 2 * wt):
            conv = nn.Conv2d(cin, cout, 3, stride=2, padding=1, bias=False)
        elif (2 * hs, 2 * ws) == (ht, wt):
            conv = nn.ConvTranspose2d(cin, cout, 4, stride=2, padding=1, bias=False)
        else:
            where = f"stage {stage}: " if stage is not None else ""
            raise UserError(
                f"{where}cannot bridge a feature of shape {list(src)} to {list(dst)}: spatial sizes must be "
                f"equal or differ by exactly 2x; pick a teacher/student pair whose stages line up"
            )
        layers: list[nn.Module] = [conv, nn.BatchNorm2d(cout)]
        if leaky:
            layers.append(nn.LeakyReLU(0.1))
        super().__init__(*layers)
        self.src, self.dst = tuple(src), tuple(dst)

    @torch.no_grad()
    def set_identity(self) -> Bridge:
        """Make the bridge (nearly) the identity map, for same-shape sources: tests and baselines.

        Exact up to BatchNorm's eps in eval mode (running mean 0, var 1).
        """
        conv = cast(nn.Conv2d, self[0])
        if self.src != self.dst or conv.stride != (1, 1):
            raise ValueError("identity needs equal source and target shapes")
        conv.weight.zero_()
        for c in range(conv.weight.shape[0]):
            conv.weight[c, c, 1, 1] = 1.0
        bn = cast(nn.BatchNorm2d, self[1])
        bn.reset_parameters()  # weight 1, bias 0, running mean 0, running var 1
        return self


def make_bridges(
    src_shapes: Sequence[Shape], dst_shapes: Sequence[Shape], leaky: bool, stages: Iterable[int]
) -> nn.ModuleDict:
    """One :class:`Bridge` per stage index in ``stages``, keyed by ``str(stage)``."""
    if len(src_shapes) != len(dst_shapes):
        raise UserError(
            f"teacher and student must have the same number of stages to be bridged, got "
            f"{len(dst_shapes)} and {len(src_shapes)}; pick a pair from the presets (`fcfd presets`)"
        )
    return nn.ModuleDict(
        {str(i): Bridge(src_shapes[i], dst_shapes[i], leaky, stage=i) for i in stages}
    )
