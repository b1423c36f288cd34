"""Functional gap and anisotropy of the digits students (docs/results.md, benchmarks/results/gap.json).

Uses the teacher and the students trained by ``benchmarks/accuracy.py`` (setting "resnet8, 10%":
``benchmarks/runs/accuracy/resnet8-p10-{method}-s{seed}-e60``, teacher
``teacher-resnet32x4-e10``); it waits for their ``summary.json`` files and never trains them.
Per seed, with ce / kd / fitnet / fcfd students (final weights, ``last.pt``):

* connectors fitted post hoc on digits' whole training split (``--fit-data student``: on
  each student's own 10% subset, where the wide stage-3 connector overfits), both networks
  frozen, FCFD's bridge architecture, Adam until the loss plateaus (see
  fcfd_viz.analysis.gap.connectors); FCFD is measured with its own bridges too. Each student is
  fitted as soon as its run exists, and fits are cached under benchmarks/runs/gap;
* per stage, the appearance gap (MSE) and functional gap (KL) through an eval-mode teacher
  tail and through a batch-statistics tail, the reverse gap and the mixed-path accuracies;
* FCFD vs KD paired by seed (same training subset).

And the per-stage channel-sensitivity anisotropy of the trained teacher vs a randomly
initialised resnet32x4 whose BN statistics were re-estimated on the training data.

    python benchmarks/gap.py [--seeds 0 1 2 3 4] [--wait 21600] [--fit-max-epochs 400]
"""

from __future__ import annotations

import argparse
import hashlib
import json
import statistics
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from benchmarks.anisotropy import anisotropy, anisotropy_markdown  # noqa: E402
from benchmarks.common import (  # noqa: E402
    ROOT,
    add_section_args,
    machine,
    table,
    write_json,
    write_section,
)
from fcfd_viz.analysis import FitConfig  # noqa: E402
from fcfd_viz.analysis.gap.connectors import load_connectors, save_connectors  # noqa: E402
from fcfd_viz.analysis.gap.result import GapResult  # noqa: E402
from fcfd_viz.analysis.gap.seeds import paired_gap  # noqa: E402
from fcfd_viz.analysis.reports.gap import gap_inputs, gap_report  # noqa: E402
from fcfd_viz.runs.checkpoints import load_checkpoint  # noqa: E402
from fcfd_viz.runs.layout import Run  # noqa: E402

RUNS = ROOT / "benchmarks" / "runs" / "accuracy"
CACHE = ROOT / "benchmarks" / "runs" / "gap"
REFERENCE = {  # the authors' code on the same setting (eval-mode tail, fits of 100 epochs)
    "functional": {"fcfd": [0.118, 0.094, 0.048], "kd": [0.188, 0.138, 0.068]},
    "teacher_stage2": {"p95_p5": 8.0, "max_min": 21.0, "random_p95_p5": 2.1},
}


# ---------------------------------------------------------------- inputs
def run_dir(runs: Path, student: str, method: str, seed: int, epochs: int) -> Path:
    return runs / f"{student}-p10-{method}-s{seed}-e{epochs}"


def wait_for(paths: list[Path], deadline: float, what: str) -> bool:
    """Poll until every run directory has a summary.json (True) or the deadline passes."""
    announced = False
    while True:
        missing = [p for p in paths if Run(p).summary() is None]
        if not missing:
            return True
        if time.time() >= deadline:
            return False
        if not announced:
            print(f"waiting for {what}: {', '.join(p.name for p in missing)}", flush=True)
            announced = True
        time.sleep(min(120.0, max(1.0, deadline - time.time())))


# ---------------------------------------------------------------- fits and gaps
def mtime(path: Path) -> float:
    return Path(path).stat().st_mtime


def fit_student(
    teacher_dir: Path,
    run: Path,
    method: str,
    fit: FitConfig,
    fit_data: str,
    cache: Path,
    progress: bool,
) -> None:
    """Fit one student's connectors as soon as it exists; bridges + record go to ``cache``."""
    inputs = gap_inputs([run / "last.pt"], teacher_dir, [method], fit_data)
    t0 = time.perf_counter()
    info = inputs.fit(fit, progress=progress)[method]
    s2t, t2s, _ = inputs.gap.fitted(method)
    save_connectors(cache, s2t, t2s, info)
    eps = {k: b.epochs for k, b in info.bridges.items()}
    print(
        f"  fitted {run.name} in {time.perf_counter() - t0:.0f} s: epochs {eps}, "
        f"converged {info.converged}",
        flush=True,
    )


