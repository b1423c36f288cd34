"""What a user runs, end to end: one experiment from its config (:mod:`.experiment`), the
named presets of both tasks (:mod:`.presets`), the tasks by name, each answering its
defaults, metric and methods (:mod:`.tasks`), ``fcfd eval`` of a classifier
(:mod:`.evaluation`), the demo runs every app page can show (:mod:`.demo`,
:mod:`.demo_gap`), the detection study (:mod:`.detection_study`) and any checkpoint's
network whatever its task (:mod:`.networks`).

May import: errors, io, data, models, distill, runs, training, analysis, detection,
experiments.presets (its own presets, below the rest of it).
"""
