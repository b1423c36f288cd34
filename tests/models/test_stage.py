"""``models.stage``: any traceable network cut at module names, with known answers, and the
cuts it must refuse (a skip connection crossing, a module run twice, a wrong order)."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from fcfd_viz import models
from fcfd_viz.errors import UserError

pytestmark = pytest.mark.usefixtures("one_thread_module")


class Tiny(nn.Module):
    """conv -> relu -> conv (stride 2) -> relu -> mean -> fc, with functional ops between."""

    def __init__(self) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(3, 4, 3, padding=1)
        self.conv2 = nn.Conv2d(4, 8, 3, stride=2, padding=1)
        self.fc = nn.Linear(8, 5)

    def forward(self, x):
        x = torch.relu(self.conv1(x))
        x = torch.relu(self.conv2(x))
        return self.fc(x.mean(dim=(2, 3)))


class Residual(nn.Module):
    """``x + conv2(relu(conv1(x)))``: the skip crosses a cut at conv1; ``act`` runs twice."""

    def __init__(self) -> None:
        super().__init__()
        self.conv1, self.conv2 = nn.Conv2d(3, 3, 1), nn.Conv2d(3, 3, 1)
        self.act = nn.ReLU()
        self.fc = nn.Linear(3, 2)

    def forward(self, x):
        y = x + self.conv2(self.act(self.conv1(x)))
        return self.fc(self.act(y).flatten(2).mean(2))


def test_tiny_net_stages_are_its_cuts() -> None:
    torch.manual_seed(0)
    tiny = Tiny().eval()
    net = models.stage(tiny, ["conv1", "conv2"], arch="tiny")
    x = torch.randn(2, 3, 8, 8)
    with torch.no_grad():
        f1, f2 = net.forward_features(x)
        # stage 0 ends at conv1's output (before its relu); stage 1 is relu -> conv2
        assert torch.equal(f1, tiny.conv1(x))
        assert torch.equal(f2, tiny.conv2(torch.relu(f1)))
        # the head: relu -> mean is the pooled vector, the network's own fc maps it to logits
        assert torch.equal(net.head.pooled(f2), torch.relu(f2).mean(dim=(2, 3)))
        assert torch.equal(net(x), tiny(x))
    assert net.head.fc is tiny.fc and net.num_classes == 5 and net.arch == "tiny"
    assert net.feature_shapes((3, 8, 8)) == [(4, 8, 8), (8, 4, 4)]
    assert models.stage(tiny, ["conv1"], num_classes=3)(x).shape == (2, 3)  # a new fc


def test_torchvision_resnet_at_its_layers_equals_the_model_and_its_adapter() -> None:
    from torchvision.models import resnet18

    torch.manual_seed(0)
    model = resnet18(num_classes=10).eval()
    net = models.stage(model, ["maxpool", "layer1", "layer2", "layer3", "layer4"])
    x = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        want = model(x)
        assert torch.equal(net(x), want)
        by_hand = models.adapters.stage_torchvision_resnet(model, "tv_resnet18", 10).eval()
        for a, b in zip(net.forward_features(x), by_hand.forward_features(x)):
            assert torch.equal(a, b)
        # the FCFD mixed path: any stage's output through the rest gives the same logits
        feats = net.forward_features(x)
        assert all(torch.equal(net.forward_from(feats[k], k + 1), want) for k in range(5))


@pytest.mark.parametrize(
    "cuts, needle",
    [
        (["conv1"], "cannot cut at 'conv1': the input, computed before it, is read after it"),
        (["act"], "cannot cut at 'act': the module runs 2 times"),
        (["conv2", "conv1"], "cannot cut at 'conv1' after 'conv2'"),
        (["conv3"], "cut point 'conv3' is no module of Residual; did you mean conv2, conv1?"),
        ([], "at least one cut point"),
    ],
)
def test_refusals_name_the_cut_point(cuts, needle) -> None:
    with pytest.raises(UserError) as e:
        models.stage(Residual(), cuts)
    assert needle in str(e.value) and "\n" not in str(e.value)


def test_a_skip_connection_inside_a_resnet_block_is_refused() -> None:
    from torchvision.models import resnet18

    with pytest.raises(UserError, match=r"'layer1\.0\.conv1'.*skip connection crosses the cut"):
        models.stage(resnet18(), ["layer1.0.conv1"])
    with pytest.raises(UserError, match="inside the cut point 'layer1'"):
        models.stage(resnet18(), ["layer1", "layer1.0"])
