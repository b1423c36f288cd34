"""Perturbation anisotropy: which directions of a feature the network's rest is sensitive
to (:mod:`.anisotropy`, with exact and Fisher sensitivities, :mod:`.fisher`, and Jacobian
singular directions, :mod:`.jacobian`), the one-image perturbation explorer (:mod:`.perturb`)
and captum channel attributions (:mod:`.attribution`).

Results: :mod:`.anisotropy_result`, :mod:`.perturb_result`.

May import: errors, io, models, training, analysis.base, analysis.cuts.
"""
