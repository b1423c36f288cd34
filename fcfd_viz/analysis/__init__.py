"""Analysis library, one shape for all (:mod:`fcfd_viz.analysis.base`): an ``Analysis`` bound
to a model, ``compute(...)`` returning a ``Result`` with ``to_dict()`` / ``from_dict()``.

Perturbation anisotropy, the perturbation explorer (one image, same-norm directions side by
side), captum channel attributions, functional gap, and the reports the CLI and the app
share (figures: :mod:`fcfd_viz.viz.figures`, :mod:`fcfd_viz.viz.perturb`).

Subpackages: ``cuts`` (where an analysis cuts a network), ``probe`` (perturbation
anisotropy, attributions), ``gap`` (the functional gap and its connectors) and ``reports``
(what a CLI command and an app page both show).

May import: errors, io, training (and, to re-export them, its own subpackages).
"""

from fcfd_viz.analysis.base import Analysis, Result
from fcfd_viz.analysis.gap.connectors import fit_connectors
from fcfd_viz.analysis.gap.fit_config import FitConfig, FitInfo
from fcfd_viz.analysis.gap.functional import FunctionalGap
from fcfd_viz.analysis.gap.inputs import load_students
from fcfd_viz.analysis.gap.result import GapEntry, GapResult, gap_reading
from fcfd_viz.analysis.probe.anisotropy import Anisotropy, AnisotropyResult
from fcfd_viz.analysis.probe.attribution import Attribution, AttributionResult, spearman
from fcfd_viz.analysis.probe.perturb import PerturbationExplorer, PerturbationResult
from fcfd_viz.analysis.reports.gap import GapReport, gap_inputs, gap_report, merge_gap_reports
from fcfd_viz.analysis.reports.probe import (
    FeatureMaps,
    ProbeReport,
    combine_probe,
    probe_images,
    probe_report,
)

__all__ = [
    "Analysis",
    "Anisotropy",
    "AnisotropyResult",
    "Attribution",
    "AttributionResult",
    "FeatureMaps",
    "FitConfig",
    "FitInfo",
    "FunctionalGap",
    "GapEntry",
    "GapReport",
    "GapResult",
    "PerturbationExplorer",
    "PerturbationResult",
    "ProbeReport",
    "Result",
    "combine_probe",
    "fit_connectors",
    "gap_inputs",
    "gap_reading",
    "gap_report",
    "load_students",
    "merge_gap_reports",
    "probe_images",
    "probe_report",
    "spearman",
]