def gap_seed(
    teacher_dir: Path,
    dirs: dict[str, Path],
    fits: dict[str, Path],
    fit: FitConfig,
    fit_data: str,
    progress: bool,
) -> dict:
    """Both BN regimes for one seed's students, with their cached connector fits."""
    inputs = gap_inputs([d / "last.pt" for d in dirs.values()], teacher_dir, list(dirs), fit_data)
    gap, shape = inputs.gap, inputs.info["input_shape"]
    for m, path in fits.items():
        gap.set_fitted(m, *load_connectors(path, gap.teacher, gap.students[m], shape))
    out = {"students": {m: str(d) for m, d in dirs.items()}}
    for bn in ("eval", "batch"):
        t0 = time.perf_counter()
        report = gap_report(inputs, bn=bn, fit=fit, progress=progress)
        out[bn] = report.result.to_dict(curves=bn == "eval")
        out[bn]["reading"] = report.reading
        print(f"  {bn}: {time.perf_counter() - t0:.0f} s  {out[bn]['reading']}", flush=True)
    return out


# ---------------------------------------------------------------- summaries
def ms(xs: list[float]) -> tuple[float, float]:
    return statistics.mean(xs), (statistics.stdev(xs) if len(xs) > 1 else 0.0)


def fmt(xs: list[float], digits: int = 3) -> str:
    m, s = ms(xs)
    return f"{m:.{digits}f} ± {s:.{digits}f}"


def aggregate(per_seed: dict[int, dict], bn: str) -> dict:
    """{entry: {metric: {stage: [values over seeds]}}, path_accuracy: {path: [...]}}."""
    agg: dict = {}
    for res in per_seed.values():
        for name, e in res[bn]["students"].items():
            a = agg.setdefault(name, {"path_accuracy": {}})
            for key in ("appearance", "functional", "reverse"):
                for k, v in e[key].items():
                    if v is not None:
                        a.setdefault(key, {}).setdefault(k, []).append(v)
            for p, v in e["path_accuracy"].items():
                a["path_accuracy"].setdefault(p, []).append(v)
    return agg


def gap_result(d: dict) -> GapResult:
    """A :class:`GapResult` from its JSON here (the batch regime's is saved without fit curves,
    which pairing does not need)."""
    students = {n: {**e, "fit": None} for n, e in d["students"].items()}
    return GapResult.from_dict({**d, "students": students})


def paired(per_seed: dict[int, dict], bn: str, a: str, b: str) -> dict:
    """Seeds where entry ``a`` has a smaller functional KL than ``b``, and by how much
    (:func:`fcfd_viz.analysis.gap.seeds.paired_gap`, as the app's gap page reads it)."""
    results = {s: gap_result(r[bn]) for s, r in per_seed.items()}
    return paired_gap(results, a, b).to_dict()


def agreement(agg: dict, stages: list[str], names: list[str]) -> list[str]:
    """Per stage: does the smallest appearance gap belong to the smallest functional gap?"""
    lines = []
    for k in stages:
        app = {n: statistics.mean(agg[n]["appearance"][k]) for n in names}
        fun = {n: statistics.mean(agg[n]["functional"][k]) for n in names}
        ra = sorted(names, key=app.get)
        rf = sorted(names, key=fun.get)
        same = ra == rf
        lead = "same leader" if ra[0] == rf[0] else f"leaders differ (L2: {ra[0]}, KL: {rf[0]})"
        lines.append(
            f"stage {k}: L2 order {' < '.join(ra)}; KL order {' < '.join(rf)} "
            f"({'identical orders' if same else lead})"
        )
    return lines


HEADING = "Functional gap on digits"


