"""Object detection: FCFD and KD on torchvision's Faster R-CNN + FPN.

``data`` (the embedded digit canvases, COCO), ``models`` (detector builders by name, the
paper's pairs), ``base`` / ``fcfd`` / ``kd`` (distillers with the classification
``forward_train -> (output, losses)`` contract), ``metrics`` (COCO mAP through torchmetrics)
and ``task`` (how the shared :class:`~fcfd_viz.training.trainer.Trainer` runs them).

``methods`` (detection methods by name and their knobs), and the functional gap per FPN
level: ``gap`` (DetectionGap), ``gap_result`` and ``gap_report`` (detectors and loaders from
checkpoints; what ``fcfd gap`` prints for them), ``gap_cache`` (the gap kept on disk, a
detector's detections on one canvas: what the app's Detection page shows).

May import: errors, io, data, models, distill, runs, training, analysis.
"""
