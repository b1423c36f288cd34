"""Training: the typed config (:mod:`.config`), the trainer for CPU and GPU, AMP and DDP
(:mod:`.trainer`), its hooks (:mod:`.callbacks`) and loggers (:mod:`.tracking`), what a task
trains and measures (:mod:`.task`), and the device, precision and evaluation helpers
(:mod:`.runtime`).

May import: errors, io, data, models, distill, runs.
"""
