"""Where the students' error lies, and which appearance metric predicts the functional gap
(issue #26; docs/results.md, benchmarks/results/spectrum-<study>.json).

Per seed, the study's students (one `fcfd gap` each: connectors fitted on the whole training
split, closed form) get the error spectrum of :mod:`fcfd_viz.analysis.gap.spectra` on the
first ``--images`` test images, in both BN regimes. Reported: per method and stage, the mean
± std over seeds of ``l2``, ``fisher``, the measured KL and the error-energy share in the top-k
sensitive directions (against an isotropic error's ``k / D``); FCFD vs KD paired by seed on
that share; and across every student, seed and stage, the Spearman correlation of ``l2`` and
of ``fisher`` with the KL, with bootstrap intervals over students.

Studies (the runs are read, never trained):

* ``digits``: benchmarks/accuracy.py's "resnet8, 10%" students and their resnet32x4 teacher;
* ``quarter``: its "resnet8 quarter width, 10%" students;
* ``pairs``: benchmarks/pairs_study.py's resnet32x4 -> resnet8x4 students on digit-pairs.

    python benchmarks/spectrum.py --study digits [--runs DIR] [--seeds 0 1 2 3 4]
        [--anisotropy 32]

``--anisotropy N`` adds the teacher's per-stage channel-sensitivity anisotropy (against the
same network at random initialisation) on N test images of the study's own data.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from benchmarks.anisotropy import anisotropy, anisotropy_markdown  # noqa: E402
from benchmarks.common import RESULTS, ROOT, machine, table, write_json, write_section  # noqa: E402
from fcfd_viz.analysis.gap.fit_config import FitConfig  # noqa: E402
from fcfd_viz.analysis.gap.spectra import (  # noqa: E402
    SpectrumResult,
    gap_spectra,
    predictor_text,
    predictors,
    stage_predictor_text,
)
from fcfd_viz.analysis.reports.gap import gap_inputs  # noqa: E402
from fcfd_viz.data.datasets import DataConfig  # noqa: E402
from fcfd_viz.experiments.demo import is_done  # noqa: E402
from fcfd_viz.runs.layout import Run  # noqa: E402

RUNS = ROOT / "benchmarks" / "runs"
# study -> (runs folder under RUNS, teacher run, student run name per (method, seed), methods)
STUDIES = {
    "digits": (
        "accuracy",
        "teacher-resnet32x4-e10",
        "resnet8-p10-{method}-s{seed}-e60",
        ["ce", "kd", "fitnet", "fcfd"],
    ),
    "quarter": (
        "accuracy",
        "teacher-resnet32x4-e10",
        "resnet8_w025-p10-{method}-s{seed}-e60",
        ["ce", "kd", "fcfd", "fcfd_teacher_bnbatch"],
    ),
    "pairs": (
        "pairs/resnet32x4-resnet8x4",
        "teacher-resnet32x4",
        "{method}-s{seed}",
        ["ce", "kd", "fitnet", "fcfd", "fcfd_teacher_bnbatch"],
    ),
    # the first digit-pairs study: the same canvases every epoch (--fixed-canvases), where
    # the CE gap stayed below the calibration's target (docs/results.md)
    "pairs-fixed100": (
        "pairs-fixed100/resnet32x4-resnet8x4",
        "teacher-resnet32x4",
        "{method}-s{seed}",
        ["ce", "kd", "fitnet", "fcfd", "fcfd_teacher_bnbatch"],
    ),
}
TOP_K = 5  # the share reported in the tables: in the top-5 sensitive directions


def seed_spectra(
    runs: Path,
    study: str,
    seed: int,
    regimes: list[str],
    images: int,
    steps: int | None = None,
    fit_images: int | None = None,
    methods: list[str] | None = None,
) -> dict[str, SpectrumResult]:
    """The spectrum of one seed's students (those whose runs finished) in each BN regime;
    ``steps``: Lanczos steps per image, and so the top directions the share runs over (None:
    all, exact); ``fit_images``: connectors fitted on the first N training images (None: all).
    The connectors are fitted once (the fit does not depend on the regime)."""
    _, teacher, pattern, all_methods = STUDIES[study]
    paths = {m: runs / pattern.format(method=m, seed=seed) for m in methods or all_methods}
    paths = {m: p for m, p in paths.items() if is_done(p)}
    if not paths:
        raise SystemExit(f"no finished student of seed {seed} under {runs}")
    inputs = gap_inputs(list(paths.values()), runs / teacher, list(paths), fit_images=fit_images)
    inputs.gap.fit(inputs.train_loaders, config=FitConfig())
    return {
        bn: gap_spectra(inputs.gap, inputs.test_loader, bn=bn, images=images, k=steps, steps=steps)
        for bn in regimes
    }


def method_rows(per_seed: dict[int, SpectrumResult]) -> list[list]:
    """Per (entry, stage): mean ± std over seeds of l2, fisher, KL, fisher/KL, top-k share."""
    first = next(iter(per_seed.values()))
    rows = []
    for view in first.entries:
        for j, stage in enumerate(first.stages):
            got = [r.entries[view] for r in per_seed.values() if view in r.entries]
            vals = {m: [e.means[m][j] for e in got] for m in ("l2", "fisher", "kl")}
            ratio = [f / k for f, k in zip(vals["fisher"], vals["kl"]) if k > 0]
            k = min(TOP_K, len(got[0].share[j]))
            share = [e.share[j][k - 1] for e in got]
            iso = got[0].isotropic[j][k - 1]
            rows.append(
                [view, stage, len(got), *(_ms(vals[m]) for m in vals), _ms(ratio), _ms(share),
                 f"{iso:.3g}"]
            )  # fmt: skip
    return rows


def _ms(xs: list[float]) -> str:
    if not xs:
        return "-"
    sd = statistics.stdev(xs) if len(xs) > 1 else 0.0
    return f"{statistics.mean(xs):.3g} ± {sd:.2g}"


def paired_share(per_seed: dict[int, SpectrumResult], a: str, b: str) -> list[list]:
    """Per stage: seeds where ``a``'s top-k share is below ``b``'s, and the mean difference."""
    rows = []
    first = next(iter(per_seed.values()))
    for j, stage in enumerate(first.stages):
        diffs = []
        for r in per_seed.values():
            if a in r.entries and b in r.entries:
                k = min(TOP_K, len(r.entries[a].share[j]))
                diffs.append(r.entries[a].share[j][k - 1] - r.entries[b].share[j][k - 1])
        if diffs:
            below = sum(d < 0 for d in diffs)
            rows.append([stage, f"{below} of {len(diffs)}", _ms(diffs)])
    return rows


def section(study: str, result: dict) -> str:
    out = [f"## Error spectrum: {study} (`benchmarks/spectrum.py --study {study}`)\n"]
    m = result["machine"]
    out.append(
        f"{m['cpu']}, torch {m['torch']}; seeds {result['seeds']}, {result['images']} test "
        f"images per seed; connectors fitted on "
        + (f"the first {result['fit_images']}" if result.get("fit_images") else "all")
        + f" training images; share = error energy in the top-{TOP_K} sensitive directions"
        + (
            f" (from {result['steps']} Lanczos steps per image, not the exact decomposition)"
            if result.get("steps")
            else ""
        )
        + ".\n"
    )
    for bn, block in result["regimes"].items():
        per_seed = {int(s): SpectrumResult.from_dict(d) for s, d in block["per_seed"].items()}
        out.append(f"### BN {bn}\n")
        head = ["entry", "stage", "seeds", "l2", "fisher", "KL", "fisher/KL", "share", "isotropic"]
        out.append(table(head, method_rows(per_seed)) + "\n")
        pair = paired_share(per_seed, "fcfd (fitted)", "kd (fitted)")
        if pair:
            out.append("FCFD's share minus KD's, paired by seed (fitted connectors):\n")
            out.append(table(["stage", "FCFD below KD", "difference"], pair) + "\n")
        p = predictors(list(per_seed.values()))  # as stored, plus per_stage for older files
        out.append(
            f"Spearman with the measured KL over {p['points']['students']} student entries "
            f"({p['points']['pairs']} stage points): {predictor_text(p)}; "
            f"{stage_predictor_text(p)}.\n"
        )
    if result.get("anisotropy"):
        out.append(anisotropy_markdown(result["anisotropy"]))
    return "\n".join(out)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--study", choices=list(STUDIES), default="digits")
    ap.add_argument("--runs", type=Path, default=None, help="the study's runs folder")
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2, 3, 4])
    ap.add_argument("--images", type=int, default=128)
    ap.add_argument("--bn", nargs="+", default=["eval", "batch"], choices=["eval", "batch"])
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument(
        "--steps", type=int, default=None, help="Lanczos steps per image (default: exact, K - 1)"
    )
    ap.add_argument("--anisotropy", type=int, default=0, help="images for the teacher's anisotropy")
    ap.add_argument("--methods", nargs="+", default=None, help="these of the study's methods")
    ap.add_argument(
        "--fit-images", type=int, default=None, help="fit connectors on N training images (all)"
    )
    ap.add_argument(
        "--rewrite", action="store_true", help="re-render from results/spectrum-STUDY.json"
    )
    args = ap.parse_args()
    name = f"spectrum-{args.study}"
    if args.rewrite:
        old = json.loads((RESULTS / f"{name}.json").read_text())
        write_section(name, section(args.study, old), ROOT / "docs" / "results.md")
        return
    torch.set_num_threads(args.threads)
    runs = args.runs or RUNS / STUDIES[args.study][0]
    result = {"machine": machine(), "seeds": args.seeds, "images": args.images, "regimes": {}}
    result["steps"], result["fit_images"] = args.steps, args.fit_images
    result["methods"] = args.methods or STUDIES[args.study][3]
    spectra = {
        s: seed_spectra(
            runs, args.study, s, args.bn, args.images, args.steps, args.fit_images, args.methods
        )
        for s in args.seeds
    }
    for bn in args.bn:
        per_seed = {s: by_bn[bn] for s, by_bn in spectra.items()}
        result["regimes"][bn] = {
            "per_seed": {str(s): r.to_dict() for s, r in per_seed.items()},
            "predictors": predictors(list(per_seed.values())),
        }
        print(f"{bn}: {result['regimes'][bn]['predictors']}", flush=True)
    if args.anisotropy:
        teacher = runs / STUDIES[args.study][1]
        data = DataConfig(**Run(teacher).config()["data"])
        result["anisotropy"] = anisotropy(teacher, args.anisotropy, 0.05, seed=0, data=data)
    write_json(name, result)
    write_section(name, section(args.study, result), ROOT / "docs" / "results.md")


if __name__ == "__main__":
    main()
