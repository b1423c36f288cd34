"""Connector fit: the closed form (``lstsq``) against the Adam loop, side by side in one run
(docs/benchmarks.md, benchmarks/results/connector_fit.json).

The default students of ``fcfd defaults`` (built into ``--runs-dir`` when missing) against
the default teacher, fitted exactly as the Functional gap page fits them (digits' whole
training split, :data:`~fcfd_viz.analysis.reports.gap.FIT_DATA`): per student and method,

* the fit's wall time (median over ``--repeats``; the feature pass included, as in a gap);
* every bridge's final training MSE, measured the same way for both methods: the eval-mode
  bridge over the fit data (what the eval regime of the gap runs);
* the functional KL per stage in both BN regimes, on the test split.

The Adam loop runs at the page's default budget (``--adam-epochs``, 100) on
``--adam-students`` only (about 2 minutes per student on one core); the closed form on every
student. ``--end-to-end`` also times ``fcfd defaults`` (runs, then the gap phase) in a fresh
folder.

    python benchmarks/connector_fit.py --runs-dir /tmp/runs [--adam-students ce kd fcfd]
    python benchmarks/connector_fit.py --runs-dir /tmp/runs --students --end-to-end \
        --name connector_fit_e2e --heading "fcfd defaults end to end"
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from benchmarks.common import (  # noqa: E402
    ROOT,
    add_section_args,
    machine,
    table,
    write_json,
    write_section,
)
from fcfd_viz.analysis import FitConfig, FunctionalGap  # noqa: E402
from fcfd_viz.analysis.gap.closed_form import eval_mse  # noqa: E402
from fcfd_viz.analysis.gap.connectors import fit_connectors  # noqa: E402
from fcfd_viz.analysis.gap.feature_pairs import _staged_pairs  # noqa: E402
from fcfd_viz.analysis.gap.inputs import gap_loaders, load_students  # noqa: E402
from fcfd_viz.analysis.reports.gap import FIT_DATA  # noqa: E402
from fcfd_viz.experiments.demo import default_paths, ensure_defaults  # noqa: E402
from fcfd_viz.experiments.demo_gap import default_gap_students  # noqa: E402
from fcfd_viz.models.batchnorm import frozen  # noqa: E402

HEADING = "Connector fit: closed form vs the Adam loop"


def fit_mse(loaded, label: str, s2t, t2s, loader, shape) -> dict[str, float]:
    """Each bridge's eval-mode MSE over the fit data (one definition for both methods)."""
    teacher, student = loaded.teacher, loaded.students[label]
    tasks = [(f"s2t/{k}", b, False, int(k)) for k, b in s2t.items()]
    tasks += [(f"t2s/{k}", b, True, int(k)) for k, b in t2s.items()]
    with frozen(teacher), frozen(student):
        feats = _staged_pairs(teacher, student, loader, shape, FitConfig(), "cpu")
        return dict(zip([t[0] for t in tasks], eval_mse(tasks, feats)))


def measure(path: Path, teacher: Path, label: str, methods: dict, repeats: int) -> dict:
    """One student: every method's fit (time, MSE per bridge) and its functional KL."""
    loaded = load_students([path], teacher, [label])
    test_loader, train = gap_loaders(loaded, FIT_DATA)
    shape = tuple(loaded.info["input_shape"])
    out = {"path": str(path), "methods": {}}
    for method, cfg in methods.items():
        times, cpu = [], []
        for _ in range(repeats):
            t0, c0 = time.perf_counter(), time.process_time()
            s2t, t2s, info = fit_connectors(
                loaded.teacher, loaded.students[label], train[label], shape, cfg
            )
            times.append(time.perf_counter() - t0)
            cpu.append(time.process_time() - c0)
        gap = FunctionalGap(loaded.teacher, loaded.students, input_shape=shape)
        gap.set_fitted(label, s2t, t2s, info)
        kl = {}
        for bn in ("eval", "batch"):
            res = gap.compute(test_loader, train, bn=bn, fit=cfg)
            kl[bn] = res.entries[f"{label} (fitted)"].functional.tolist()
        out["methods"][method] = {
            "seconds": statistics.median(times),
            "cpu_seconds": statistics.median(cpu),  # this process's CPU time: what a
            "all_seconds": times,  # shared machine's other jobs do not inflate
            "epochs": {k: b.epochs for k, b in info.bridges.items()},
            "mse": fit_mse(loaded, label, s2t, t2s, train[label], shape),
            "functional": kl,
        }
        mse = out["methods"][method]["mse"]
        print(
            f"  {label} {method}: {statistics.median(times):.1f} s "
            f"(CPU {statistics.median(cpu):.1f} s), MSE "
            + ", ".join(f"{k} {v:.4g}" for k, v in mse.items()),
            flush=True,
        )
    return out


