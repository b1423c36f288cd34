"""Analysis library: perturbation anisotropy, captum channel attributions, functional gap
(figures: fcfd_viz.viz)."""

from fcfd_viz.analysis.anisotropy import Anisotropy, AnisotropyResult
from fcfd_viz.analysis.attribution import AttributionResult, attribute_channels, spearman
from fcfd_viz.analysis.connectors import FitConfig, FitInfo, fit_connectors
from fcfd_viz.analysis.gap import FunctionalGap
from fcfd_viz.analysis.gap_models import load_students
from fcfd_viz.analysis.gap_result import GapEntry, GapResult, gap_reading

__all__ = [
    "Anisotropy",
    "AnisotropyResult",
    "AttributionResult",
    "FitConfig",
    "FitInfo",
    "FunctionalGap",
    "GapEntry",
    "GapResult",
    "attribute_channels",
    "fit_connectors",
    "gap_reading",
    "load_students",
    "spearman",
]
