"""What the error spectrum costs next to the plain functional gap (issue #26, "Speed").

The nine students of ``fcfd defaults`` (built into ``--runs-dir`` when missing), measured as
the Functional gap page measures them: one :func:`~fcfd_viz.analysis.reports.gap.gap_inputs`
over all nine, in each BN regime, side by side in one run:

- ``gap``: loading the checkpoints, fitting every connector (closed form, the defaults) and
  measuring the gap on the test split: ``fcfd gap`` without ``--spectrum``;
- ``spectrum``: the decomposition alone on the fitted connectors
  (:func:`~fcfd_viz.analysis.gap.spectra.gap_spectra`, ``--images`` test images, exact:
  every sensitive direction), i.e. what ``--spectrum`` adds.

Reported: medians over ``--repeats`` of wall and CPU seconds, and the ratio spectrum / gap
(the issue's bound: at most 2). CPU seconds are the fairer ratio on a shared machine.

    python benchmarks/spectrum_cost.py --runs-dir /tmp/runs [--repeats 3] [--threads 2]

Writes benchmarks/results/spectrum_cost.json and its section of docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from benchmarks.common import (  # noqa: E402
    add_section_args,
    machine,
    table,
    timed,
    write_json,
    write_section,
)
from fcfd_viz.analysis.gap.fit_config import FitConfig  # noqa: E402
from fcfd_viz.analysis.gap.spectra import gap_spectra  # noqa: E402
from fcfd_viz.analysis.reports.gap import gap_inputs, gap_report  # noqa: E402
from fcfd_viz.cli.common import SPECTRUM_IMAGES  # noqa: E402
from fcfd_viz.experiments.demo import default_paths, defaults_ready  # noqa: E402


def one_repeat(runs_dir: Path, bn: str, images: int) -> dict:
    """Wall and CPU seconds of the plain gap and of the spectrum on its fitted connectors."""
    paths = default_paths(runs_dir)  # {"teacher": ..., "ce": ..., "kd-s1": ...}
    teacher = paths.pop("teacher")

    def plain():
        inputs = gap_inputs(list(paths.values()), teacher, list(paths))
        gap_report(inputs, bn=bn, fit=FitConfig())
        return inputs

    gap_wall, gap_cpu, inputs = timed(plain)
    spec_wall, spec_cpu, spec = timed(
        lambda: gap_spectra(inputs.gap, inputs.test_loader, bn=bn, images=images)
    )
    return {
        "students": len(paths),
        "entries": len(spec.entries),
        "gap": {"wall": gap_wall, "cpu": gap_cpu},
        "spectrum": {"wall": spec_wall, "cpu": spec_cpu},
    }


def summarise(reps: list[dict]) -> dict:
    med = {
        part: {clock: statistics.median(r[part][clock] for r in reps) for clock in ("wall", "cpu")}
        for part in ("gap", "spectrum")
    }
    ratio = {c: med["spectrum"][c] / med["gap"][c] for c in ("wall", "cpu")}
    return {"repeats": reps, "median": med, "ratio": ratio}


def section(result: dict, heading: str) -> str:
    m = result["machine"]
    rows = []
    for bn, block in result["regimes"].items():
        med, ratio, first = block["median"], block["ratio"], block["repeats"][0]
        rows.append(
            [bn, first["students"], first["entries"],
             f"{med['gap']['wall']:.1f} / {med['gap']['cpu']:.1f}",
             f"{med['spectrum']['wall']:.1f} / {med['spectrum']['cpu']:.1f}",
             f"{ratio['wall']:.2f}x / {ratio['cpu']:.2f}x"]
        )  # fmt: skip
    return (
        f"## {heading}\n\n"
        f"{m['cpu']}, torch {m['torch']}, {result['threads']} thread(s); the nine `fcfd defaults` "
        f"students in one gap; spectrum on {result['images']} test images, exact; medians over "
        f"{result['repeats']} repeats. Times are wall / CPU seconds.\n\n"
        + table(
            [
                "BN",
                "students",
                "entries",
                "gap (load + fit + measure)",
                "spectrum",
                "spectrum / gap",
            ],
            rows,
        )
        + "\n\n"
        + (result.get("note") or "")
    )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs-dir", type=Path, required=True, help="the default runs (or where)")
    ap.add_argument(
        "--images", type=int, default=SPECTRUM_IMAGES, help="spectrum test images (the CLI's)"
    )
    ap.add_argument("--bn", nargs="+", default=["eval", "batch"], choices=["eval", "batch"])
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--note", default="", help="a paragraph added under the table")
    add_section_args(
        ap, "spectrum_cost", "Error spectrum vs the plain gap (`benchmarks/spectrum_cost.py`)"
    )
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    if not defaults_ready(args.runs_dir):
        cmd = [sys.executable, "-m", "fcfd_viz", "defaults", "--runs-dir", str(args.runs_dir)]
        subprocess.run(cmd, check=True)
    result = {
        "machine": machine(),
        "threads": args.threads,
        "images": args.images,
        "repeats": args.repeats,
        "note": args.note,
        "regimes": {},
    }
    for bn in args.bn:
        reps = []
        for i in range(args.repeats):
            reps.append(one_repeat(args.runs_dir, bn, args.images))
            r = reps[-1]
            print(f"{bn} #{i}: gap {r['gap']}, spectrum {r['spectrum']}", flush=True)
        result["regimes"][bn] = summarise(reps)
        print(f"{bn}: ratio {result['regimes'][bn]['ratio']}", flush=True)
    write_json(args.name, result)
    write_section(args.name, section(result, args.heading))


if __name__ == "__main__":
    main()
