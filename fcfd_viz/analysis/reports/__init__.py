"""Reports: the analyses a CLI command and an app page both show, joined in one typed
result (:mod:`~fcfd_viz.analysis.reports.probe` for ``fcfd probe`` and the Sensitivity page,
:mod:`~fcfd_viz.analysis.reports.gap` for ``fcfd gap`` and the Functional-gap page), and the
study report, one HTML page of runs with both (:mod:`~fcfd_viz.analysis.reports.study` for
``fcfd report`` and the Runs page's download)."""
