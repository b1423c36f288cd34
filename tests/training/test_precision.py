"""--precision (issue #14): what ``auto`` resolves to from the CPU's flags, ``--amp`` as its
old name, a bf16 run on CPU, the exact fp32 path, and probes that stay fp32 under autocast."""

from __future__ import annotations

import json
from dataclasses import replace

import pytest
import torch
from torch import nn

from fcfd_viz import models
from fcfd_viz.analysis.base import Analysis
from fcfd_viz.data.datasets import DataConfig
from fcfd_viz.errors import UserError
from fcfd_viz.experiments.experiment import ExperimentConfig, run_experiment
from fcfd_viz.training.config import TrainConfig, upgrade_train
from fcfd_viz.training.runtime import (
    autocast_dtype,
    channels_last_hazard,
    cpu_flags,
    cpu_has_fast_bf16,
    evaluate,
    runtime_record,
    uses_channels_last,
)

pytestmark = pytest.mark.usefixtures("one_thread")
CPU = torch.device("cpu")
ZEN4 = {"avx512f", "avx512bw", "avx512_bf16"}  # this project's EPYC
SAPPHIRE = {"avx512f", "amx_tile", "amx_bf16"}
SKYLAKE = {"avx2", "avx512f", "avx512bw"}  # AVX512, but bf16 only emulated


def cpu_runtime(precision: str, setting: str, channels_last: bool) -> dict:
    """config.json's ``runtime`` record of a CPU run."""
    return {
        "device": "cpu",
        "precision": precision,
        "precision_setting": setting,
        "channels_last": channels_last,
    }


@pytest.mark.parametrize(
    "precision, flags, dtype",
    [
        ("auto", ZEN4, torch.bfloat16),
        ("auto", SAPPHIRE, torch.bfloat16),
        ("auto", SKYLAKE, None),
        ("auto", set(), None),
        ("fp32", ZEN4, None),
        ("off", ZEN4, None),  # the old --amp off
        ("bf16", SKYLAKE, torch.bfloat16),  # asked for: given, fast or not
        ("fp16", ZEN4, torch.float16),
    ],
)
def test_precision_resolution_on_cpu(precision, flags, dtype):
    assert autocast_dtype(precision, CPU, flags) == dtype
    assert cpu_has_fast_bf16(flags) == (flags in (ZEN4, SAPPHIRE))


def test_channels_last_default_and_the_runtime_record(monkeypatch):
    bf16, cuda = torch.bfloat16, torch.device("cuda")
    assert uses_channels_last(None, bf16, CPU) and uses_channels_last(None, torch.float16, CPU)
    # fp32 on CPU: channels_last under auto where the CPU is x86 with AVX2 (measured faster
    # there); contiguous elsewhere and when fp32 is asked for (the exact path of old)
    avx2, arm = frozenset({"fpu", "avx2"}), frozenset({"fp", "asimd"})
    assert uses_channels_last(None, None, CPU, "auto", avx2)
    assert not uses_channels_last(None, None, CPU, "fp32", avx2)
    assert not uses_channels_last(None, None, CPU, "auto", arm)
    assert not uses_channels_last(None, None, CPU)  # conftest: a CPU with no flags
    assert not uses_channels_last(False, None, CPU, "auto", avx2)  # --no-channels-last
    assert uses_channels_last(None, None, cuda)  # CUDA as before
    assert not uses_channels_last(False, bf16, CPU) and uses_channels_last(True, None, CPU)
    assert not runtime_record(CPU, "auto", None)["channels_last"]  # conftest: no bf16 flags
    monkeypatch.setenv("FCFD_CPU_FLAGS", "fpu avx2")
    assert runtime_record(CPU, "auto", None)["channels_last"]
    assert not runtime_record(CPU, "fp32", None)["channels_last"]
    monkeypatch.setenv("FCFD_CPU_FLAGS", "fpu avx512_bf16")
    assert cpu_flags() == {"fpu", "avx512_bf16"}
    assert runtime_record(CPU, "auto", None) == cpu_runtime("bf16", "auto", channels_last=True)


def test_amp_is_the_old_name_of_precision():
    assert upgrade_train({"amp": "off", "lr": 0.1}) == {"precision": "fp32", "lr": 0.1}
    assert upgrade_train({"amp": "bf16", "precision": "bf16"}) == {"precision": "bf16"}
    assert upgrade_train({"precision": "fp16"}) == {"precision": "fp16"}
    with pytest.raises(UserError, match="--amp off and --precision bf16 disagree"):
        upgrade_train({"amp": "off", "precision": "bf16"})
    with pytest.raises(UserError, match="--amp must be one of"):
        upgrade_train({"amp": "fp8"})
    cfg = TrainConfig(amp="off")
    cfg.validate()
    assert (cfg.precision, cfg.amp) == ("fp32", None)
    with pytest.raises(UserError, match="--precision must be one of"):
        TrainConfig(precision="fp8").validate()
    # config.json of a run from before --precision
    old = ExperimentConfig().to_dict()
    assert "amp" not in old["train"]
    old["train"] = {k: v for k, v in old["train"].items() if k != "precision"} | {"amp": "off"}
    assert ExperimentConfig.from_dict(old).train.precision == "fp32"


def tiny(precision: str, **train) -> ExperimentConfig:
    return ExperimentConfig(
        method="ce",
        student="resnet8_w025",
        data=DataConfig(dataset="digits", image_size=16, subset=0.1, batch_size=32),
        train=TrainConfig(epochs=1, device="cpu", seed=3, precision=precision, **train),
    )


