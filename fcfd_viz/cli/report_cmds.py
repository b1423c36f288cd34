"""``fcfd report``: one self-contained HTML page of a study's runs (argument parsing and
writing; the page is :func:`~fcfd_viz.reports.study.study_report`).

The page holds every run's test / train top-1 and loss curves, the teacher's probe (as
``fcfd probe``), the students' functional gap (as ``fcfd gap --fit-data full``; a gap the
app or an earlier report measured is read from ``RUNS/.cache``) and every run's config.json
with the ``fcfd`` command that trains it again. plotly.js is inlined: it opens offline.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from fcfd_viz.cli.common import add_spectrum_arg

DESCRIPTION = (
    "Write one self-contained HTML page (plotly.js inlined: it opens offline, e.g. as an "
    "e-mail attachment) of the runs RUN...: test/train top-1 (detection runs: test mAP) "
    "and loss curves of each run, the teacher's probe (sensitivity and anisotropy after one "
    "stage; classifiers only), the functional gap of the students against the teacher (per "
    "FPN level for detectors), and each run's config.json with the fcfd command that trains "
    "it again. The teacher is --teacher or the one the runs record; its run directory joins "
    "the page."
)


def register(sub: argparse._SubParsersAction) -> None:
    """Add ``fcfd report``."""
    p = sub.add_parser(
        "report", help="one offline HTML page of runs: curves, probe, gap, commands",
        description=DESCRIPTION,
    )  # fmt: skip
    p.add_argument("runs", nargs="+", metavar="RUN", help="run directories of the study")
    p.add_argument("--out", required=True, metavar="FILE", help="the HTML file to write")
    p.add_argument("--force", action="store_true", help="replace an existing --out")
    p.add_argument(
        "--teacher",
        default=None,
        metavar="CKPT",
        help="teacher checkpoint or run directory (default: the one the runs record)",
    )
    p.add_argument("--no-probe", action="store_true", help="leave out the teacher's probe")
    p.add_argument(
        "--no-gap", action="store_true", help="leave out the functional gap (no connector fits)"
    )
    g = p.add_argument_group("probe")
    g.add_argument(
        "--stage",
        type=int,
        default=None,
        metavar="I",
        help="cut after this stage (default 2, or the last)",
    )
    g.add_argument(
        "--images", type=int, default=32, metavar="N", help="test images to probe (default 32)"
    )
    g = p.add_argument_group("functional gap")
    g.add_argument(
        "--bn",
        choices=["eval", "batch"],
        default="eval",
        help="teacher BN regime: eval (running statistics) or batch (batch statistics)",
    )
    g.add_argument(
        "--fit-max-epochs",
        type=int,
        default=100,
        metavar="N",
        help="cap on the post-hoc connector fit of each student (default 100, as in the app)",
    )
    add_spectrum_arg(
        g, "also each student's error spectrum (as fcfd gap --spectrum) on IMAGES test images"
    )
    p.add_argument(
        "--data-dir", default=None, metavar="DIR", help="folder with CIFAR / ImageNet data"
    )
    p.add_argument(
        "--runs-dir",
        default=None,
        metavar="DIR",
        help="runs folder (default: $FCFD_RUNS_DIR or ./runs): runs inside it are named "
        "relative to it, and its .cache keeps measured gaps, shared with the app",
    )
    p.add_argument("--title", default=None, help="the page's title")
    p.add_argument("--no-progress", action="store_true", help="no progress bars")
    p.set_defaults(func=cmd_report)


def _check_out(out: Path, force: bool) -> None:
    from fcfd_viz.errors import UserError
    from fcfd_viz.runs.provenance import enclosing_run

    if out.is_dir():
        raise UserError(f"--out {out} is a directory; name an HTML file")
    run = enclosing_run(out)
    if run is not None:  # a checkpoint, or a foreign file that stops --overwrite of the run
        raise UserError(
            f"--out {out} lies inside the run directory {run}; write the report outside "
            "every run directory"
        )
    if out.exists() and not force:
        raise UserError(f"{out} exists; pass --force to replace it")


def cmd_report(args: argparse.Namespace) -> int:
    from fcfd_viz.io.files import atomic_write, user_os_errors
    from fcfd_viz.reports.study import StudyOptions
    from fcfd_viz.reports.study_page import study_report
    from fcfd_viz.runs.layout import CACHE_DIR, default_runs_dir

    out = Path(args.out)
    _check_out(out, args.force)  # before any work
    options = StudyOptions(
        probe=not args.no_probe,
        gap=not args.no_gap,
        stage=args.stage,
        images=args.images,
        bn=args.bn,
        fit_epochs=args.fit_max_epochs,
        data_dir=args.data_dir,
        spectrum=args.spectrum,
    )
    root = default_runs_dir(args.runs_dir)
    page = study_report(
        args.runs,
        args.teacher,
        options,
        root=root,
        cache_dir=root / CACHE_DIR if root.is_dir() else None,
        progress=not args.no_progress,
        out=out,
        title=args.title,
    )
    _check_out(out, args.force)  # nothing appeared there meanwhile
    with user_os_errors(out):
        out.parent.mkdir(parents=True, exist_ok=True)
        atomic_write(out, page)
    print(f"report of {len(args.runs)} run(s) -> {out} ({len(page) / 2**20:.1f} MB)")
    return 0
