"""Our FCFD step beside the authors' own, on identical weights, batches and mixed paths (float64).

Needs a checkout of the authors' code (LiuDongyang6/FCFD), outside this repository or in a
git-ignored folder; it is imported, never copied:

    FCFD_OFFICIAL=/path/to/FCFD python benchmarks/fidelity.py [--pairs vgg13-vgg8 ...]

For every CIFAR preset whose pair the authors configured, with their own config file:

1. **Networks.** Their teacher and student with random weights (BatchNorm affine parameters
   randomised too) are copied into ours parameter by parameter (same order and shapes), and
   every stage feature and the logits are compared in eval mode: equal stage features mean
   our stages are cut where theirs are.
2. **Training step.** Their ``MetaModel`` (bridges randomised the same way, copied into our
   FCFD distiller) and our distiller run one step on the same batch for every draw of two
   mixed paths, at an epoch inside the feature warm-up and one after it. Their loss comes from
   their ``Trainer.train_one_epoch`` on a one-batch loader (their loss code, run as is; only
   ``.cuda()`` is a no-op on CPU). Compared: the total loss and the gradient of every
   student and bridge parameter (max relative difference). Alongside, the gradients our step
   would give without the ``func_l2_pooled`` terms show what that term is worth.

Writes benchmarks/results/fidelity.json and the "side by side" section of docs/fidelity.md.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib.util
import io
import itertools
import os
import sys
import time
import types
import warnings
from pathlib import Path

import torch
import yaml
from torch import nn

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from benchmarks.common import ROOT, machine, table, write_json, write_section  # noqa: E402
from fcfd_viz import distill, models  # noqa: E402
from fcfd_viz.distill.paths import candidates  # noqa: E402
from fcfd_viz.experiments import presets  # noqa: E402

DOC = ROOT / "docs" / "fidelity.md"
# our arch name -> the authors' factory name in classification/models
THEIR_NAME = {"shufflev1": "ShuffleV1", "shufflev2": "ShuffleV2", "mobilenetv2": "MobileNetV2"}
THEIR_NAME["resnet50"] = "ResNet50"


def load_official(root: Path):
    """The authors' ``models`` package and ``cifar/main.py`` module, imported from ``root``."""
    cls_dir = root / "classification" if (root / "classification").is_dir() else root
    if not (cls_dir / "models" / "meta.py").exists():
        sys.exit(f"fidelity: {cls_dir} is not a checkout of LiuDongyang6/FCFD (no models/meta.py)")
    sys.path.insert(0, str(cls_dir))
    # their CLI imports these for its own setup only (summary, scheduler, config dict); the
    # training step does not use them, so they need not be installed
    stubs = {
        "torchsummary": {"summary": None},
        "timm": {},
        "timm.utils": {"NativeScaler": None},
        "timm.scheduler": {"CosineLRScheduler": None},
        "easydict": {"EasyDict": dict},
    }
    missing = {
        n for n in ("torchsummary", "timm", "easydict") if importlib.util.find_spec(n) is None
    }
    for name, attrs in stubs.items():
        if name.split(".")[0] in missing:
            sys.modules.setdefault(name, types.SimpleNamespace(**attrs))
    import models as their_models  # noqa: PLC0415 - the checkout's package

    spec = importlib.util.spec_from_file_location(
        "fcfd_official_main", cls_dir / "cifar" / "main.py"
    )
    main = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(main)
    return their_models, main, cls_dir


class AttrDict(dict):
    """What their trainer reads its config as (attribute access to a YAML dict)."""

    __getattr__ = dict.__getitem__


