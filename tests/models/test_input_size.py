"""fcfd_viz.models.input_size: the one image-size rule of the CLI, the app and notebooks."""

from __future__ import annotations

from fcfd_viz.data.datasets import DEFAULT_IMAGE_SIZE
from fcfd_viz.models.input_size import checkpoint_input_size, model_input_size


def test_a_checkpoint_sees_what_it_was_trained_on():
    assert checkpoint_input_size({"input_shape": [3, 32, 32]}) == 32
    assert checkpoint_input_size({"input_shape": [3, 64, 64]}) == 64
    # none recorded (COCO's varying sizes, older runs): the data default, which each
    # dataset reads as its native size
    assert checkpoint_input_size({"input_shape": None}) == DEFAULT_IMAGE_SIZE
    assert checkpoint_input_size({}) == DEFAULT_IMAGE_SIZE


def test_a_network_named_without_a_checkpoint():
    assert model_input_size("tv_resnet18") == 224  # the ImageNet weights' crop
    assert model_input_size("mobilenet_v1") == 224
    assert model_input_size("resnet8") == 32  # digits upsampled: a last stage of 1x1
