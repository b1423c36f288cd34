"""Where an analysis cuts a network (:mod:`~fcfd_viz.analysis.cuts.cut`: the :class:`Cut`
contract and the stage cut; :mod:`~fcfd_viz.analysis.cuts.layer`: a cut at any named module),
and :class:`CutAnalysis`, the base of every analysis bound to one cut.

May import: errors, io, models, analysis.base (and this package's own modules).
"""

from __future__ import annotations

from torch import nn

from fcfd_viz.analysis.base import Analysis, R
from fcfd_viz.analysis.cuts.cut import Cut, Rest, StageCut, channel_axis, model_device
from fcfd_viz.analysis.cuts.layer import LayerCut
from fcfd_viz.errors import UserError

__all__ = [
    "Cut",
    "CutAnalysis",
    "LayerCut",
    "Rest",
    "StageCut",
    "channel_axis",
    "make_cut",
    "model_device",
]


def make_cut(model: nn.Module, stage: int | None = None, layer: str | None = None) -> Cut:
    """A :class:`StageCut` (``stage``) or a layer cut (``layer``): exactly one of the two."""
    if (stage is None) == (layer is None):
        raise UserError("name exactly one place to cut: a stage or a layer (--stage or --layer)")
    if layer is not None:
        return LayerCut(model, layer)
    if not hasattr(model, "check_stage"):
        raise UserError(f"{type(model).__name__} has no stages; name a layer instead (layer=...)")
    return StageCut(model, stage)


class CutAnalysis(Analysis[R]):
    """An analysis of one cut of ``model``: after a ``stage`` of a staged net, or at the
    module named ``layer`` (a dotted name) of any network; exactly one of the two.
    ``eval_mode``: run the model in eval mode (BatchNorm on running statistics)."""

    def __init__(
        self,
        model: nn.Module,
        stage: int | None = None,
        eval_mode: bool = True,
        *,
        layer: str | None = None,
    ) -> None:
        self.model = model
        self.cut = make_cut(model, stage, layer)
        self.stage, self.layer = self.cut.stage, self.cut.layer
        self.eval_mode = eval_mode