def test_a_bf16_run_on_cpu_trains_with_fp32_weights(tmp_path, capsys):
    summary = run_experiment(tiny("bf16"), tmp_path / "run", tensorboard=False, progress=True)
    assert "training on cpu: bf16 autocast (--precision bf16), channels_last on" in (
        capsys.readouterr().err
    )
    (rec,) = map(json.loads, open(tmp_path / "run" / "metrics.jsonl"))
    assert torch.isfinite(torch.tensor(rec["loss"])) and summary["top1"] > 0
    ckpt = torch.load(tmp_path / "run" / "last.pt", weights_only=True)
    floats = [t for t in ckpt["state_dict"].values() if t.is_floating_point()]
    assert floats and all(t.dtype == torch.float32 for t in floats)
    config = json.loads((tmp_path / "run" / "config.json").read_text())
    assert config["runtime"] == cpu_runtime("bf16", "bf16", channels_last=True)
    assert config["train"]["precision"] == "bf16" and "amp" not in config["train"]
    assert ExperimentConfig.from_dict(config).train.precision == "bf16"  # reads back


def test_fp32_is_the_old_amp_off_path_exactly(tmp_path):
    def metrics(cfg, name):
        run_experiment(cfg, tmp_path / name, tensorboard=False, progress=False)
        recs = list(map(json.loads, open(tmp_path / name / "metrics.jsonl")))
        return [{k: v for k, v in r.items() if k != "seconds"} for r in recs]

    fp32 = metrics(tiny("fp32"), "fp32")
    old = tiny("auto", amp="off")  # the old spelling: full precision, contiguous tensors
    assert metrics(old, "amp-off") == fp32
    config = json.loads((tmp_path / "fp32" / "config.json").read_text())
    assert config["runtime"]["precision"] == "fp32" and not config["runtime"]["channels_last"]


class Dtypes(Analysis):
    """The dtype a linear layer computes in inside ``compute``."""

    def compute(self, x: torch.Tensor) -> torch.dtype:
        return nn.Linear(4, 3)(x).dtype


def test_analyses_compute_in_fp32_under_an_enclosing_autocast():
    x = torch.randn(2, 4)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        assert nn.Linear(4, 3)(x).dtype == torch.bfloat16  # autocast is on here
        assert Dtypes().compute(x) == torch.float32
        assert torch.is_autocast_enabled("cpu")  # and on again after it


def test_evaluate_in_bf16_keeps_the_weights_fp32():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Flatten(), nn.Linear(8, 3))
    loader = [(torch.randn(5, 2, 4), torch.tensor([0, 1, 2, 0, 1]))]
    acc = evaluate(model, loader, CPU, torch.bfloat16)
    full = evaluate(model, loader, CPU)
    assert acc.n == full.n == 5
    assert all(p.dtype == torch.float32 for p in model.parameters())


def test_auto_on_an_avx2_cpu_trains_channels_last_the_same_computation(tmp_path, monkeypatch):
    """auto on an x86 CPU without bf16: fp32, channels_last (measured faster there); the
    same computation as the contiguous fp32 path up to summation order."""
    monkeypatch.setenv("FCFD_CPU_FLAGS", "fpu avx2")
    cfg = lambda precision: replace(tiny(precision), student="resnet8")  # noqa: E731
    run_experiment(cfg("auto"), tmp_path / "auto", tensorboard=False, progress=False)
    run_experiment(cfg("fp32"), tmp_path / "fp32", tensorboard=False, progress=False)
    config = json.loads((tmp_path / "auto" / "config.json").read_text())
    assert config["runtime"] == cpu_runtime("fp32", "auto", channels_last=True)
    (auto,), (fp32,) = (
        list(map(json.loads, open(tmp_path / name / "metrics.jsonl"))) for name in ("auto", "fp32")
    )
    # an epoch of SGD steps carries the summation-order difference along: ~1e-4 relative;
    # a wrong gradient (what oneDNN issue 6035 gives) is off by orders of magnitude
    assert auto["loss"] == pytest.approx(fp32["loss"], rel=1e-3)
    assert abs(auto["test_top1"] - fp32["test_top1"]) <= 1.0  # a prediction or two may flip


def test_channels_last_hazard_names_the_thin_strided_shortcut():
    """oneDNN's fp32 channels_last backward of a 1x1 stride-2 convolution with fewer input
    channels than its block corrupts memory on CPU (oneDNN issue 6035): the quarter-width
    resnet8 has one (4 channels), the full-width nets do not."""
    assert "1x1, stride 2, 4 input channels" in channels_last_hazard(models.create("resnet8_w025"))
    for arch in ("resnet8", "resnet8x4", "resnet20"):
        assert channels_last_hazard(models.create(arch)) is None
    thin = torch.nn.Conv2d(4, 8, 1, stride=2)
    assert channels_last_hazard(thin) and not channels_last_hazard(torch.nn.Conv2d(4, 8, 1))
    assert not channels_last_hazard(torch.nn.Conv2d(16, 32, 1, stride=2))


def test_a_hazardous_model_stays_contiguous_under_auto_and_refuses_channels_last(
    tmp_path, monkeypatch
):
    monkeypatch.setenv("FCFD_CPU_FLAGS", "fpu avx2")
    run_experiment(tiny("auto"), tmp_path / "auto", tensorboard=False, progress=False)
    config = json.loads((tmp_path / "auto" / "config.json").read_text())
    assert config["runtime"]["precision"] == "fp32" and not config["runtime"]["channels_last"]
    asked = tiny("fp32", channels_last=True)
    with pytest.raises(UserError, match="--channels-last: the model's .*run without"):
        run_experiment(asked, tmp_path / "asked", tensorboard=False, progress=False)
    assert not (tmp_path / "asked").exists()  # refused before the run folder was made
    # bf16 autocast takes other kernels: channels_last stays on (test above)
    assert runtime_record(CPU, "bf16", True, models.create("resnet8_w025"))["channels_last"]
