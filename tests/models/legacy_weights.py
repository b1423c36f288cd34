"""Weights and logits that pin the zoo's functions across the stage-cut change (cut version 2).

The stage cuts of VGG, WRN, MobileNetV2, ShuffleNetV1 and the ImageNet MobileNet moved to the
FCFD authors' points. That must not change any network's *function*. To check it, the
networks of the zoo *before* the change were given synthetic weights (a pure function of each
parameter's name and shape, so they can be rebuilt from the names alone), run on a fixed
input, and their names, shapes and logits stored in ``tests/fixtures/logits_before_cut_change.json``
(by ``python tests/models/legacy_weights.py`` at commit c91fb37, before the change).
``test_legacy.py`` rebuilds those weights, converts them to today's layout and checks that
today's networks give the same logits.
"""

from __future__ import annotations

import json
import math
import zlib
from pathlib import Path

import torch

DATA = Path(__file__).parents[1] / "fixtures" / "logits_before_cut_change.json"
NUM_CLASSES = 10
# one or two architectures of every family, the ones the presets use first
ARCHS = {
    "resnet8": 32,
    "resnet8x4": 32,
    "resnet32x4": 32,
    "resnet50": 32,
    "wrn_16_1": 32,
    "wrn_40_2": 32,
    "vgg8": 32,
    "vgg13": 32,
    "mobilenetv2": 32,
    "shufflev1": 32,
    "shufflev2": 32,
    "tv_resnet18": 64,
    "mobilenet_v1": 64,
}


def synthetic_state(names_shapes: list[tuple[str, list[int]]]) -> dict[str, torch.Tensor]:
    """A state dict whose every tensor depends only on its key and shape (seeded by a CRC).

    Convolutions and linear layers get He-scaled normals, BatchNorm affine parameters and
    running statistics stay near (1, 0) so deep nets neither explode nor vanish in eval mode.
    """
    out = {}
    for key, shape in names_shapes:
        g = torch.Generator().manual_seed(zlib.crc32(key.encode()))
        if key.endswith("num_batches_tracked"):
            out[key] = torch.tensor(0)
        elif key.endswith("running_var"):
            out[key] = 0.5 + torch.rand(shape, generator=g)
        elif key.endswith("running_mean"):
            out[key] = 0.1 * torch.randn(shape, generator=g)
        elif len(shape) >= 2:
            fan_in = math.prod(shape[1:])
            out[key] = torch.randn(shape, generator=g) * math.sqrt(2.0 / fan_in)
        elif key.endswith("weight"):  # BatchNorm scale
            out[key] = 1.0 + 0.1 * torch.randn(shape, generator=g)
        else:  # biases
            out[key] = 0.1 * torch.randn(shape, generator=g)
    return out


def fixed_input(size: int) -> torch.Tensor:
    """Two images of ``size`` x ``size`` from a fixed generator."""
    return torch.randn(2, 3, size, size, generator=torch.Generator().manual_seed(0))


def record() -> dict:
    """Names, shapes and eval-mode logits of every arch in :data:`ARCHS` with synthetic weights."""
    from fcfd_viz import models

    out = {}
    for arch, size in ARCHS.items():
        net = models.create(arch, num_classes=NUM_CLASSES).eval()
        names_shapes = [(k, list(v.shape)) for k, v in net.state_dict().items()]
        net.load_state_dict(synthetic_state(names_shapes))
        with torch.no_grad():
            logits = net(fixed_input(size)).double()
        out[arch] = {"input_size": size, "state": names_shapes, "logits": logits.tolist()}
    return out


if __name__ == "__main__":
    DATA.parent.mkdir(exist_ok=True)
    DATA.write_text(json.dumps(record()) + "\n")
    print(f"wrote {DATA}")