def markdown(result: dict) -> str:
    per_seed = {int(s): r for s, r in result["per_seed"].items()}
    seeds = sorted(per_seed)
    first = per_seed[seeds[0]]
    stages = [str(k) for k in first["eval"]["stages"]]
    t = result["teacher"]
    where = (
        "the whole digits training split"
        if result["fit_data"] == "full"
        else "the student's own training subset"
    )
    md = [
        f"## {result.get('heading', HEADING)} (`benchmarks/gap.py`)\n",
        f"Teacher {t['arch']} ({t['top1']:.2f}% test top-1); students resnet8 on the 10% digits-hard subset, "
        f"{result['epochs']} epochs (final weights), seeds {seeds} (paired: one subset per seed). Connectors "
        f"for every student fitted post hoc, both networks frozen, on "
        f"{where} (Adam lr "
        f"{result['fit']['lr']}, plateau rule: < {result['fit']['rel_tol']:.0e} relative improvement for "
        f"{result['fit']['patience']} epochs -> lr /10 once, then stop; cap {result['fit']['max_epochs']} "
        f"epochs); `fcfd (own bridges)` uses the bridges FCFD trained. Gaps averaged over the "
        f"{first['eval']['num_images']} test images; mean ± std over seeds. Machine: "
        f"{result['machine']['cpu']}, {result['machine']['threads']} threads.\n",
    ]
    if result.get("missing_runs"):
        md.append(
            f"Runs not available when this was measured (left out): {', '.join(result['missing_runs'])}.\n"
        )
    for bn in ("eval", "batch"):
        agg = aggregate(per_seed, bn)
        names = list(agg)
        label = first[bn]["bn_label"]
        rev = [k for k in stages if any(k in agg[n].get("reverse", {}) for n in names)]
        rows = []
        for n in names:
            a = agg[n]
            rows.append(
                [
                    n,
                    len(a["functional"][stages[0]]),
                    *(fmt(a["appearance"][k]) for k in stages),
                    *(fmt(a["functional"][k]) for k in stages),
                    *(fmt(a["reverse"][k]) if k in a.get("reverse", {}) else "–" for k in rev),
                ]
            )
        heads = [
            "student (bridges)",
            "seeds",
            *(f"L2 s{k}" for k in stages),
            *(f"KL s{k}" for k in stages),
            *(f"reverse KL s{k}" for k in rev),
        ]
        md.append(f"### Teacher tail in {label}\n\n" + table(heads, rows) + "\n")
        paths = list(agg[names[0]]["path_accuracy"])
        prow = [
            [n, *(fmt(agg[n]["path_accuracy"].get(p, [float("nan")]), 1) for p in paths)]
            for n in names
        ]
        md.append(
            "Mixed-path test top-1 (%):\n\n" + table(["student (bridges)", *paths], prow) + "\n"
        )
        fitted = [n for n in names if n.endswith("(fitted)")]
        md.append(
            "Does L2 order the students like function does (fitted connectors, means over seeds)?\n\n"
            + "\n".join(f"- {line}" for line in agreement(agg, stages, fitted))
            + "\n"
        )
        for a, b in (("fcfd (fitted)", "kd (fitted)"), ("fcfd (own bridges)", "kd (fitted)")):
            pr = result["paired"][bn].get(f"{a} vs {b}")
            if pr:
                parts = [
                    f"stage {k}: {v['wins']}/{v['seeds']} seeds, "
                    f"{statistics.mean(v['reduction_pct']):+.0f}% ({', '.join(f'{x:+.0f}' for x in v['reduction_pct'])})"
                    for k, v in pr["per_stage"].items()
                ]
                md.append(
                    f"Paired, {a} functional KL below {b}: "
                    + "; ".join(parts)
                    + f"; below at every stage in {pr['seeds_below_at_every_stage']}/{len(seeds)} seeds. "
                    "(% = KL reduction relative to KD.)\n"
                )
    fit_rows = []
    for m in result["fit_summary"]:
        f = result["fit_summary"][m]
        fit_rows.append(
            [
                m,
                f"{f['epochs_median']:.0f} ({f['epochs_min']}–{f['epochs_max']})",
                f"{f['converged']}/{f['bridges']}",
                f"{f['final_over_initial_median']:.3f}",
                f"{f['seconds_mean']:.0f}",
            ]
        )
    md.append(
        "### Connector fit convergence\n\n"
        + table(
            [
                "student",
                "epochs per bridge: median (range)",
                "stopped on plateau",
                "final/initial MSE (median)",
                "fit seconds per student (mean)",
            ],
            fit_rows,
        )
        + "\n\nFinal/initial compares the last epoch's training MSE with the first epoch's "
        "(from a random initialisation). Fit times depend heavily on what else ran on the shared "
        "machine (about 40 s per student when idle, about 10 min under load).\n"
    )
    md.append(regime_notes(per_seed, stages))
    if result.get("anisotropy"):
        md.append(anisotropy_markdown(result["anisotropy"]))
    ref = REFERENCE
    md.append(
        "### Against the reference (authors' code, same setting, eval-mode tail, 100-epoch fits)\n\n"
        f"Reference functional KL stage 1/2/3: FCFD {'/'.join(map(str, ref['functional']['fcfd']))}, KD "
        f"{'/'.join(map(str, ref['functional']['kd']))}; teacher stage-2 p95/p5 "
        f"{ref['teacher_stage2']['p95_p5']} (max/min {ref['teacher_stage2']['max_min']}) vs random "
        f"{ref['teacher_stage2']['random_p95_p5']}.\n"
    )
    return "\n".join(md)


