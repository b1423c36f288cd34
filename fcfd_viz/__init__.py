"""fcfd-viz: an interactive toolkit around Function-Consistent Feature Distillation (FCFD).

The package is organised along the data flow::

    data -> models (staged nets) -> distill (one file per method) -> train/runs
         -> analysis (probe, gap, attribution) -> viz (plotly) -> cli

It never imports streamlit or ipywidgets; ``app/`` and ``notebooks/`` are thin shells over it.
"""

from fcfd_viz.errors import UserError

__version__ = "0.1.0"
__all__ = ["UserError", "__version__"]
