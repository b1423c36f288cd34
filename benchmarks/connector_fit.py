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

``--teacher RUN`` fits other students instead (``--students`` run names under ``--runs-dir``,
e.g. benchmarks/accuracy.py's 5-seed digits students); the section then adds, per method
over its seeds, the functional KL of both fits (mean ± std) and the worst MSE ratio.
"""

from __future__ import annotations

import argparse
import contextlib
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
    write_json,
    write_section,
)
from benchmarks.connector_fit_report import markdown  # noqa: E402
from fcfd_viz.analysis import FitConfig, FunctionalGap  # noqa: E402
from fcfd_viz.analysis.gap.closed_form import eval_mse  # noqa: E402
from fcfd_viz.analysis.gap.connectors import fit_connectors  # noqa: E402
from fcfd_viz.analysis.gap.feature_pairs import _staged_pairs  # noqa: E402
from fcfd_viz.analysis.gap.inputs import gap_loaders, load_students  # noqa: E402
from fcfd_viz.analysis.gap.shared_teacher import shared_teacher  # noqa: E402
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


def fit_round(loaded: dict, labels: list[str], cfg: FitConfig, share: bool) -> dict:
    """One fit of each student, in order (``loaded[label]``: its ``(students, loaders)``),
    in one :func:`shared_teacher` scope when ``share`` (each student alone otherwise):
    ``{label: (wall s, CPU s, s2t, t2s, info)}``."""
    out = {}
    with shared_teacher() if share else contextlib.nullcontext():
        for label in labels:
            ld, (_, train) = loaded[label]
            shape = tuple(ld.info["input_shape"])
            t0, c0 = time.perf_counter(), time.process_time()
            fit = fit_connectors(ld.teacher, ld.students[label], train[label], shape, cfg)
            out[label] = (time.perf_counter() - t0, time.process_time() - c0, *fit)
            print(f"  {label} {cfg.method}: {out[label][0]:.1f} s (CPU {out[label][1]:.1f} s)")
    return out


def evaluate(loaded: dict, label: str, rounds: list[dict], cfg: FitConfig) -> dict:
    """A method's record for one student: times (medians over ``rounds``), the last fit's
    per-bridge MSE and functional KL in both BN regimes."""
    ld, (test_loader, train) = loaded[label]
    shape = tuple(ld.info["input_shape"])
    times = [r[label][0] for r in rounds]
    _, _, s2t, t2s, info = rounds[-1][label]
    gap = FunctionalGap(ld.teacher, ld.students, input_shape=shape)
    gap.set_fitted(label, s2t, t2s, info)
    kl = {}
    for bn in ("eval", "batch"):
        res = gap.compute(test_loader, train, bn=bn, fit=cfg)
        kl[bn] = res.entries[f"{label} (fitted)"].functional.tolist()
    return {
        "seconds": statistics.median(times),
        # this process's CPU time: what a shared machine's other jobs inflate least
        "cpu_seconds": statistics.median(r[label][1] for r in rounds),
        "all_seconds": times,
        "epochs": {k: b.epochs for k, b in info.bridges.items()},
        "curves": {k: b.curve for k, b in info.bridges.items()},  # lstsq: MSE after k steps
        "mse": fit_mse(ld, label, s2t, t2s, train[label], shape),
        "functional": kl,
    }


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


def _argv_without_note(argv: list[str]) -> list[str]:
    """The command line as shown in the section: the note is shown as itself."""
    out, skip = [], False
    for a in argv:
        if not skip and a != "--note" and not a.startswith("--note="):
            out.append(a)
        skip = a == "--note"
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs-dir", required=True, help="where the default runs are (or go)")
    ap.add_argument(
        "--students",
        nargs="*",
        default=None,
        help="run names (default: all nine; none: only --end-to-end)",
    )
    ap.add_argument(
        "--teacher",
        default=None,
        help="a teacher run (then --students are any runs under --runs-dir)",
    )
    ap.add_argument(
        "--adam-students", nargs="*", default=["ce", "kd", "fcfd"], help="'all': every student"
    )
    ap.add_argument("--adam-epochs", type=int, default=100)
    ap.add_argument("--repeats", type=int, default=1)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument(
        "--no-share", action="store_true", help="fit each student alone (no shared teacher)"
    )
    ap.add_argument("--note", default="", help="a paragraph added under the totals")
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
    runs_dir = Path(args.runs_dir)
    if args.teacher:
        if not args.students:
            raise SystemExit("--teacher needs --students (run names under --runs-dir)")
        teacher = runs_dir / args.teacher
        students = {name: runs_dir / name for name in args.students}
    else:
        ensure_defaults(runs_dir)
        teacher = default_paths(runs_dir)["teacher"]
        # keyed by run name (ce, kd-s1, ...): the page's labels ("kd: defaults/kd-s1") are long
        students = {p.name: p for p in default_gap_students(runs_dir).values()}
    labels = list(students) if args.students is None else args.students  # []: none
    if args.adam_students == ["all"]:
        args.adam_students = labels
    lstsq, adam = FitConfig(), FitConfig(max_epochs=args.adam_epochs, method="adam")
    result = {
        "heading": args.heading,
        "teacher": args.teacher and str(teacher),
        "machine": machine(),
        "load_average": [round(v, 2) for v in load],
        "adam_epochs": args.adam_epochs,
        "threads": args.threads,
        "repeats": args.repeats,
        "shared": not args.no_share,
        "argv": " ".join(_argv_without_note(sys.argv[1:])),
        "note": args.note,
        "lstsq": {
            "ridge": lstsq.ridge,
            "refine_steps": lstsq.refine_steps,
            "refine_epochs": lstsq.refine_epochs,
        },
        "students": {},
    }
    loaded = {}
    for label in labels:
        ld = load_students([students[label]], teacher, [label])
        loaded[label] = (ld, gap_loaders(ld, FIT_DATA))
    rounds = [fit_round(loaded, labels, lstsq, not args.no_share) for _ in range(args.repeats)]
    slow = [la for la in labels if la in args.adam_students]
    adam_rounds = (
        [fit_round(loaded, slow, adam, False) for _ in range(args.repeats)] if slow else []
    )
    for label in labels:
        methods = {"lstsq": evaluate(loaded, label, rounds, lstsq)}
        if label in slow:
            methods["adam"] = evaluate(loaded, label, adam_rounds, adam)
        result["students"][label] = {"path": str(students[label]), "methods": methods}
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
