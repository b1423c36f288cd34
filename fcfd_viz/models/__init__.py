"""Staged model zoo: every network is a :class:`StagedNet` built by name.

>>> from fcfd_viz import models
>>> net = models.create("resnet20", num_classes=10)
>>> [f.shape[1] for f in net.forward_features(torch.zeros(1, 3, 32, 32))]  # doctest: +SKIP
[16, 16, 32, 64]

Your own stages become a staged net with :func:`from_stages`.
"""

# Importing a family module registers its architectures.
from fcfd_viz.models import (  # noqa: F401
    adapters,
    cifar_resnet,
    cifar_resnet50,
    mobilenetv2,
    shufflenet,
    vgg,
    wrn,
)
from fcfd_viz.models.adapters import from_stages
from fcfd_viz.models.base import Head, StagedNet
from fcfd_viz.models.registry import check_name, create, names, register

__all__ = ["Head", "StagedNet", "check_name", "create", "from_stages", "names", "register"]