def randomise(net: nn.Module, seed: int) -> None:
    """Random BatchNorm affine parameters and statistics, and zero conv biases (theirs)."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for m in net.modules():
            if isinstance(m, nn.modules.batchnorm._BatchNorm):
                c = m.num_features
                m.weight.copy_(1 + 0.3 * torch.randn(c, generator=g))
                m.bias.copy_(0.2 * torch.randn(c, generator=g))
                m.running_mean.copy_(0.3 * torch.randn(c, generator=g))
                m.running_var.copy_(0.5 + torch.rand(c, generator=g))


def copy_in_order(src: nn.Module, dst: nn.Module, skip_bias: bool = False) -> list[tuple]:
    """Copy ``src``'s state into ``dst`` entry by entry (same order and shapes); returns the
    (src parameter, dst parameter) pairs. ``skip_bias`` drops conv biases ``dst`` lacks."""
    s_items = [(k, v) for k, v in src.state_dict().items()]
    if skip_bias:  # their stride-2 / transposed bridge convs have a bias, ours none: zero it
        with torch.no_grad():
            for m in src.modules():
                if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d)) and m.bias is not None:
                    m.bias.zero_()
        s_items = [(k, v) for k, v in s_items if not (k.endswith("0.bias"))]
    d_items = list(dst.state_dict().items())
    if [tuple(v.shape) for _, v in s_items] != [tuple(v.shape) for _, v in d_items]:
        raise SystemExit(
            f"fidelity: {type(src).__name__} and {type(dst).__name__} differ in layout"
        )
    dst.load_state_dict({k: v for (k, _), (_, v) in zip(d_items, s_items)})
    s_params = dict(src.named_parameters())
    d_params = dict(dst.named_parameters())
    return [
        (s_params[sk], d_params[dk]) for (sk, _), (dk, _) in zip(s_items, d_items) if dk in d_params
    ]


def rel(a: torch.Tensor, b: torch.Tensor) -> float:
    """Max |a - b| relative to max |b|."""
    return float((a - b).abs().max() / b.abs().max().clamp_min(1e-300))


def group_rel(ours: list[torch.Tensor], theirs: list[torch.Tensor]) -> float:
    """Max |difference| over a group of gradients (the student's, the bridges') relative to
    the group's largest gradient entry. Per parameter would be noise for the few whose
    gradient is zero in exact arithmetic (a BN bias right before a linear conv and a
    batch-statistics BN: the second BN removes the shift) and ~1e-17 in floating point."""
    if not theirs:
        return 0.0
    diff = max(float((a - b).abs().max()) for a, b in zip(ours, theirs))
    return diff / max(float(b.abs().max()) for b in theirs)


def their_config(cls_dir: Path, teacher: str, student: str) -> AttrDict:
    name = f"{THEIR_NAME.get(student, student)}-{THEIR_NAME.get(teacher, teacher)}.yaml"
    cfg = yaml.safe_load((cls_dir / "experiments" / "cifar" / name).read_text())
    return AttrDict(cfg, extra_paths=2)


@contextlib.contextmanager
def cuda_noop():
    """Their trainer calls ``.cuda()`` on every batch: a no-op inside, for CPU runs."""
    cuda = torch.Tensor.cuda
    torch.Tensor.cuda = lambda self, *a, **k: self
    try:
        yield
    finally:
        torch.Tensor.cuda = cuda


def their_trainer(main, meta, cfg: AttrDict, optimizer):
    """Their ``cifar/main.py`` ``Trainer`` around ``meta`` without its constructor (which
    builds loaders and a scheduler): what ``train_one_epoch`` reads. The caller sets
    ``train_loader`` and ``scaler`` (their loss-backward-step callable)."""
    trainer = main.Trainer.__new__(main.Trainer)
    trainer.config, trainer.model, trainer.model_num = cfg, meta, 2
    trainer.output_stages = meta.output_stages
    trainer.loss_ce = nn.CrossEntropyLoss()
    trainer.optimizer = optimizer
    return trainer


def their_step(main, meta, cfg: AttrDict, x, y, paths: list[list[int]], epoch: int) -> torch.Tensor:
    """One step of their ``Trainer.train_one_epoch`` on (x, y) with ``paths``; returns the loss
    (gradients are left in .grad)."""
    captured = []
    opt = torch.optim.SGD([p for p in meta.parameters() if p.requires_grad], lr=0.0)
    trainer = their_trainer(main, meta, cfg, opt)
    trainer.train_loader = [(x, y)]
    trainer.scaler = lambda loss, opt: (captured.append(loss.detach()), loss.backward())
    meta.extra_path_list = paths
    with cuda_noop(), contextlib.redirect_stdout(io.StringIO()):
        trainer.train_one_epoch(epoch)
    return captured[0]


def compare_pair(their_models, main, cls_dir: Path, preset: presets.Preset, batch: int) -> dict:
    t_name, s_name = preset.teacher, preset.student
    torch.manual_seed(0)
    factory = their_models.__dict__
    with contextlib.redirect_stdout(io.StringIO()):  # their MobileNetV2 prints its settings
        theirs = [factory[THEIR_NAME.get(n, n)](num_classes=100) for n in (t_name, s_name)]
    for i, net in enumerate(theirs):
        randomise(net, 10 + i)
    ours = [models.create(n, num_classes=100) for n in (t_name, s_name)]
    for a, b in zip(theirs, ours):
        copy_in_order(a, b)
    g = torch.Generator().manual_seed(1)
    x = torch.randn(batch, 3, 32, 32, generator=g, dtype=torch.float64)
    y = torch.randint(0, 100, (batch,), generator=g)

    # 1. the networks: every stage feature and the logits, eval mode
    feat_diff = []
    with torch.no_grad():
        for a, b in zip(theirs, ours):
            a.double().eval(), b.double().eval()
            fa, fb = a(x), b.forward_features(x)
            assert len(fa) == len(fb)
            feat_diff.append(max(rel(u, v) for u, v in zip(fb, fa)))
            feat_diff.append(rel(b.head(fb[-1]), a.forward_classifier(fa[-1])))
    # 2. the training step
    with contextlib.redirect_stdout(io.StringIO()):  # their constructor prints its plan
        meta = their_models.MetaModel([t.float() for t in theirs], extra_type="bi")
    randomise(meta.bridges, 20)
    cfg = their_config(cls_dir, t_name, s_name)
    kw = preset.knobs_for("fcfd")
    d = distill.create("fcfd", ours[1].float(), ours[0].float(), input_shape=(3, 32, 32), **kw)
    n = meta.n_stages
    pairs = []  # (their param, our param, group)
    pairs += [(p, q, "student") for p, q in copy_in_order(meta.models[1], d.student)]
    for k in range(1, n):
        pairs += [
            (p, q, "s2t") for p, q in copy_in_order(meta.bridges[k][0][1], d.s2t[str(k)], True)
        ]
    for k in range(1, n - 1):
        pairs += [
            (p, q, "t2s") for p, q in copy_in_order(meta.bridges[k][1][0], d.t2s[str(k)], True)
        ]
    meta.double().train(), d.double().train()
    for p in meta.models[0].parameters():
        p.requires_grad_(False)
    rows = []
    for epoch in (0, 30):
        d.start_epoch(epoch, 240)
        for draw in itertools.combinations(candidates(n, "bi"), 2):
            encoded = [[1 if c == "S" else 0 for c in p.name] for p in draw]
            for m in (meta, d):
                m.zero_grad(set_to_none=True)
            t0 = time.perf_counter()
            their_loss = their_step(main, meta, cfg, x, y, encoded, epoch)
            t1 = time.perf_counter()
            d.sample = lambda draw=draw: list(draw)
            _, losses = d.forward_train(x, y)
            total = sum(losses.values())
            without = total - sum(v for k, v in losses.items() if k.startswith("func_l2_pooled/"))
            total.backward(retain_graph=True)
            row = {"epoch": epoch, "draw": "+".join(p.name for p in draw)}
            row["their_s"], row["our_s"] = t1 - t0, time.perf_counter() - t1
            row["loss"] = rel(total.detach(), their_loss)
            for group in ("student", "s2t", "t2s"):
                grads = [(p.grad, q.grad) for p, q, gr in pairs if gr == group]
                used = [(a, b) for a, b in grads if a is not None and b is not None]
                row[f"grad_{group}"] = group_rel([b for _, b in used], [a for a, _ in used])
                row[f"grads_missing_{group}"] = sum((a is None) != (b is None) for a, b in grads)
            ours_with = [(q, q.grad.clone()) for _, q, _ in pairs if q.grad is not None]
            d.zero_grad(set_to_none=True)
            without.backward()
            row["grad_without_pooled"] = max(
                group_rel(
                    [q.grad for q, _ in ours_with if q in group],
                    [g for q, g in ours_with if q in group],
                )
                for group in (
                    {q for _, q, gr in pairs if gr == name} for name in ("student", "s2t", "t2s")
                )
                if any(q in group for q, _ in ours_with)
            )
            rows.append(row)
    worst = {k: max(r[k] for r in rows) for k in rows[0] if k.startswith(("loss", "grad"))}
    return {
        "pair": preset.name,
        "their_config": f"experiments/cifar/{their_config_name(t_name, s_name)}",
        "stages": n,
        "draws": len(rows),
        "features_and_logits": max(feat_diff),
        "worst": worst,
        "rows": rows,
        "values": {"T": cfg["T"], "weight_l2": cfg["weight_l2"], "ours": kw},
    }


def their_config_name(teacher: str, student: str) -> str:
    return f"{THEIR_NAME.get(student, student)}-{THEIR_NAME.get(teacher, teacher)}.yaml"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--official", default=os.environ.get("FCFD_OFFICIAL"))
    ap.add_argument("--pairs", nargs="*", default=None, help="preset names (default: all)")
    ap.add_argument("--batch", type=int, default=4)
    args = ap.parse_args()
    warnings.filterwarnings("ignore", category=FutureWarning)  # their torch.cuda.amp.autocast
    if not args.official:
        sys.exit("fidelity: set FCFD_OFFICIAL (or --official) to a checkout of LiuDongyang6/FCFD")
    torch.set_num_threads(int(os.environ.get("THREADS", torch.get_num_threads())))
    their_models, their_main, cls_dir = load_official(Path(args.official).expanduser())
    names = args.pairs or [
        n
        for n in presets.names()
        if presets.load(n).source.startswith("authors: experiments/cifar")
    ]
    results = []
    for name in names:
        t0 = time.perf_counter()
        r = compare_pair(their_models, their_main, cls_dir, presets.load(name), args.batch)
        w = r["worst"]
        print(
            f"{name:24s} features/logits {r['features_and_logits']:.1e}  loss {w['loss']:.1e}  "
            f"grads student {w['grad_student']:.1e} s2t {w['grad_s2t']:.1e} t2s {w['grad_t2s']:.1e}"
            f"  without pooled {w['grad_without_pooled']:.2f}  ({time.perf_counter() - t0:.0f} s)",
            flush=True,
        )
        results.append(r)
    write_json("fidelity", {"machine": machine(), "batch": args.batch, "pairs": results})
    rows = [
        [
            r["pair"],
            f"`{r['their_config'].split('/')[-1]}`",
            r["draws"],
            f"{r['features_and_logits']:.0e}",
            f"{r['worst']['loss']:.0e}",
            f"{max(r['worst'][f'grad_{g}'] for g in ('student', 's2t', 't2s')):.0e}",
            sum(row[f"grads_missing_{g}"] for row in r["rows"] for g in ("student", "s2t", "t2s")),
            f"{r['worst']['grad_without_pooled']:.1%}",
        ]
        for r in results
    ]
    m = machine()
    md = (
        "## Side by side with the authors' code (`benchmarks/fidelity.py`)\n\n"
        f"float64, batch {args.batch} of random 32x32 images, 100 classes, random weights "
        "(BatchNorm affine parameters and bridges randomised), their config file for each "
        "pair, every draw of two mixed paths at epoch 0 (inside the feature warm-up) and 30; "
        f"{m['cpu']}, torch {m['torch']}. Columns: the largest relative difference over all "
        "stage features and logits (eval mode), of the total loss, and of any student or "
        "bridge gradient; parameters that get a gradient in one implementation and none in "
        "the other; and how much the gradients would move without the `func_l2_pooled` terms. "
        "Our distiller takes each preset's values and theirs its config file, so the loss "
        "column also checks that every preset holds the values of that config.\n\n"
        + table(
            [
                "preset",
                "their config",
                "steps",
                "features, logits",
                "loss",
                "gradients",
                "grad mismatches",
                "without pooled terms",
            ],
            rows,
        )
    )
    write_section("side_by_side", md, doc=DOC)
    print(f"wrote {DOC}")


if __name__ == "__main__":
    main()
