"""Pretrained torchvision weights from the local hub cache (a fake file in a temp TORCH_HOME):
the staged net computes the torchvision model's logits with those weights; a missing file
is one line naming the file and its folder; nothing is downloaded."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from fcfd_viz import models
from fcfd_viz.errors import UserError
from fcfd_viz.models.pretrained import NewClassifierWarning

pytestmark = pytest.mark.usefixtures("one_thread_module")

ARCH, BUILDER, FILE = (
    "tv_mobilenet_v3_small",
    "mobilenet_v3_small",
    "mobilenet_v3_small-047dcff4.pth",
)


def torchvision_model():
    from torchvision import models as tvm

    return tvm.get_model(BUILDER, weights=None).eval()


@pytest.fixture
def hub(fake_hub) -> Path:
    return fake_hub


@pytest.fixture
def weights_state(fake_imagenet_state) -> dict:
    return fake_imagenet_state


def test_file_name_is_torchvisions() -> None:
    from torchvision.models import MobileNet_V3_Small_Weights

    assert MobileNet_V3_Small_Weights.IMAGENET1K_V1.url.endswith("/" + FILE)


@pytest.mark.parametrize(
    "name", ["IMAGENET1K_V1", "DEFAULT", "MobileNet_V3_Small_Weights.IMAGENET1K_V1"]
)
def test_staged_net_computes_the_models_logits_with_those_weights(hub, weights_state, name):
    net = models.create(ARCH, num_classes=1000, weights=name).eval()
    ref = torchvision_model()
    ref.load_state_dict(weights_state)
    x = torch.randn(2, 3, 64, 64, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        assert torch.equal(net(x), ref(x))
    assert net.weights == "MobileNet_V3_Small_Weights.IMAGENET1K_V1"
    assert net.spec()["weights"] == "MobileNet_V3_Small_Weights.IMAGENET1K_V1"


def test_other_class_count_keeps_features_and_says_the_classifier_is_new(hub, weights_state):
    with pytest.warns(NewClassifierWarning, match="1000 classes.*built with 10"):
        net = models.create(ARCH, num_classes=10, weights="IMAGENET1K_V1").eval()
    ref = torchvision_model()
    ref.load_state_dict(weights_state)
    x = torch.randn(1, 3, 64, 64, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        assert torch.equal(net.run_stages(x, 0), ref.features(x))
        assert net(x).shape == (1, 10)
    fc = net.head.fc  # Linear, Hardswish, Dropout, new Linear(1024, 10)
    assert torch.equal(fc[0].weight, weights_state["classifier.0.weight"])
    assert fc[3].weight.shape == (10, 1024)


def test_missing_file_names_the_file_and_the_folder(tmp_path, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    with pytest.raises(UserError) as e:
        models.create(ARCH, num_classes=10, weights="IMAGENET1K_V1")
    msg = str(e.value)
    assert "\n" not in msg and FILE in msg and str(tmp_path / "hub" / "checkpoints") in msg
    assert not (tmp_path / "hub").exists()  # nothing downloaded, nothing written


def test_bad_names_and_archs_without_weights_are_one_line(hub):
    cases = [
        ("resnet8", "IMAGENET1K_V1", "resnet8 takes no pretrained weights"),
        (ARCH, "IMAGENET1K_V9", "choose one of IMAGENET1K_V1, DEFAULT"),
        (ARCH, "ResNet18_Weights.IMAGENET1K_V1", "MobileNet_V3_Small_Weights.NAME"),
    ]
    for arch, weights, needle in cases:
        with pytest.raises(UserError, match=needle.replace(".", r"\.")):
            models.create(arch, num_classes=10, weights=weights)
    (hub / FILE).write_bytes(b"not a checkpoint")
    with pytest.raises(UserError, match="does not load into"):
        models.create(ARCH, num_classes=10, weights="IMAGENET1K_V1")


def test_image_transform() -> None:
    from PIL import Image
    from torchvision.models import MobileNet_V3_Small_Weights

    rng = torch.Generator().manual_seed(0)
    pixels = torch.randint(0, 256, (300, 260, 3), generator=rng, dtype=torch.uint8).numpy()
    image = Image.fromarray(pixels)
    own = models.image_transform(ARCH, "IMAGENET1K_V1")(image)
    want = MobileNet_V3_Small_Weights.IMAGENET1K_V1.transforms()(image)
    assert own.dtype == torch.float32 and own.shape == (3, 224, 224)
    assert torch.equal(own, want)
    plain = models.image_transform("tv_resnet18")(image)  # resize 256, crop 224, ImageNet stats
    assert plain.shape == (3, 224, 224) and torch.allclose(plain, want, atol=1e-5)
    with pytest.raises(UserError, match="ImageNet architectures"):
        models.image_transform("resnet8")
    with pytest.raises(UserError, match="takes no pretrained weights"):
        models.image_transform("resnet8", "IMAGENET1K_V1")