def regime_notes(per_seed: dict[int, dict], stages: list[str]) -> str:
    """Where the two BN regimes disagree (mixed paths moving > 5 points), and FCFD's own
    last-stage bridge, which no mixed path trains for function."""
    ev, ba = aggregate(per_seed, "eval"), aggregate(per_seed, "batch")
    lines = []
    for n in ev:
        for p, accs in ev[n]["path_accuracy"].items():
            a, b = statistics.mean(accs), statistics.mean(ba[n]["path_accuracy"][p])
            if abs(a - b) > 5:
                lines.append(
                    f"{n} {p}: {a:.1f}% with eval-mode BN vs {b:.1f}% with batch statistics"
                )
    out = "### Where the BN regime matters\n\n"
    out += (
        "Mixed paths whose top-1 moves by more than 5 points between regimes: "
        + ("; ".join(lines) if lines else "none")
        + ".\n"
    )
    own, fitted, last = "fcfd (own bridges)", "fcfd (fitted)", stages[-1]
    if own in ev and fitted in ev:
        o = statistics.mean(ev[own]["functional"][last])
        f = statistics.mean(ev[fitted]["functional"][last])
        if o > 10 * f:
            out += (
                f"\nFCFD's own stage-{last} student->teacher bridge has a functional KL of {o:.2f} "
                f"vs {f:.3f} for a fitted one: no mixed path switches after the last stage, so "
                "that bridge only ever sees the (small-weight) appearance term and is never "
                "trained to work through the teacher's head.\n"
            )
    return out


