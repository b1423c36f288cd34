"""CUDA code paths: bf16 autocast + channels_last training and probes on the GPU.

Skipped on machines without CUDA (CI has none); `benchmarks/gpu_check.sh` runs this file on a
GPU machine. The CPU suite covers the same code with the same assertions where they apply.
"""

from __future__ import annotations

import pytest
import torch

from fcfd_viz import distill, models
from fcfd_viz.analysis import Anisotropy
from fcfd_viz.data.datasets import DataConfig
from fcfd_viz.data.loaders import make_loaders
from fcfd_viz.experiments.experiment import ExperimentConfig, run_experiment
from fcfd_viz.runs.checkpoints import model_from_checkpoint
from fcfd_viz.runs.layout import Run
from fcfd_viz.training.config import TrainConfig
from fcfd_viz.training.runtime import evaluate
from fcfd_viz.training.trainer import Trainer

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")


def test_fcfd_run_on_cuda_with_bf16_and_channels_last(digits_teacher, tmp_path):
    cfg = ExperimentConfig(
        method="fcfd",
        student="resnet8",
        teacher=str(digits_teacher),
        data=DataConfig(dataset="digits", image_size=16),
        train=TrainConfig(epochs=3, device="cuda", seed=0, lr=0.05),
        method_kwargs={"feat_warmup_epochs": 1},
    )
    summary = run_experiment(cfg, tmp_path / "run", progress=False)
    # 3 epochs of full digits: far above chance (10%) unless bf16/channels_last broke training
    assert summary["top1"] > 60.0
    losses = Run(tmp_path / "run").metrics()[-1]["losses"]
    assert all(torch.isfinite(torch.tensor(v)) for v in losses.values())
    # the checkpoint is device-free: it loads on CPU and scores what the GPU run scored (+-bf16)
    student = model_from_checkpoint(tmp_path / "run")
    _, test_loader, _ = make_loaders(cfg.data, seed=0)
    cpu_top1 = evaluate(student, test_loader, torch.device("cpu")).top1
    assert abs(cpu_top1 - summary["top1"]) <= 2.0


def test_trainer_picks_bf16_and_channels_last_on_cuda():
    s, t = models.create("resnet8", 10), models.create("resnet8x4", 10)
    d = distill.create("fcfd", s, t, input_shape=(3, 16, 16))
    trainer = Trainer(d, [], [], TrainConfig(epochs=1, device="cuda"), progress=False)
    assert trainer.amp_dtype == torch.bfloat16
    assert trainer.channels_last
    assert torch.backends.cudnn.benchmark  # fixed CIFAR-size batches: cuDNN autotuned
    x, y = torch.randn(8, 3, 16, 16), torch.randint(0, 10, (8,))
    trainer.distiller.start_epoch(0, 1)
    trainer.model.train()
    trainer._step(x, y)  # one mixed-precision step through every FCFD path type
    grads = [p.grad for p in d.student.parameters() if p.grad is not None]
    assert grads and all(torch.isfinite(g).all() for g in grads)


@pytest.mark.parametrize("mode", ["exact", "fisher"])
def test_probe_on_cuda_matches_cpu(mode):
    torch.manual_seed(0)
    net = models.create("resnet8", 10).eval().double()
    x = torch.randn(4, 3, 16, 16, dtype=torch.float64)
    cpu = Anisotropy(net, 2).compute(x, eps=0.01, directions="channel", mode=mode)
    gpu = Anisotropy(net.cuda(), 2).compute(x, eps=0.01, directions="channel", mode=mode)
    torch.testing.assert_close(
        gpu.channel_sensitivity.cpu(), cpu.channel_sensitivity, rtol=1e-6, atol=1e-12
    )
