"""Perturbation anisotropy: which directions of a feature the network's rest is sensitive
to (:mod:`.anisotropy`, with exact and Fisher sensitivities, :mod:`.fisher`, and Jacobian
singular directions, :mod:`.jacobian`), the one-image perturbation explorer (:mod:`.perturb`)
and channel attributions (:mod:`.attribution`; captum's methods evaluated at the cut,
:mod:`.cut_attribution`). Many-class networks: the output metric reduced to the top-m
classes and one merged rest (:mod:`.classes`).

Results: :mod:`.anisotropy_result`, :mod:`.perturb_result`.

May import: errors, io, models, training, analysis.base, analysis.cuts.
"""
