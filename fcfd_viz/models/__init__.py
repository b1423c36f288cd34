"""Staged model zoo: every network is a :class:`StagedNet` built by name.

>>> from fcfd_viz import models
>>> net = models.create("resnet20", num_classes=10)
>>> [f.shape[1] for f in net.forward_features(torch.zeros(1, 3, 32, 32))]  # doctest: +SKIP
[16, 16, 32, 64]

``tv_*`` nets start from torchvision's pretrained weights with ``weights="IMAGENET1K_V1"``
(read from the torch hub cache); :func:`image_transform` prepares images for them. Your own
stages become a staged net with :func:`from_stages`, any traceable network cut at module
names with :func:`stage`; :func:`load_plugins` imports modules of yours that register more.

Modules: ``base`` (StagedNet: stem, stages, head), ``registry`` (name -> constructor), the
families ``cifar_resnet``, ``cifar_resnet50``, ``wrn``, ``vgg``, ``mobilenetv2``,
``shufflenet``, ``adapters`` (your own stages; ImageNet MobileNet v1) and ``torchvision_zoo``
(tv_* nets, their image transforms), ``pretrained`` (torchvision weights from the hub cache),
``sources`` (what a probe can open), ``input_size`` (the one rule for the image size a network
is shown), ``crd`` (CRD / RepDistiller parameter names <-> ours),
``legacy`` (checkpoints of the old format) and ``batchnorm`` (BatchNorm regimes and freezing).

May import: errors, io, data.
"""

# Importing a family module registers its architectures.
from fcfd_viz.io.plugins import load_plugins
from fcfd_viz.models import (  # noqa: F401
    adapters,
    cifar_resnet,
    cifar_resnet50,
    mobilenetv2,
    shufflenet,
    torchvision_zoo,
    vgg,
    wrn,
)
from fcfd_viz.models.adapters import from_stages
from fcfd_viz.models.base import Head, StagedNet
from fcfd_viz.models.registry import check_name, create, names, register, takes_weights
from fcfd_viz.models.stage import stage
from fcfd_viz.models.torchvision_zoo import image_transform

__all__ = [
    "Head",
    "StagedNet",
    "check_name",
    "create",
    "from_stages",
    "image_transform",
    "load_plugins",
    "names",
    "register",
    "stage",
    "takes_weights",
]
