"""The one input-size rule of the CLI, the app and the notebooks: the side of the images a
network is shown when no ``--image-size`` says otherwise.

A checkpoint's network sees what it was trained on: its recorded ``input_shape``, else the
data default (:data:`~fcfd_viz.data.datasets.DEFAULT_IMAGE_SIZE`, which each dataset reads
as its own native size: ImageNet 224, CIFAR 32, digit-boxes' 64 canvas). A network named
without a checkpoint sees 224 if it is a torchvision ImageNet architecture (its weights'
crop), else 32 (digits upsampled to 32x32: a ResNet's last stage is then 1x1, not empty).
"""

from __future__ import annotations

from fcfd_viz.data.datasets import DEFAULT_IMAGE_SIZE
from fcfd_viz.models.torchvision_zoo import imagenet_arch

IMAGENET_SIZE = 224
MODEL_SIZE = 32


def checkpoint_input_size(ckpt: dict) -> int:
    """The image side a checkpoint dict's network was trained on (see the module)."""
    shape = ckpt.get("input_shape")
    return int(shape[-1]) if shape else DEFAULT_IMAGE_SIZE


def model_input_size(arch: str) -> int:
    """The image side of architecture ``arch`` named without a checkpoint (see the module)."""
    return IMAGENET_SIZE if imagenet_arch(arch) else MODEL_SIZE
