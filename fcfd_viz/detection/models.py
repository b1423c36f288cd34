"""Faster R-CNN + FPN detectors by name, built from torchvision parts (never downloaded).

Two families:

- ``det_*``: small detectors for the embedded ``digit-boxes`` canvases (CPU-trainable): the
  transform keeps the canvas size (``min_size = max_size = image_size``, nothing is upscaled
  to 800), anchors of 8-128 px, a 64-channel FPN, few RPN / ROI samples and a 128-wide box
  head. ``det_resnet18`` is the teacher; ``det_resnet10`` and ``det_mobilenetv2`` students.
- ``frcnn_*``: the paper's COCO models (ResNet-18/50/101, MobileNetV2) with a 256-channel FPN
  and torchvision's COCO settings; :data:`PAIRS` names the paper's teacher -> student pairs.

Every detector is a :class:`Detector` (a ``FasterRCNN`` that knows its ``arch``,
``num_classes`` and ``spec()``), whose backbone returns the FPN levels ``0, 1, 2, 3, pool``
(strides 4-64), called p2-p6 in loss names (:data:`LEVEL_NAMES`). BatchNorm is trainable
everywhere (no pretrained statistics to freeze: nothing is downloaded).
"""

from __future__ import annotations

from collections.abc import Callable

from torch import nn
from torchvision.models import mobilenet_v2, resnet
from torchvision.models.detection import FasterRCNN
from torchvision.models.detection.anchor_utils import AnchorGenerator
from torchvision.models.detection.backbone_utils import BackboneWithFPN
from torchvision.models.detection.faster_rcnn import FastRCNNPredictor, TwoMLPHead
from torchvision.ops import MultiScaleRoIAlign

from fcfd_viz.detection.data import CANVAS, MEAN, STD
from fcfd_viz.errors import UserError

LEVEL_NAMES = {"0": "p2", "1": "p3", "2": "p4", "3": "p5", "pool": "p6"}
# the paper's teacher -> student pairs on COCO (name -> (teacher arch, student arch))
PAIRS = {
    "r101-r18": ("frcnn_r101", "frcnn_r18"),
    "r101-r50": ("frcnn_r101", "frcnn_r50"),
    "r50-mbv2": ("frcnn_r50", "frcnn_mbv2"),
}


class Detector(FasterRCNN):
    """torchvision's ``FasterRCNN`` plus what fcfd-viz records of a model: ``arch``,
    ``num_classes`` (background included) and the ``arch_kwargs`` it was built with.

    ``forward(images, targets)`` is torchvision's: losses in train mode, detections (list of
    ``{"boxes", "labels", "scores"}``) in eval mode.
    """

    def __init__(self, arch: str, num_classes: int, arch_kwargs: dict, backbone, **kw) -> None:
        # torchvision takes num_classes only when it builds the box predictor itself
        super().__init__(backbone, num_classes=None if "box_predictor" in kw else num_classes, **kw)
        self.arch, self.num_classes, self.arch_kwargs = arch, num_classes, dict(arch_kwargs)

    def spec(self) -> dict:
        """The model spec a checkpoint stores (rebuilt by :func:`create`)."""
        return {
            "arch": self.arch,
            "num_classes": self.num_classes,
            "arch_kwargs": dict(self.arch_kwargs),
            "task": "detection",
        }


def _resnet_body(layers: list[int], bottleneck: bool) -> tuple[nn.Module, dict, list[int]]:
    block = resnet.Bottleneck if bottleneck else resnet.BasicBlock
    net = resnet.ResNet(block, layers)  # weights never loaded: random init
    width = 4 if bottleneck else 1
    chans = [64 * width, 128 * width, 256 * width, 512 * width]
    return net, {f"layer{i + 1}": str(i) for i in range(4)}, chans


def _mobilenet_body(width_mult: float) -> tuple[nn.Module, dict, list[int]]:
    feats = mobilenet_v2(width_mult=width_mult).features
    ends = [3, 6, 13, 17]  # the last block at strides 4, 8, 16, 32 (the 1x1 to 1280 unused)
    chans = [feats[i].out_channels for i in ends]
    return feats, {str(i): str(k) for k, i in enumerate(ends)}, chans


def _fpn(body, fpn_channels: int) -> BackboneWithFPN:
    net, returns, chans = body
    return BackboneWithFPN(net, returns, chans, fpn_channels)


