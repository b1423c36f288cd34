"""Cost of listing a runs folder that holds one 50 MB ``metrics.jsonl`` (issue #11, point 9).

Builds the tiny app runs (a digits teacher and ce/kd/fcfd students, as the app tests do)
plus a run ``big`` whose metrics file is 50 MB of well-formed lines (the newest run, so the
Distill page picks it). Then, each in a fresh process and the median of three: ``fcfd runs``
(in-process ``main``, twice: the second call is a re-listing), ``jobs.list_jobs`` (twice),
and the Home, Distill and Runs pages under ``AppTest`` (first render, then a rerun: what the
2 s poll costs). The same with the big run removed gives the floor.

    python benchmarks/listing_cost.py [--work DIR]     # -> docs/reliability.md "Cost of listing"
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.common import ROOT, machine, table, write_section  # noqa: E402

DOC = ROOT / "docs" / "reliability.md"
BIG_BYTES = 50 * 2**20
WHAT = ("cli", "jobs", "home", "pages/3_Distill.py", "pages/4_Runs.py")
LABEL = {"cli": "`fcfd runs`", "jobs": "`jobs.list_jobs`", "home": "Home page",
         "pages/3_Distill.py": "Distill page", "pages/4_Runs.py": "Runs page"}  # fmt: skip

CHILD = r"""
import contextlib, io, json, os, sys, time
root, what, app = sys.argv[1:4]
t0 = time.perf_counter()
if what in ("cli", "jobs"):
    from fcfd_viz.jobs import control as jobs
    from fcfd_viz.cli import main
    call = (lambda: main(["runs", root])) if what == "cli" else (lambda: jobs.list_jobs(root))
    with contextlib.redirect_stdout(io.StringIO()):
        call(); t1 = time.perf_counter(); call(); t2 = time.perf_counter()
else:
    os.environ["FCFD_RUNS_DIR"] = root
    from streamlit.testing.v1 import AppTest
    at = AppTest.from_file(app, default_timeout=600)
    at.run()
    if what != "home":
        at.switch_page(what)
    t0 = time.perf_counter(); at.run(); t1 = time.perf_counter()
    assert not at.exception, [e.value for e in at.exception]
    at.run(); t2 = time.perf_counter()
print(json.dumps({"first": t1 - t0, "again": t2 - t1}))
"""


def build(root: Path) -> None:
    from tests.app.conftest import build_runs

    build_runs(root)
    big = root / "big"
    big.mkdir()
    shutil.copy(root / "defaults" / "ce" / "config.json", big / "config.json")
    rec = json.loads((root / "defaults" / "ce" / "metrics.jsonl").read_text().splitlines()[0])
    rec["losses"] = {f"term{i}": 0.5 for i in range(8)}
    size, epoch = 0, 0
    with open(big / "metrics.jsonl", "w") as f:
        while size < BIG_BYTES:
            epoch += 1
            line = json.dumps({**rec, "epoch": epoch}, sort_keys=True) + "\n"
            f.write(line)
            size += len(line)
    status = {"state": "completed", "epoch": epoch, "epochs": epoch, "time": time.time()}
    (big / "status.json").write_text(json.dumps(status))


def measure(root: Path, repeats: int = 3) -> dict:
    app = str(ROOT / "app" / "main.py")
    out = {}
    for what in WHAT:
        runs = []
        for _ in range(repeats):
            r = subprocess.run([sys.executable, "-c", CHILD, str(root), what, app],
                               capture_output=True, text=True, cwd=ROOT)  # fmt: skip
            if r.returncode:
                raise SystemExit(r.stderr[-3000:])
            runs.append(json.loads(r.stdout.strip().splitlines()[-1]))
        out[what] = {k: statistics.median(x[k] for x in runs) for k in ("first", "again")}
        print(f"{what:20s} {out[what]}", flush=True)
    return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--work", default=None, help="folder for the runs (default: a temp dir)")
    args = p.parse_args()
    work = Path(args.work or tempfile.mkdtemp(prefix="listing-"))
    with_big, without = work / "with-big", work / "without"
    if not with_big.exists():
        build(with_big)
    if not without.exists():
        shutil.copytree(with_big, without, ignore=shutil.ignore_patterns("big"))
    big, floor = measure(with_big), measure(without)
    rows = [
        [LABEL[w], f"{big[w]['first']:.2f}", f"{big[w]['again']:.2f}",
         f"{floor[w]['first']:.2f}", f"{floor[w]['again']:.2f}"]
        for w in WHAT
    ]  # fmt: skip
    head = ["what", "with 50 MB: first (s)", "rerun (s)", "without: first (s)", "rerun (s)"]
    info = machine()
    write_section(
        "listing",
        f"Measured by `benchmarks/listing_cost.py` on {info['cpu']} (torch threads "
        f"{info['threads']}), medians of 3 fresh processes; *first* includes imports for "
        "the CLI rows.\n\n" + table(head, rows),
        doc=DOC,
    )


if __name__ == "__main__":
    main()
