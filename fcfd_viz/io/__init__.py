"""Layer 1, the system under everything: atomic files and JSON (:mod:`.files`), file locks
(:mod:`.locks`), process identity (:mod:`.procs`), validation of user values (:mod:`.checks`),
plugin modules (:mod:`.plugins`) and resources shipped beside the package (:mod:`.shipped`).

May import: errors.
"""
