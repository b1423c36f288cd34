"""fcfd-viz: an interactive toolkit around Function-Consistent Feature Distillation (FCFD).

One subpackage per layer; a layer imports only the layers below it (each package's docstring
says which, and tests/test_layers.py holds the code to it)::

    io -> data -> models -> distill -> runs -> training -> analysis -> detection
       -> viz -> reports -> experiments -> weights -> jobs -> cli

The root holds only this file, ``errors`` (the one exception a user reads) and ``__main__``.
It never imports streamlit or ipywidgets; ``app/`` and ``notebooks/`` are thin shells over it.
"""

from fcfd_viz.errors import UserError

__version__ = "0.1.0"
__all__ = ["UserError", "__version__"]
