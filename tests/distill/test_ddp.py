"""Data-parallel training with 2 gloo processes on CPU, launched by torchrun.

(i) smoke: ``torchrun -m fcfd_viz distill`` writes one run directory (rank 0 only);
(ii) exactness: with BN-free nets (and BN-free bridges) two ranks on halves of a global
batch step the student exactly as one process on the whole batch, through the library's own
Trainer/Distiller code, and every rank samples the same FCFD paths at every step.

This file is also the worker script: torchrun runs it with ``--worker OUT``.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from torch import nn
from torch.utils.data import DataLoader, DistributedSampler, TensorDataset

from fcfd_viz import distill
from fcfd_viz.data.datasets import DataConfig
from fcfd_viz.data.loaders import make_loaders
from fcfd_viz.models.base import Head, StagedNet
from fcfd_viz.training.callbacks import Callback
from fcfd_viz.training.config import TrainConfig
from fcfd_viz.training.trainer import Trainer

pytestmark = pytest.mark.usefixtures("one_thread")

IN = (3, 8, 8)
GLOBAL_BATCH, STEPS = 8, 3
METHODS = {"kd": {}, "fcfd": {"num_paths": 2, "feat_weight": 1.0, "feat_warmup_epochs": 0}}


def plain_net(widths: list[int], seed: int) -> StagedNet:
    """A 4-stage net of conv3x3 + ReLU stages, no BatchNorm anywhere: batch-independent."""
    torch.manual_seed(seed)
    stages, cin = [], 3
    for w, s in zip(widths, (1, 1, 2, 2)):
        stages.append(nn.Sequential(nn.Conv2d(cin, w, 3, stride=s, padding=1), nn.ReLU()))
        cin = w
    return StagedNet(stages, Head(cin, 5), arch=f"plain{widths[-1]}", num_classes=5)


def build(method: str):
    teacher = plain_net([12, 12, 24, 24], seed=0)
    student = plain_net([8, 8, 16, 16], seed=1)
    torch.manual_seed(2)
    d = distill.create(method, student, teacher, input_shape=IN, **METHODS[method])
    for bridges in (getattr(d, "s2t", {}), getattr(d, "t2s", {})):
        for b in bridges.values():
            b[1] = nn.Identity()  # the bridges' BatchNorm would see a different batch per rank
    assert not any(isinstance(m, nn.modules.batchnorm._BatchNorm) for m in d.modules())
    return d


def dataset() -> TensorDataset:
    g = torch.Generator().manual_seed(3)
    return TensorDataset(
        torch.randn(GLOBAL_BATCH * STEPS, *IN, generator=g),
        torch.randint(0, 5, (GLOBAL_BATCH * STEPS,), generator=g),
    )


class Record(Callback):
    """After every optimizer step: the trainable weights and the paths sampled in the step."""

    def __init__(self, d) -> None:
        self.weights, self.paths, self.draws = [], [], []
        if hasattr(d, "sample"):
            orig = d.sample

            def sample():
                paths = orig()
                self.draws.append([p.name for p in paths])
                return paths

            d.sample = sample

    def on_step_end(self, trainer, step, losses) -> None:
        d = trainer.distiller
        state = {f"student.{k}": v.clone() for k, v in d.student.state_dict().items()}
        for name, m in d.extras().items():
            state |= {f"{name}.{k}": v.clone() for k, v in m.state_dict().items()}
        self.weights.append(state)
        self.paths.append(self.draws[-1] if self.draws else [])


def train(method: str, rank: int = 0, world: int = 1) -> dict:
    """One epoch of ``STEPS`` steps on the global batches, through Trainer.fit."""
    d = build(method)
    data = dataset()
    if world > 1:  # rank r sees samples r, r + 2, ...: per step the union is the global batch
        sampler = DistributedSampler(data, num_replicas=world, rank=rank, shuffle=False)
        loader = DataLoader(data, batch_size=GLOBAL_BATCH // world, sampler=sampler)
    else:
        loader = DataLoader(data, batch_size=GLOBAL_BATCH, shuffle=False)
    rec = Record(d)
    cfg = TrainConfig(epochs=1, lr=0.1, schedule="constant", device="cpu", seed=5)
    trainer = Trainer(
        d, loader, DataLoader(data, batch_size=64), cfg, callbacks=[rec], progress=False
    )
    assert trainer.world == world and (world == 1 or trainer.model is not d)
    trainer.fit()
    return {
        "weights": rec.weights,
        "paths": rec.paths,
        "loss": trainer.history[0]["loss"],
        "losses": trainer.history[0]["losses"],
    }


def torchrun(args: list[str], cwd: Path, timeout: int = 240) -> subprocess.CompletedProcess:
    # here, not at the top: torchrun's workers run this file as a script, without tests/ on
    # their path
    from helpers import free_port

    env = {
        k: v
        for k, v in os.environ.items()
        if k not in ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT")
    }
    env["OMP_NUM_THREADS"] = "1"
    cmd = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--nproc_per_node=2",
        "--master_addr=127.0.0.1",
        f"--master_port={free_port()}",
        *args,
    ]
    r = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-5000:]
    return r


@pytest.mark.slow
def test_ddp_smoke_distill(tmp_path: Path, digits_teacher: Path):
    out = tmp_path / "run"
    args = [
        "-m",
        "fcfd_viz",
        "distill",
        "--method",
        "fcfd",
        "--teacher",
        str(digits_teacher),
        "--student",
        "resnet8",
    ]
    torchrun(
        [
            *args,
            "--epochs",
            "1",
            "--subset",
            "0.1",
            "--out",
            str(out),
            "--device",
            "cpu",
            "--no-progress",
        ],
        tmp_path,
    )
    names = sorted(p.name for p in out.iterdir())
    assert names == [
        ".writer.lock",  # rank 0's writer lock (writer.json leaves with the writer)
        "best.pt",
        "config.json",
        "last.pt",
        "metrics.jsonl",
        "status.json",
        "summary.json",
        "tb",
    ]
    assert len(list((out / "tb").iterdir())) == 1  # one event file: only rank 0 logs
    summary = json.loads((out / "summary.json").read_text())
    assert summary["method"] == "fcfd" and summary["epochs"] == 1 and summary["top1"] > 0
    records = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert len(records) == 1
    # --batch-size is global: 2 ranks load 32 each, so an epoch of the 142 images takes the
    # 3 optimizer steps of 64 that one process takes (2 steps of 128 while it was per rank)
    one_process, _, _ = make_loaders(DataConfig(dataset="digits", subset=0.1, subset_seed=0))
    assert len(one_process.dataset) == 142 and len(one_process) == 3
    assert records[0]["steps"] == 3
    config = json.loads((out / "config.json").read_text())
    assert config["data"]["batch_size"] == 64
    assert config["distributed"] == {"world_size": 2, "batch_size": 64, "rank_batch_size": 32}
    assert any(k.startswith("func_kl/") for k in records[0]["losses"])
    assert json.loads((out / "status.json").read_text())["state"] == "completed"


@pytest.mark.slow
def test_ddp_detection_distill(tmp_path: Path, det_runs: Path):
    """Detection under torchrun: only rank 0 evaluates, so the mAP metric must not wait for
    the other rank's state (it did: torchmetrics all-gathers on compute by default)."""
    out = tmp_path / "det"
    args = ["-m", "fcfd_viz", "distill", "--task", "detection", "--method", "fcfd"]
    args += ["--preset", "det-digits-smoke", "--teacher", str(det_runs / "det" / "teacher")]
    args += ["--student", "det_resnet10", "--subset", "0.008", "--batch-size", "4"]
    torchrun([*args, "--out", str(out), "--device", "cpu", "--no-progress"], tmp_path)
    config = json.loads((out / "config.json").read_text())
    assert config["distributed"] == {"world_size": 2, "batch_size": 4, "rank_batch_size": 2}
    (record,) = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert record["steps"] == 2  # 8 canvases, 4 per optimizer step across the two ranks
    assert {"app/p2", "roi_kd/st", "roi_kd/ts", "rpn_cls"} <= record["losses"].keys()
    assert 0 <= record["map"] <= 100
    assert json.loads((out / "status.json").read_text())["state"] == "completed"


