"""Plotly figures, apart from computing: probe and anisotropy (:mod:`.figures`), the app's
views (:mod:`.app`), the functional gap (:mod:`.gap`), the perturbation explorer
(:mod:`.perturb`), the error spectrum (:mod:`.spectrum`), detection (:mod:`.detection`), and the
HTML pieces of reports
(:mod:`.report`). Figures take analysis results; they never compute them.

May import: errors, io, analysis.
"""
