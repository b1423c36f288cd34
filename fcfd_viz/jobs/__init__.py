"""Background jobs: runs started from the app in their own processes (:mod:`.control`), their
specs (:mod:`.spec`) and records (:mod:`.records`), and the demo build (:mod:`.demo_build`).

May import: errors, io, data, models, distill, runs, training, experiments.
"""
