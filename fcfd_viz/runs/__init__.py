"""Run folders on disk: the layout and safe reads (:mod:`.layout`: :class:`Run`), the one
writer that makes, replaces and locks a run (:mod:`.writer`), checkpoints (:mod:`.checkpoints`),
the teacher a run was distilled from (:mod:`.provenance`), the listing of a runs folder
(:mod:`.listing`), the metric each task's runs are shown by (:mod:`.metric`) and which files belong to a run (:mod:`.files`).

May import: errors, io, models.
"""
