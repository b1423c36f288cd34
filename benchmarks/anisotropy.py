"""Per-stage channel-sensitivity anisotropy of a trained teacher against the same network at
random initialisation (its BN statistics re-estimated on training data), for the study
scripts (benchmarks/gap.py on digits, benchmarks/spectrum.py on digit-pairs)."""

from __future__ import annotations

import time
from pathlib import Path

import torch

from benchmarks.common import table
from fcfd_viz import models
from fcfd_viz.analysis import Anisotropy
from fcfd_viz.data.datasets import DataConfig
from fcfd_viz.data.loaders import make_loaders
from fcfd_viz.models.batchnorm import cumulative_running_stats
from fcfd_viz.runs.checkpoints import load_checkpoint, model_from_checkpoint

BN_BATCHES = 10  # training batches whose average sets the random network's BN statistics


def anisotropy(
    teacher_dir: Path, n_images: int, eps: float, seed: int, data: DataConfig | None = None
) -> dict:
    """Exact channel directions at every stage, on ``n_images`` test images spread evenly
    over ``data``'s test split (default: digits): max/min and p95/p5 of the per-channel
    sensitivities, for the trained teacher and a random one."""
    ckpt = load_checkpoint(teacher_dir)
    trained = model_from_checkpoint(ckpt)
    torch.manual_seed(seed)
    random = models.create(ckpt["model"]["arch"], num_classes=ckpt["model"]["num_classes"])
    train_loader, test_loader, _ = make_loaders(data or DataConfig(dataset="digits"), seed=seed)
    with cumulative_running_stats(random):
        for _, (x, _) in zip(range(BN_BATCHES), train_loader):
            random(x)
    test = test_loader.dataset
    idx = torch.linspace(0, len(test) - 1, n_images).round().long().tolist()
    images = torch.stack([test[i][0] for i in idx])  # (n, C, H, W)
    out = {
        "arch": ckpt["model"]["arch"],
        "images": n_images,
        "eps": eps,
        "random_seed": seed,
        "bn_reestimated_batches": BN_BATCHES,
    }
    for name, net in (("trained", trained), ("random", random)):
        with torch.no_grad():
            p = torch.softmax(net(images), 1)  # (n, K)
        out[name] = {"mean_max_prob": float(p.max(1).values.mean()), "stages": {}}
        for stage in range(1, net.num_stages):
            t0 = time.perf_counter()
            r = Anisotropy(net, stage).compute(images, eps=eps, directions="channel")
            out[name]["stages"][str(stage)] = {
                "max_min": r.anisotropy_ratio,
                "p95_p5": r.p95_p5_ratio,
                "channels": int(r.feature_shape[0]),
                "seconds": time.perf_counter() - t0,
            }
            print(
                f"  anisotropy {name} stage {stage}: max/min {r.anisotropy_ratio:.3g} "
                f"p95/p5 {r.p95_p5_ratio:.3g}",
                flush=True,
            )
    return out


def anisotropy_markdown(an: dict) -> str:
    """The "Channel-sensitivity anisotropy of the teacher" subsection of :func:`anisotropy`."""
    rows = []
    for k in an["trained"]["stages"]:
        tr, rd = an["trained"]["stages"][k], an["random"]["stages"][k]
        rows.append(
            [
                k, tr["channels"], f"{tr['max_min']:.3g}", f"{tr['p95_p5']:.3g}",
                f"{rd['max_min']:.3g}", f"{rd['p95_p5']:.3g}",
            ]
        )  # fmt: skip
    head = ["stage", "channels", "trained max/min", "trained p95/p5"]
    head += ["random max/min", "random p95/p5"]
    return (
        "### Channel-sensitivity anisotropy of the teacher\n\nExact channel directions, eps = "
        f"{an['eps']} relative, KL, {an['images']} test images; the random {an['arch']} had its "
        f"BN statistics re-estimated on {an['bn_reestimated_batches']} training batches (mean "
        f"max softmax prob: trained {an['trained']['mean_max_prob']:.2f}, random "
        f"{an['random']['mean_max_prob']:.2f}).\n\n" + table(head, rows) + "\n"
    )
