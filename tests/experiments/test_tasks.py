"""fcfd_viz.experiments.tasks: each task answers its defaults, metric and method registry,
and the CLI asks it instead of branching on the task's name."""

from __future__ import annotations

import pytest

from fcfd_viz import distill
from fcfd_viz.cli import build_parser
from fcfd_viz.cli.distill_cmds import build_config
from fcfd_viz.detection import methods as det_methods
from fcfd_viz.distill.registry import MethodRegistry
from fcfd_viz.errors import UserError
from fcfd_viz.experiments import presets, tasks


def distill_config(*flags: str):
    return build_config(build_parser().parse_args(["distill", *flags]))[0]


def test_both_tasks_use_one_registry_class():
    cls, det = tasks.task("classification"), tasks.task("detection")
    assert cls.methods is distill.REGISTRY and det.methods is det_methods.REGISTRY
    assert all(isinstance(t.methods, MethodRegistry) for t in tasks.TASKS.values())
    assert distill.method_names() == ["ce", "kd", "fitnet", "dkd", "fcfd", "fcfd+dkd"]
    assert det.methods.names() == ["ce", "kd", "fcfd"]
    with pytest.raises(UserError, match="no detection version"):
        det.methods.method_class("fitnet")
    with pytest.raises(UserError, match="detection method 'kd' has no option"):
        det.methods.make_config("kd", beta=1.0)
    assert tasks.task(None) is cls and list(tasks.TASKS) == ["classification", "detection"]


def test_each_task_names_its_metric():
    assert (tasks.task("classification").metric.key, tasks.task(None).metric.label) == (
        "top1",
        "top-1",
    )
    m = tasks.task("detection").metric
    assert (m.key, m.best, m.label, m.format(38.1)) == ("map", "best_map", "mAP", "38.10 mAP")


def test_task_detection_alone_takes_the_det_digits_schedule():
    p = presets.load("det-digits")
    cfg = distill_config("--task", "detection", "--method", "kd", "--teacher", "T")
    assert cfg.task == "detection" and cfg.method == "kd"
    assert (cfg.train.lr, cfg.train.warmup_epochs) == (p.train["lr"], 1)
    assert cfg.train.weight_decay == p.train["weight_decay"] and cfg.train.epochs == 12
    assert (cfg.student, cfg.data.dataset, cfg.data.image_size) == (p.student, p.dataset, 64)
    assert cfg.data.subset is None  # the whole training set (a smoke preset's subset is not)
    # flags still win over the task's defaults, and classification keeps its own
    cfg = distill_config("--task", "detection", "--lr", "0.01", "--epochs", "2")
    assert (cfg.train.lr, cfg.train.epochs, cfg.train.warmup_epochs) == (0.01, 2, 1)
    cfg = distill_config("--method", "kd")
    assert (cfg.train.lr, cfg.student, cfg.data.dataset) == (0.05, "resnet8", "digits")


def test_teacher_defaults_per_task():
    det = tasks.task("detection").teacher_defaults("digit-boxes")
    assert det["student"] == "det_resnet18" and det["train"]["lr"] == 0.02
    coco = tasks.task("detection").teacher_defaults("coco")
    assert coco["student"] == "frcnn_r101" and coco["train"]["milestones"] == [8, 11]
    pairs = tasks.task("classification").teacher_defaults("digit-pairs")
    assert pairs["student"] == "resnet32x4"
    assert tasks.task("classification").teacher_defaults("cifar100")["train"]["epochs"] == 240


def test_one_input_size_rule_for_both_tasks():
    for t in tasks.TASKS.values():
        assert t.input_size({"input_shape": [3, 64, 64]}) == 64
        assert t.input_size({"input_shape": None}) == 16  # the data default: native size