def end_to_end(threads: int) -> dict:
    """``fcfd defaults`` (runs, then the gap phase) in a fresh folder: wall seconds, the
    child's CPU seconds and the phases' own "ready in" lines."""
    import resource
    import tempfile

    with tempfile.TemporaryDirectory(prefix="fcfd-e2e-") as d:
        env = {**os.environ, "OMP_NUM_THREADS": str(threads), "PYTHONPATH": str(ROOT)}
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        t0 = time.perf_counter()
        proc = subprocess.run(
            [sys.executable, "-m", "fcfd_viz", "defaults", "--runs-dir", d],
            env=env,
            capture_output=True,
            text=True,
        )
        total = time.perf_counter() - t0
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        lines = [ln for ln in proc.stdout.splitlines() if "ready in" in ln]
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return {"seconds": total, "cpu_seconds": cpu, "rc": proc.returncode, "phases": lines}


def markdown(result: dict) -> str:
    m, studs = result["machine"], result["students"]
    if not studs:
        return _e2e_markdown(result)
    lines = [
        f"## {result['heading']}",
        "",
        f"`python benchmarks/connector_fit.py` on {m['cpu']}, {m['threads']} thread(s), torch "
        f"{m['torch']}; load average {result['load_average']} at the start, "
        f"{result.get('load_average_end')} at the end (a shared 2-core machine: other jobs "
        "ran beside it, so wall times are inflated; compare CPU times). The nine default students of `fcfd defaults` "
        "against the default teacher, connectors fitted on digits' whole training split as "
        f"the Functional gap page fits them; Adam at the page's budget of "
        f"{result['adam_epochs']} epochs, the closed form with its defaults (ridge "
        f"{result['lstsq']['ridge']}, then at most {result['lstsq'].get('refine_steps', 8)} "
        "full-batch refinement steps of the LeakyReLU bridges, which all of these bridges "
        "are). Both fits of a student run one after the other in the same process. MSE: "
        "each bridge's eval-mode MSE over the fit data.",
        "",
    ]
    rows = []
    for label, s in studs.items():
        mt = s["methods"]
        q = mt["lstsq"]
        row = [label, q["seconds"], q["cpu_seconds"]]
        if "adam" in mt:
            a = mt["adam"]
            ratios = [q["mse"][k] / a["mse"][k] for k in a["mse"]]
            row += [a["seconds"], a["cpu_seconds"], a["cpu_seconds"] / q["cpu_seconds"]]
            row += [f"{max(ratios):.4f}"]
        else:
            row += ["-", "-", "-", "-"]
        rows.append(row)
    head = ["student", "lstsq wall s", "lstsq CPU s", "adam wall s", "adam CPU s"]
    head += ["speed-up (CPU)", "max MSE ratio lstsq/adam"]
    lines += [table(head, rows), ""]
    wall = sum(s["methods"]["lstsq"]["seconds"] for s in studs.values())
    cpu = sum(s["methods"]["lstsq"]["cpu_seconds"] for s in studs.values())
    lines += [
        f"All {len(studs)} students fitted by lstsq in **{wall:.0f} s wall, {cpu:.0f} s of "
        "CPU** (one fit per student serves both BN regimes, as `fcfd defaults` and the page "
        "share it). On a shared machine the CPU time is the better estimate of the wall time "
        "on an idle core.",
        "",
        "Per-bridge final training MSE (eval-mode bridge over the fit data):",
        "",
    ]
    mse_rows = []
    for label, s in studs.items():
        for method, mt in s["methods"].items():
            mse_rows.append([label, method, *mt["mse"].values()])
    bridges = list(next(iter(studs.values()))["methods"]["lstsq"]["mse"])
    lines += [table(["student", "fit", *bridges], mse_rows), ""]
    kl_rows = []
    for label, s in studs.items():
        for method, mt in s["methods"].items():
            for bn in ("eval", "batch"):
                kl_rows.append([label, method, bn, *mt["functional"][bn]])
    n = len(next(iter(studs.values()))["methods"]["lstsq"]["functional"]["eval"])
    lines += ["Functional KL per stage:", ""]
    lines += [table(["student", "fit", "BN", *[f"stage {k + 1}" for k in range(n)]], kl_rows)]
    if result.get("end_to_end"):
        lines += ["", _e2e_line(result["end_to_end"])]
    return "\n".join(lines)


