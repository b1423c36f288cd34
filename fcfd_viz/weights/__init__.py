"""Weights from elsewhere: torchvision's and the CRD authors' checkpoints loaded into our
networks (:mod:`.foreign`) and imported as a teacher run (:mod:`.interop`).

May import: errors, io, data, models, distill, runs, training, experiments.
"""
