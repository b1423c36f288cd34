"""Staged model zoo: every network is a :class:`StagedNet` built by name.

>>> from fcfd_viz import models
>>> net = models.create("resnet20", num_classes=10)
>>> [f.shape[1] for f in net.forward_features(torch.zeros(1, 3, 32, 32))]  # doctest: +SKIP
[16, 16, 32, 64]
"""

from fcfd_viz.models import cifar_resnet  # noqa: F401  (registers the family)
from fcfd_viz.models.base import Head, StagedNet
from fcfd_viz.models.registry import check_name, create, names, register

__all__ = ["Head", "StagedNet", "check_name", "create", "names", "register"]