def _e2e_line(e: dict) -> str:
    return (
        f"`fcfd defaults` from scratch (runs, then the gap phase: nine students' connectors "
        f"and gap reports in both BN regimes): **{e['seconds']:.0f} s wall, "
        f"{e['cpu_seconds']:.0f} s of CPU** ({'; '.join(e['phases'])})."
    )


def _e2e_markdown(result: dict) -> str:
    m = result["machine"]
    return "\n".join(
        [
            f"## {result['heading']}",
            "",
            f"`python benchmarks/connector_fit.py --students --end-to-end` on {m['cpu']}, "
            f"{result['threads']} thread(s); load average {result['load_average']} at the "
            f"start, {result['load_average_end']} at the end (a shared machine).",
            "",
            _e2e_line(result["end_to_end"]),
            "",
            "The issue's target is <= 240 s on 2 cores. One thread's CPU time is under it; the "
            "wall time is not, on a machine whose other jobs kept the load average far above "
            "its 2 cores: an idle machine was not available to confirm the wall time.",
        ]
    )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs-dir", required=True, help="where the default runs are (or go)")
    ap.add_argument(
        "--students",
        nargs="*",
        default=None,
        help="run names (default: all nine; none: only --end-to-end)",
    )
    ap.add_argument("--adam-students", nargs="*", default=["ce", "kd", "fcfd"])
    ap.add_argument("--adam-epochs", type=int, default=100)
    ap.add_argument("--repeats", type=int, default=1)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--end-to-end", action="store_true", help="also time `fcfd defaults`")
    ap.add_argument("--dry-run", action="store_true", help="print the section, write nothing")
    add_section_args(ap, "connector_fit", HEADING)
    ap.add_argument(
        "--rewrite", action="store_true", help="re-render the section from results/NAME.json"
    )
    args = ap.parse_args()
    if args.rewrite:
        import json

        from benchmarks.common import RESULTS

        write_section(args.name, markdown(json.loads((RESULTS / f"{args.name}.json").read_text())))
        return
    torch.set_num_threads(args.threads)
    load = os.getloadavg()
    ensure_defaults(args.runs_dir)
    teacher = default_paths(args.runs_dir)["teacher"]
    # keyed by run name (ce, kd-s1, ...): the page's labels ("kd: defaults/kd-s1") are long
    students = {p.name: p for p in default_gap_students(args.runs_dir).values()}
    labels = list(students) if args.students is None else args.students  # []: none
    lstsq, adam = FitConfig(), FitConfig(max_epochs=args.adam_epochs, method="adam")
    result = {
        "heading": args.heading,
        "machine": machine(),
        "load_average": [round(v, 2) for v in load],
        "adam_epochs": args.adam_epochs,
        "threads": args.threads,
        "lstsq": {
            "ridge": lstsq.ridge,
            "refine_steps": lstsq.refine_steps,
            "refine_epochs": lstsq.refine_epochs,
        },
        "students": {},
    }
    for label in labels:
        methods = {"lstsq": lstsq, **({"adam": adam} if label in args.adam_students else {})}
        result["students"][label] = measure(students[label], teacher, label, methods, args.repeats)
    if args.end_to_end:
        result["end_to_end"] = end_to_end(args.threads)
    result["load_average_end"] = [round(v, 2) for v in os.getloadavg()]
    section = markdown(result)
    print(section)
    if not args.dry_run:
        write_json(args.name, result)
        write_section(args.name, section)


if __name__ == "__main__":
    main()
