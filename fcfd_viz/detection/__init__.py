"""Object detection: FCFD and KD on torchvision's Faster R-CNN + FPN.

``data`` (the embedded digit canvases, COCO), ``models`` (detector builders by name, the
paper's pairs), ``base`` / ``fcfd`` / ``kd`` (distillers with the classification
``forward_train -> (output, losses)`` contract), ``metrics`` (COCO mAP through torchmetrics)
and ``task`` (how the shared :class:`~fcfd_viz.train.Trainer` runs them).
"""