def fit_summary(per_seed: dict[int, dict]) -> dict:
    out = {}
    for res in per_seed.values():
        for e in res["eval"]["students"].values():
            if e["fit"] is None:
                continue
            f = out.setdefault(
                e["student"],
                {"epochs": [], "ratio": [], "converged": 0, "bridges": 0, "seconds": []},
            )
            f["seconds"].append(e["fit"]["seconds"])
            for b in e["fit"]["bridges"].values():
                f["epochs"].append(b["epochs"])
                f["ratio"].append(b["final_loss"] / b["initial_loss"])
                f["converged"] += b["converged"]
                f["bridges"] += 1
    return {
        m: {
            "epochs_median": statistics.median(f["epochs"]),
            "epochs_min": min(f["epochs"]),
            "epochs_max": max(f["epochs"]),
            "converged": f["converged"],
            "bridges": f["bridges"],
            "final_over_initial_median": statistics.median(f["ratio"]),
            "seconds_mean": statistics.mean(f["seconds"]),
        }
        for m, f in out.items()
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2, 3, 4])
    ap.add_argument("--epochs", type=int, default=60)
    ap.add_argument("--student", default="resnet8")
    # run-name labels of benchmarks/accuracy.py; fcfd_teacher_bnbatch: FCFD in the authors' BN mode
    ap.add_argument(
        "--methods", nargs="+", default=["ce", "kd", "fitnet", "fcfd", "fcfd_teacher_bnbatch"]
    )
    ap.add_argument("--teacher", default="teacher-resnet32x4-e10")
    ap.add_argument("--fit-max-epochs", type=int, default=FitConfig.max_epochs)
    ap.add_argument(
        "--fit-data",
        choices=["full", "student"],
        default="full",
        help="connectors fitted on digits' whole training split or the student's subset",
    )
    ap.add_argument("--wait", type=float, default=6 * 3600, help="seconds to wait for missing runs")
    ap.add_argument("--anisotropy-images", type=int, default=32)
    ap.add_argument("--eps", type=float, default=0.05)
    ap.add_argument("--no-anisotropy", action="store_true")
    ap.add_argument("--progress", action="store_true")
    ap.add_argument("--runs", type=Path, default=RUNS, help="folder of the accuracy runs")
    ap.add_argument("--dry-run", action="store_true", help="print the section, write nothing")
    add_section_args(ap, "gap", HEADING)
    args = ap.parse_args()
    torch.set_num_threads(2)
    deadline = time.time() + args.wait
    teacher_dir = args.runs / args.teacher
    if not wait_for([teacher_dir], deadline, "the teacher"):
        sys.exit(f"teacher {teacher_dir} not finished; run benchmarks/accuracy.py first")
    fit = FitConfig(max_epochs=args.fit_max_epochs)
    CACHE.mkdir(parents=True, exist_ok=True)
    key = hashlib.sha1(
        json.dumps([fit.__dict__, args.fit_data], sort_keys=True).encode()
    ).hexdigest()[:8]
    result = {
        "machine": machine(),
        "teacher": Run(teacher_dir).summary(),
        "epochs": args.epochs,
        "methods": args.methods,
        "fit": fit.__dict__,
        "fit_data": args.fit_data,
        "per_seed": {},
    }
    if not args.no_anisotropy:
        print("anisotropy", flush=True)
        t_mtime = Path(load_checkpoint(teacher_dir)["path"]).stat().st_mtime
        cache = CACHE / f"{args.runs.name}-anisotropy-{args.anisotropy_images}-{args.eps}.json"
        cached = json.loads(cache.read_text()) if cache.exists() else None
        if cached and cached.get("stamp") == t_mtime:
            result["anisotropy"] = cached["result"]
        else:
            result["anisotropy"] = anisotropy(teacher_dir, args.anisotropy_images, args.eps, seed=0)
            cache.write_text(json.dumps({"stamp": t_mtime, "result": result["anisotropy"]}))
    dirs = {
        seed: {m: run_dir(args.runs, args.student, m, seed, args.epochs) for m in args.methods}
        for seed in args.seeds
    }
    t_stamp = mtime(load_checkpoint(teacher_dir)["path"])
    done: dict[int, dict] = {}
    announced = False
    while True:
        # fit every finished student as soon as it exists (the slow part), then measure every
        # seed whose students are all fitted (at the deadline: whichever of them exist);
        # results are cached against the files' mtimes
        last_round = time.time() >= deadline
        for seed, runs in dirs.items():
            if seed in done:
                continue
            fits = {}
            for m, d in runs.items():
                if Run(d).summary() is None:
                    continue
                stamp = f"{mtime(d / 'last.pt'):.0f}-{t_stamp:.0f}"
                path = CACHE / f"{args.runs.name}-fit-{d.name}-{key}-{stamp}.pt"
                if not path.exists():
                    print(f"fit {d.name}", flush=True)
                    fit_student(teacher_dir, d, m, fit, args.fit_data, path, args.progress)
                fits[m] = path
            if not fits or (len(fits) < len(runs) and not last_round):
                continue
            runs = {m: d for m, d in runs.items() if m in fits}
            stamp = "|".join(sorted(p.name for p in fits.values()))
            cache = CACHE / f"{args.runs.name}-seed{seed}-{key}.json"
            cached = json.loads(cache.read_text()) if cache.exists() else None
            if cached and cached.get("stamp") == stamp:
                res = cached["result"]
            else:
                print(f"seed {seed}", flush=True)
                res = gap_seed(teacher_dir, runs, fits, fit, args.fit_data, args.progress)
                cache.write_text(json.dumps({"stamp": stamp, "result": res}))
            res["accuracy"] = {m: Run(d).summary()["top1"] for m, d in runs.items()}
            done[seed] = res
        if len(done) == len(dirs) or last_round:
            break
        if not announced:
            missing = [
                d.name for r in dirs.values() for d in r.values() if Run(d).summary() is None
            ]
            print(f"waiting for {', '.join(missing)}", flush=True)
            announced = True
        time.sleep(120)
    for seed in sorted(done):
        result["per_seed"][str(seed)] = done[seed]
    missing = [d.name for r in dirs.values() for d in r.values() if Run(d).summary() is None]
    if missing:
        print(f"missing at the deadline, left out: {', '.join(missing)}", flush=True)
    result["missing_runs"] = missing
    if not result["per_seed"]:
        sys.exit("no seed had all its runs; nothing to report")
    per_seed = {int(s): r for s, r in result["per_seed"].items()}
    result["paired"] = {
        bn: {
            f"{a} vs {b}": paired(per_seed, bn, a, b)
            for a, b in (("fcfd (fitted)", "kd (fitted)"), ("fcfd (own bridges)", "kd (fitted)"))
        }
        for bn in ("eval", "batch")
    }
    result["fit_summary"] = fit_summary(per_seed)
    result["summary"] = {
        bn: {
            n: {m: {k: ms(v) for k, v in a[m].items()} for m in a}
            for n, a in aggregate(per_seed, bn).items()
        }
        for bn in ("eval", "batch")
    }
    result["heading"] = args.heading
    section = markdown(result)
    print(section)
    if not args.dry_run:
        write_json(args.name, result)
        write_section(args.name, section, doc=ROOT / "docs" / "results.md")


if __name__ == "__main__":
    main()
