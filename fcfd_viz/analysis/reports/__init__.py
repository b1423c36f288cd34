"""Reports: the analyses a CLI command and an app page both show, joined in one typed
result (:mod:`~fcfd_viz.analysis.reports.probe` for ``fcfd probe`` and the Sensitivity page,
:mod:`~fcfd_viz.analysis.reports.gap` for ``fcfd gap`` and the Functional-gap page)."""