@pytest.mark.slow
def test_ddp_step_equals_single_process(tmp_path: Path):
    torchrun([str(Path(__file__).resolve()), "--worker", str(tmp_path)], tmp_path)
    for method in METHODS:
        ranks = [torch.load(tmp_path / f"{method}-rank{r}.pt", weights_only=True) for r in (0, 1)]
        single = train(method)
        assert len(single["weights"]) == STEPS
        initial = build(method)
        moved = (
            single["weights"][0]["student.stages.0.0.weight"] - initial.student.stages[0][0].weight
        )
        assert moved.abs().max() > 1e-4  # the step did something
        for step in range(STEPS):
            for key, ref in single["weights"][step].items():
                for r in (0, 1):
                    got = ranks[r]["weights"][step][key]
                    assert torch.allclose(got, ref, atol=1e-6, rtol=0), (
                        method,
                        step,
                        key,
                        r,
                        (got - ref).abs().max(),
                    )
        # the epoch's logged losses are the global-batch means on every rank
        for r in (0, 1):
            assert ranks[r]["loss"] == pytest.approx(single["loss"], abs=1e-6)
            assert ranks[r]["losses"].keys() == single["losses"].keys()
        if method == "fcfd":
            assert ranks[0]["paths"] == ranks[1]["paths"] == single["paths"]
            assert len(ranks[0]["paths"]) == STEPS and all(len(p) == 2 for p in ranks[0]["paths"])
            assert len({tuple(p) for p in ranks[0]["paths"]}) > 1  # different draws across steps


def _worker(out: Path) -> None:
    torch.set_num_threads(1)
    rank, world = int(os.environ["RANK"]), int(os.environ["WORLD_SIZE"])
    for method in METHODS:
        torch.save(train(method, rank, world), out / f"{method}-rank{rank}.pt")
    import torch.distributed as dist

    dist.destroy_process_group()


if __name__ == "__main__" and sys.argv[1:2] == ["--worker"]:
    _worker(Path(sys.argv[2]))
