"""The functional gap: a student's feature pushed through the teacher's rest after a
bridge (FCFD's own, or connectors fitted by closed-form least squares, :mod:`.lstsq`,
:mod:`.closed_form`, :mod:`.connectors`), compared by KL (:mod:`.functional`), on one image
(:mod:`.one_image`) and over seeds (:mod:`.seeds`); its inputs (:mod:`.inputs`) and result
(:mod:`.result`).

Where a student's error lies along the teacher's sensitivity spectrum, and how much of the
KL its Fisher metric predicts (:mod:`.spectrum`; every student of a gap, :mod:`.spectra`). The
connectors' fit settings (:mod:`.fit_config`), the cached feature pairs they are fitted on (:mod:`.feature_pairs`) and the
teacher-side work students of one teacher share (:mod:`.shared_teacher`).

May import: errors, io, data, models, distill, runs, training, analysis.base, analysis.cuts,
analysis.probe.
"""