def _small(arch: str, body, num_classes: int, image_size: int, fpn_channels: int) -> Detector:
    """A CPU-sized detector for ``image_size`` canvases (see the module docstring)."""
    names = ["0", "1", "2", "3"]
    anchors = AnchorGenerator(((8,), (16,), (32,), (64,), (128,)), ((0.5, 1.0, 2.0),) * 5)
    # canonical scale 32: 12-24 px digits pool from p2-p3, not all from p2 (224 = ImageNet's);
    # one sample per bin: a 7x7 grid over a 3-6 cell box already samples below a cell, and
    # CPU RoIAlign is a third of a step at 2 (with 32 ROIs per image: -34% per step)
    pool = MultiScaleRoIAlign(names, 7, 1, canonical_scale=32)
    kwargs = {"image_size": image_size, "fpn_channels": fpn_channels}
    return Detector(
        arch,
        num_classes,
        kwargs,
        _fpn(body, fpn_channels),
        min_size=image_size,
        max_size=image_size,
        image_mean=[MEAN] * 3,
        image_std=[STD] * 3,
        rpn_anchor_generator=anchors,
        rpn_pre_nms_top_n_train=300,
        rpn_pre_nms_top_n_test=150,
        rpn_post_nms_top_n_train=100,
        rpn_post_nms_top_n_test=50,
        rpn_batch_size_per_image=64,
        box_roi_pool=pool,
        box_head=TwoMLPHead(fpn_channels * 7 * 7, 128),
        box_predictor=FastRCNNPredictor(128, num_classes),
        box_batch_size_per_image=32,  # <= 3 objects a canvas: 8 positives are plenty
        box_detections_per_img=20,
    )


def _coco(arch: str, body, num_classes: int, fpn_channels: int = 256) -> Detector:
    """torchvision's COCO Faster R-CNN settings (800-1333 px, 2000/1000 proposals)."""
    return Detector(
        arch,
        num_classes,
        {"fpn_channels": fpn_channels},
        _fpn(body, fpn_channels),
    )


Builder = Callable[..., Detector]
DETECTORS: dict[str, Builder] = {
    "det_resnet18": lambda num_classes=11, image_size=CANVAS, fpn_channels=64: _small(
        "det_resnet18", _resnet_body([2, 2, 2, 2], False), num_classes, image_size, fpn_channels
    ),
    "det_resnet10": lambda num_classes=11, image_size=CANVAS, fpn_channels=64: _small(
        "det_resnet10", _resnet_body([1, 1, 1, 1], False), num_classes, image_size, fpn_channels
    ),
    "det_mobilenetv2": lambda num_classes=11, image_size=CANVAS, fpn_channels=64: _small(
        "det_mobilenetv2", _mobilenet_body(0.5), num_classes, image_size, fpn_channels
    ),
    "frcnn_r18": lambda num_classes=81, fpn_channels=256: _coco(
        "frcnn_r18", _resnet_body([2, 2, 2, 2], False), num_classes, fpn_channels
    ),
    "frcnn_r50": lambda num_classes=81, fpn_channels=256: _coco(
        "frcnn_r50", _resnet_body([3, 4, 6, 3], True), num_classes, fpn_channels
    ),
    "frcnn_r101": lambda num_classes=81, fpn_channels=256: _coco(
        "frcnn_r101", _resnet_body([3, 4, 23, 3], True), num_classes, fpn_channels
    ),
    "frcnn_mbv2": lambda num_classes=81, fpn_channels=256: _coco(
        "frcnn_mbv2", _mobilenet_body(1.0), num_classes, fpn_channels
    ),
}


def names() -> list[str]:
    """Every detector name."""
    return list(DETECTORS)


def check_name(arch: str) -> None:
    """A one-line :class:`UserError` unless ``arch`` is a detector name."""
    if arch not in DETECTORS:
        raise UserError(f"unknown detector {arch!r}; choose one of {', '.join(DETECTORS)}")


def create(arch: str, num_classes: int, **arch_kwargs) -> Detector:
    """The detector ``arch`` for ``num_classes`` classes (background included), randomly
    initialised; ``arch_kwargs``: ``image_size`` and ``fpn_channels`` (``det_*``),
    ``fpn_channels`` (``frcnn_*``)."""
    check_name(arch)
    if arch.startswith("det_") and "image_size" in arch_kwargs:
        arch_kwargs["image_size"] = int(arch_kwargs["image_size"])
    return DETECTORS[arch](num_classes=num_classes, **arch_kwargs)


def check_pair(teacher: Detector, student: Detector) -> None:
    """A one-line :class:`UserError` unless teacher and student see the same image sizes
    (transform) and give FPN levels of the same names, classes and count."""
    tt, st = teacher.transform, student.transform
    same_tf = (tt.min_size, tt.max_size, tt.image_mean, tt.image_std) == (
        st.min_size,
        st.max_size,
        st.image_mean,
        st.image_std,
    )
    if not same_tf:
        raise UserError(
            f"teacher {teacher.arch} and student {student.arch} resize images differently "
            f"({tt.min_size}/{tt.max_size} vs {st.min_size}/{st.max_size}); pick a pair from "
            "one family (det_* for digit-boxes, frcnn_* for coco) with the same --image-size"
        )
    if teacher.num_classes != student.num_classes:
        raise UserError(
            f"teacher has {teacher.num_classes} classes, student {student.num_classes}; "
            "use a teacher trained on the same dataset"
        )
    t_levels = teacher.roi_heads.box_roi_pool.featmap_names
    if t_levels != student.roi_heads.box_roi_pool.featmap_names:
        raise UserError(f"teacher {teacher.arch} and student {student.arch} differ in FPN levels")


def from_checkpoint(ckpt: dict) -> Detector:
    """The detector a checkpoint dict holds (spec and ``state_dict``), in eval mode."""
    from fcfd_viz.runs.checkpoints import rebuild

    return rebuild(ckpt, create)
