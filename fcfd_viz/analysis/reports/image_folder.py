"""Probe images from a folder of PNG / JPEG files (``fcfd probe --image-dir DIR``).

Files are taken in sorted name order, the first ``n``, and preprocessed by the model's
transform: :func:`fcfd_viz.models.image_transform` for the ImageNet architectures it knows
(the architecture's and the weights' own preprocessing), else a resize of the shorter side
and a centre crop to the model's input size, then ImageNet normalisation.

>>> images = folder_images("photos/", 16, image_transform("tv_resnet18", None, 224))  # doctest: +SKIP
>>> images.shape                                                                      # doctest: +SKIP
torch.Size([16, 3, 224, 224])
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import torch
from torch import Tensor

from fcfd_viz.errors import UserError

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg")


def image_transform(arch: str, weights: str | None, size: int, own: bool = True) -> Callable:
    """The preprocessing of ``arch`` (with ``weights``): a PIL image -> (3, size, size).

    Uses :func:`fcfd_viz.models.image_transform` when ``own`` and it knows ``arch`` (or
    ``weights`` are given: their own transforms); otherwise resizes the shorter side to
    ``size``, centre-crops ``size`` x ``size`` and normalises with the ImageNet mean and std.
    """
    from fcfd_viz import models
    from fcfd_viz.models.torchvision_zoo import imagenet_arch

    if own and (weights is not None or imagenet_arch(arch)):
        return models.image_transform(arch, weights)
    from torchvision import transforms

    from fcfd_viz.data.datasets import IMAGENET_STATS

    mean, std = IMAGENET_STATS
    return transforms.Compose(
        [
            transforms.Resize(size),
            transforms.CenterCrop(size),
            transforms.ToTensor(),
            transforms.Normalize(mean, std),
        ]
    )


def image_files(folder: str | Path) -> list[Path]:
    """The PNG / JPEG files directly in ``folder``, sorted by name."""
    root = Path(folder)
    if not root.is_dir():
        raise UserError(f"image folder {root} not found; pass --image-dir DIR with PNG/JPEG files")
    files = sorted(p for p in root.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)
    if not files:
        raise UserError(f"no PNG or JPEG files in {root}")
    return files


def digits_images(n: int, size: int) -> Tensor:
    """``n`` digits test images (scikit-learn's 8x8 handwritten digits, evenly spread over the
    test split, normalised as the digits runs are) upsampled to ``size``: (n, 3, size, size).
    A stand-in when a model has no dataset of its own and no image folder is given."""
    import torch.nn.functional as F

    from fcfd_viz.data.datasets import DigitsDataset

    if n < 1:
        raise UserError(f"the probe needs at least one image, got {n}")
    test = DigitsDataset(False, 16, augment=False)
    idx = torch.linspace(0, len(test) - 1, min(n, len(test))).round().long()
    return F.interpolate(test.images[idx], size=(size, size), mode="bilinear", align_corners=False)


def digits_test_image(index: int, size: int) -> tuple[Tensor, int]:
    """``(image (3, size, size), label)``: digits test image ``index`` (0 .. 359), prepared
    as :func:`digits_images` prepares it."""
    import torch.nn.functional as F

    from fcfd_viz.data.datasets import DigitsDataset

    test = DigitsDataset(False, 16, augment=False)
    if not 0 <= index < len(test):
        raise UserError(f"digits has test images 0 .. {len(test) - 1}, not {index}")
    image, label = test[index]
    up = F.interpolate(image[None], size=(size, size), mode="bilinear", align_corners=False)
    return up[0], label


def folder_images(folder: str | Path, n: int, transform: Callable) -> Tensor:
    """The first ``n`` images of ``folder`` (sorted names), transformed and stacked: (n, ...)."""
    from PIL import Image, UnidentifiedImageError

    if n < 1:
        raise UserError(f"the probe needs at least one image, got {n}")
    out = []
    for path in image_files(folder)[:n]:
        try:
            with Image.open(path) as im:
                out.append(transform(im.convert("RGB")))
        except Image.DecompressionBombError as e:  # PIL's pixel cap: gigabytes to decode
            raise UserError(
                f"image {path} is too large to probe ({str(e).split(',')[0]}); "
                "remove it from --image-dir or shrink it"
            ) from None
        except (OSError, UnidentifiedImageError) as e:
            raise UserError(f"cannot read image {path}: {e}") from None
    return torch.stack(out)
