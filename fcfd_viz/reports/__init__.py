"""The study report: one self-contained HTML page of many runs, with their curves, probes
and functional gaps (:mod:`.study` gathers the runs, :mod:`.study_page` draws the page; ``fcfd
report`` and the Runs page's download).

May import: errors, io, data, models, runs, training, analysis, detection, viz.
"""
