"""Probe of a 1000-class network (issue #26): the full computation against the shortcut.

The issue's command, ``fcfd probe --model tv_resnet18 --layer layer3.1 --image-dir DIR
--images 8 --json`` with default settings (exact mode; channel, random and Jacobian
directions; grad_x_act, integrated_gradients and ablation attributions), random weights, on
generated PNG images at 224, side by side in one run:

- ``full``: every class in the Jacobian metric (``top_classes="all"``: 64 Lanczos steps of
  ``G`` with rank 999) and captum's attributions on the whole network (``captum=True``),
  i.e. the computation before the shortcut;
- ``shortcut``: the defaults (``top_classes="auto"``: the top 32 classes plus a merged
  "rest"; attributions evaluated at the cut), what ``fcfd probe`` runs now;
- ``fisher``: the Fisher-mode channel ranking with all classes (999 backward passes) against
  the top 32 + rest (``--no-fisher`` skips it).

Reported: medians over ``--repeats`` of the wall time of each, the Spearman of the exact (and
Fisher) channel rankings and of each attribution between full and shortcut, the neglected
mass (the clean probability outside the top 32), and one end-to-end CLI run of the command.

    .venv/bin/python benchmarks/probe_classes.py                 # full (tens of minutes)
    .venv/bin/python benchmarks/probe_classes.py --quick         # smoke run (1 image, 64 px), records nothing

Writes benchmarks/results/probe_classes.json and the probe_classes section of docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import statistics
import sys
import tempfile
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks.common import (  # noqa: E402
    add_section_args,
    machine,
    table,
    timed,
    write_json,
    write_section,
)
from fcfd_viz.analysis import Anisotropy, Attribution, spearman  # noqa: E402
from fcfd_viz.analysis.reports.image_folder import folder_images, image_transform  # noqa: E402
from fcfd_viz.models.sources import probe_network  # noqa: E402

ARCH, LAYER = "tv_resnet18", "layer3.1"
METHODS = ["grad_x_act", "integrated_gradients", "ablation"]


def make_images(folder: Path, n: int, size: int) -> None:
    """``n`` random-noise PNGs of ``size`` x ``size`` (seeded)."""
    from PIL import Image

    rng = np.random.default_rng(0)
    folder.mkdir(parents=True, exist_ok=True)
    for i in range(n):
        pixels = (rng.random((size, size, 3)) * 255).astype("uint8")
        Image.fromarray(pixels).save(folder / f"img{i:02d}.png")


def probe(net, x: torch.Tensor, top_classes: str, captum: bool, **kw) -> dict:
    """The probe and attributions of ``fcfd probe`` (defaults otherwise)."""
    res = Anisotropy(net, None, layer=LAYER).compute(x, top_classes=top_classes, **kw)
    attr = None
    if kw.get("mode", "exact") == "exact":
        attr = Attribution(net, None, layer=LAYER).compute(x, METHODS, captum=captum)
    return {"probe": res, "attr": attr}


def cli_seconds(folder: Path, images: int, size: int) -> float:
    """Wall time of the issue's command, end to end in this process (stdout discarded)."""
    from fcfd_viz.cli import main

    args = ["probe", "--model", ARCH, "--layer", LAYER, "--image-dir", str(folder)]
    args += ["--images", str(images), "--json", "--no-progress"]
    if size != 224:  # 224: the model's own preprocessing, as in the command
        args += ["--image-size", str(size)]
    with contextlib.redirect_stdout(io.StringIO()):
        wall, _, rc = timed(lambda: main(args))
    assert rc == 0, rc
    return wall


