"""Reports: the analyses a CLI command and an app page both show, joined in one typed
result (:mod:`~fcfd_viz.analysis.reports.probe` for ``fcfd probe`` and the Sensitivity page,
:mod:`~fcfd_viz.analysis.reports.gap` for ``fcfd gap`` and the Functional-gap page), and the
images of a folder ready for a network (:mod:`~fcfd_viz.analysis.reports.image_folder`). The
HTML study report that draws them is :mod:`fcfd_viz.reports`.

May import: errors, io, data, models, runs, training, analysis.base, analysis.cuts,
analysis.probe, analysis.gap.
"""
