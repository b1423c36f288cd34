"""The CRD name maps: for every arch with a CRD layout, our state_dict under CRD's names is
exactly the keys, shapes and order of CRD's own model (``tests/fixtures/crd_state_dict_keys.json``,
recorded from the authors' classes; their code is not imported here)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from fcfd_viz import models
from fcfd_viz.errors import UserError
from fcfd_viz.models import crd

FACTS = json.loads(
    (Path(__file__).parents[1] / "fixtures" / "crd_state_dict_keys.json").read_text()
)


def test_the_facts_cover_every_arch_with_a_crd_layout():
    assert set(FACTS["archs"]) == set(crd.CRD_NAMES)
    assert FACTS["num_classes"] == 100


@pytest.mark.parametrize("arch", sorted(FACTS["archs"]))
def test_name_map_gives_crd_keys_and_shapes_in_order(arch):
    with torch.device("meta"):  # shapes only: no memory, no init cost
        net = models.create(arch, num_classes=FACTS["num_classes"])
    names = crd.key_map(net)
    ours = [[names[k], list(v.shape)] for k, v in net.state_dict().items()]
    assert ours == FACTS["archs"][arch]


def test_to_crd_renames_the_same_tensors():
    torch.manual_seed(0)
    net = models.create("wrn_16_1", num_classes=10)
    theirs, own = crd.to_crd(net), net.state_dict()
    names = crd.key_map(net)
    assert list(theirs) == [names[k] for k in own]
    assert all(theirs[names[k]].data_ptr() == v.data_ptr() for k, v in own.items())
    # a few landmarks of the WRN layout: stem, pre-activation BN, shortcut, final BN, head
    assert {"conv1.weight", "block1.layer.0.bn1.weight", "block2.layer.0.convShortcut.weight",
            "bn1.running_var", "fc.bias"} <= set(theirs)  # fmt: skip


@pytest.mark.parametrize(
    ("given", "arch"),
    [
        ("resnet32x4", "resnet32x4"),
        ("resnet32x4_vanilla", "resnet32x4"),  # CRD's teacher folder name
        ("ResNet50", "resnet50"),
        ("ResNet50_vanilla", "resnet50"),
        ("MobileNetV2", "mobilenetv2"),
        ("ShuffleV1", "shufflev1"),
        ("shufflev2", "shufflev2"),
        ("wrn_40_2_vanilla", "wrn_40_2"),
    ],
)
def test_resolve_arch_takes_our_names_and_crds(given, arch):
    assert crd.resolve_arch(given) == arch


def test_resolve_arch_refuses_an_arch_without_crd_layout():
    with pytest.raises(UserError, match="has no CRD layout.*resnet8x4"):
        crd.resolve_arch("mobilenet_v1")
    with pytest.raises(UserError, match="Did you mean resnet32x4"):
        crd.resolve_arch("resnet32x5")


def test_every_family_maps_a_crd_arch():
    # one family per network module; each has archs and a map
    assert {crd.family(a) for a in crd.CRD_NAMES} == {
        "resnet", "resnet50", "wrn", "vgg", "mobilenetv2", "shuffle"
    }  # fmt: skip