def run(args: argparse.Namespace) -> dict:
    torch.set_num_threads(args.threads)
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(args.image_dir or tmp)
        if args.image_dir is None:
            make_images(folder, args.images, 256)
        torch.manual_seed(0)  # the random weights: the same network in every run
        net = probe_network(ARCH, None, None, False)
        tf = image_transform(ARCH, None, args.size, args.size == 224)  # as the CLI does
        x = folder_images(str(folder), args.images, tf)
        times: dict[str, list[float]] = {"full": [], "shortcut": [], "cli": []}
        fisher_times: dict[str, list[float]] = {"full": [], "shortcut": []}
        out: dict[str, dict] = {}
        for _ in range(args.repeats):  # interleaved: load drifts hit both alike
            for name, top, captum in (("full", "all", True), ("shortcut", "auto", False)):
                wall, _, out[name] = timed(lambda t=top, c=captum: probe(net, x, t, c))
                times[name].append(wall)
                if args.fisher:
                    kw = dict(mode="fisher", directions="channel")
                    fisher = lambda t=top, kw=kw: probe(net, x, t, False, **kw)  # noqa: E731
                    wall, _, out[f"fisher_{name}"] = timed(fisher)
                    fisher_times[name].append(wall)
            times["cli"].append(cli_seconds(folder, args.images, args.size))
    full, short = out["full"], out["shortcut"]
    rho = {
        "exact_channel": spearman(
            full["probe"].channel_sensitivity, short["probe"].channel_sensitivity
        )
    }
    if args.fisher:
        rho["fisher_channel"] = spearman(
            out["fisher_full"]["probe"].channel_sensitivity,
            out["fisher_shortcut"]["probe"].channel_sensitivity,
        )
    for m in METHODS:
        rho[f"attribution_{m}"] = spearman(full["attr"].channels[m], short["attr"].channels[m])
    res = short["probe"]
    return {
        "machine": machine(),
        "config": {
            "arch": ARCH,
            "layer": LAYER,
            "images": args.images,
            "size": args.size,
            "repeats": args.repeats,
        },
        "seconds": {k: statistics.median(v) for k, v in times.items()},
        "fisher_seconds": {k: statistics.median(v) for k, v in fisher_times.items() if v},
        "spearman": rho,
        "num_classes": res.num_classes,
        "top_classes": res.top_classes,
        "neglected_mass": float(res.neglected_mass.mean()),
        "neglected_mass_max": float(res.neglected_mass.max()),
        "jacobian_steps": {"full": full["probe"].jacobian_steps, "shortcut": res.jacobian_steps},
    }


def markdown(r: dict, heading: str) -> str:
    c, s = r["config"], r["seconds"]
    rows = [["full (all classes, captum)", s["full"]], ["shortcut (defaults)", s["shortcut"]]]
    rows.append(["`fcfd probe` end to end (shortcut)", s["cli"]])
    for k, v in r["fisher_seconds"].items():
        rows.append([f"fisher channel, {k}", v])
    lines = [
        f"## {heading}",
        "",
        f"`fcfd probe --model {c['arch']} --layer {c['layer']} --images {c['images']}` at "
        f"{c['size']}px, random weights, {r['machine']['threads']} threads on "
        f"{r['machine']['cpu']}; medians of {c['repeats']} interleaved repeats.",
        "",
        table(["run", "seconds"], rows),
        "",
        table(["Spearman (full vs shortcut)", "rho"], [[k, v] for k, v in r["spearman"].items()]),
        "",
        f"Top {r['top_classes']} of {r['num_classes']} classes kept for the Jacobian / Fisher "
        f"metric (Lanczos steps {r['jacobian_steps']['full']} -> "
        f"{r['jacobian_steps']['shortcut']}); neglected mass mean {r['neglected_mass']:.3g}, "
        f'max {r["neglected_mass_max"]:.3g} (merged into the "rest" class, not dropped).',
    ]
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--images", type=int, default=8)
    ap.add_argument("--size", type=int, default=224)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--image-dir", default=None, help="default: generated PNGs")
    ap.add_argument("--no-fisher", dest="fisher", action="store_false")
    ap.add_argument(
        "--quick", action="store_true", help="1 image at 64 px, 1 repeat; records nothing"
    )
    add_section_args(ap, "probe_classes", "Probe of a 1000-class network (#26)")
    args = ap.parse_args()
    if args.quick:
        args.images, args.repeats, args.size = 1, 1, 64
    r = run(args)
    text = markdown(r, args.heading)
    print(text)
    if not args.quick:
        write_json(args.name, r)
        write_section(args.name, text)


if __name__ == "__main__":
    main()
