"""Property (issue #11, point 2): whatever junk a runs folder holds, ``fcfd runs``, every
listing function and every page of the app answer without raising.

Hypothesis writes random run folders: config, status, summary and job records that are
plausible, wrong-typed or not JSON at all; metrics files mixing good, torn, junk and
non-UTF-8 lines; directories where files belong; junk checkpoints. Since issue #29 also
runs nested in runs, folders holding another tool's ``config.json``, format markers and
teacher hashes of every kind, and teachers reached through a symlink in the folder; and
the writer's checks and ``jobs.delete`` answer such folders with a UserError or not at all;
``runs_below``, ``enclosing_run`` and ``dependants`` find exactly the runs written (nested
ones, not a foreign config.json, not through the link; a teacher named through the link).
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import tempfile
from pathlib import Path

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from fcfd_viz.cli import main
from fcfd_viz.errors import UserError
from fcfd_viz.experiments import demo as defaults
from fcfd_viz.jobs import control as jobs
from fcfd_viz.jobs import demo_build
from fcfd_viz.jobs.spec import record_key
from fcfd_viz.runs.listing import STATES, group_runs, list_runs
from fcfd_viz.runs.provenance import dependants, enclosing_run, is_run, runs_below
from fcfd_viz.runs.writer import check_target

APP = str(Path(__file__).resolve().parents[1] / "app" / "main.py")
PAGES = ["pages/1_Sensitivity.py", "pages/2_Functional_gap.py", "pages/3_Distill.py",
         "pages/4_Runs.py", "pages/5_Perturbation.py"]  # fmt: skip

leaf = (st.none() | st.booleans() | st.integers(-(2**70), 2**70) | st.floats()
        | st.text(max_size=8))  # fmt: skip
junk = st.recursive(
    leaf, lambda c: st.lists(c, max_size=3) | st.dictionaries(st.text(max_size=6), c, max_size=3),
    max_leaves=6,
)  # fmt: skip
pid = st.sampled_from([None, "x", 0, -1, 1, 2**40, os.getpid(), 4_000_000]) | junk
method = st.sampled_from(["ce", "kd", "fcfd"])
# a teacher path: placeholders write_folder turns into paths in the folder (a symlink to a
# run, a file through it, a run, a nested run)
teacher = st.none() | junk | st.sampled_from(["<link>", "<link>/best.pt", "<a>", "<a/inner>"])
config = st.fixed_dictionaries(  # method: a name (since issue #12) or the older dict
    {"method": method | st.fixed_dictionaries({"method": method}) | junk,
     "student": st.sampled_from(["resnet8"]) | junk, "teacher": teacher,
     "data": st.fixed_dictionaries({"dataset": st.just("digits") | junk}) | junk,
     "train": st.fixed_dictionaries({"epochs": st.integers(1, 5) | junk,
                                     "seed": st.integers(0, 3) | junk}) | junk},
    optional={"method_config": st.fixed_dictionaries({"temperature": st.floats()}) | junk,
              "format": st.sampled_from(["fcfd-viz/run-1", "other-tool/2"]) | junk,
              "teacher_sha256": st.just("0" * 64) | junk},
)  # fmt: skip
# a run's own config.json, half the time: nested runs, links and teachers need real runs
ours = st.fixed_dictionaries(
    {"method": method, "student": st.just("resnet8"), "data": st.just({"dataset": "digits"}),
     "train": st.fixed_dictionaries({"epochs": st.integers(1, 5), "seed": st.integers(0, 3)}),
     "teacher": st.none() | st.sampled_from(["<link>", "<link>/best.pt", "<a>", "<a/inner>"])},
    optional={"format": st.just("fcfd-viz/run-1")},
).map(lambda o: json.dumps(o).encode())  # fmt: skip
# another tool's config.json: the same file name, none of our keys
foreign = st.fixed_dictionaries({"model": st.text(max_size=8), "lr": st.floats() | junk},
                                optional={"format": st.text(max_size=8)})  # fmt: skip
status = st.fixed_dictionaries(
    {"state": st.sampled_from([*STATES, "unknown"]) | junk, "pid": pid,
     "create_time": st.none() | st.floats() | junk, "time": st.floats() | junk,
     "epoch": junk, "epochs": junk, "error": st.text(max_size=20) | junk},
)  # fmt: skip
summary = st.fixed_dictionaries(
    {"top1": st.floats(0, 100) | junk, "best_top1": junk, "epochs": junk, "stopped": junk,
     "seconds": junk, "dataset": junk, "teacher": junk},
)  # fmt: skip
record = st.fixed_dictionaries(
    {"epoch": st.integers(1, 9) | junk, "lr": st.floats() | junk, "loss": st.floats() | junk,
     "losses": st.dictionaries(st.text(max_size=4), st.floats() | junk, max_size=2) | junk,
     "train_top1": st.floats(0, 100), "test_top1": st.floats(0, 100) | junk},
)  # fmt: skip
metrics_line = (record | junk).map(lambda r: json.dumps(r).encode()) | st.binary(max_size=30)


def json_file(obj_strategy):
    return (obj_strategy | junk).map(lambda o: json.dumps(o).encode()) | st.binary(max_size=40)


def content(obj_strategy):
    """A file's content, ``None`` (absent) or ``"<dir>"`` (a directory in its place)."""
    return st.none() | st.just("<dir>") | json_file(obj_strategy)


run_files = st.fixed_dictionaries(
    {"config.json": ours | content(config | foreign), "status.json": content(status),
     "summary.json": content(summary),
     "metrics.jsonl": st.none() | st.just("<dir>")
     | st.lists(metrics_line, max_size=6).map(b"\n".join),
     "best.pt": st.none() | st.binary(max_size=20), "last.pt": st.none() | st.just(b"")},
)  # fmt: skip
names = st.sampled_from(["a", "b", "a__b", "defaults/teacher", "defaults/ce", "x/y", "run.1",
                         "a/inner", "defaults/teacher/nested"])  # fmt: skip
folder = st.fixed_dictionaries(
    {"runs": st.dictionaries(names, run_files, min_size=1, max_size=4),
     "records": st.dictionaries(names | st.just("defaults"), json_file(st.fixed_dictionaries(
         {"pid": pid, "create_time": junk, "time": junk, "log": junk})), max_size=2),
     "progress": st.none() | json_file(st.fixed_dictionaries({"fraction": junk, "pid": pid})),
     "link": st.none() | names},  # RUNS/link -> RUNS/<name>: a teacher reached by a symlink
)  # fmt: skip
PLACES = {b'"<link>': "link", b'"<a>': "a", b'"<a/inner>': "a/inner"}


def write_folder(root: Path, spec: dict) -> None:
    for name, files in spec["runs"].items():
        (root / name).mkdir(parents=True, exist_ok=True)
        for fname, data in files.items():
            if data == "<dir>":
                (root / name / fname).mkdir(exist_ok=True)
            elif data is not None and not (root / name / fname).is_dir():  # a nested run's
                for mark, place in PLACES.items():  # folder may stand there already
                    data = data.replace(mark, b'"' + str(root / place).encode())
                (root / name / fname).write_bytes(data)
    if spec["link"] is not None:
        (root / spec["link"]).mkdir(parents=True, exist_ok=True)
        (root / "link").symlink_to(root / spec["link"], target_is_directory=True)
    (root / ".jobs").mkdir(exist_ok=True)
    for name, data in spec["records"].items():
        (root / ".jobs" / f"{record_key(name)}.json").write_bytes(data)
    if spec["progress"] is not None:
        (root / "defaults").mkdir(exist_ok=True)
        (root / "defaults" / "progress.json").write_bytes(spec["progress"])


def check_library(root: Path) -> None:
    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
        for extra in ([], ["--json"], ["--group"], ["--group", "--json"]):
            assert main(["runs", str(root), *extra]) == 0, extra
    rows = list_runs(root)
    assert all(r["state"] in (*STATES, "unknown", "unreadable") for r in rows)
    completed = {r["run"] for r in rows if r["state"] == "completed"}
    grouped = [run for g in group_runs(root) for run in g["runs"]]
    assert len(grouped) == len(set(grouped)) and set(grouped) <= completed
    for job in jobs.list_jobs(root):
        assert jobs.get_job(root, job.name) is not None
    jobs.active_count(root)
    defaults.defaults_ready(root), demo_build.building(root), defaults.defaults_progress(root)


def teacher_of(run: Path, root: Path, spec: dict) -> Path | None:
    """The teacher a run's config.json names, with the folder's link followed by hand."""
    try:
        teacher = json.loads((run / "config.json").read_bytes()).get("teacher")
    except (ValueError, AttributeError):
        return None
    if not isinstance(teacher, str) or not teacher:
        return None
    if spec["link"] is not None and teacher.startswith(str(root / "link")):
        teacher = str(root / spec["link"]) + teacher[len(str(root / "link")) :]
    return Path(os.path.abspath(teacher))


def check_provenance(root: Path, spec: dict) -> None:
    """The runs found below the folder are exactly the runs written, nested ones included,
    none through the link; each one's enclosing run is its nearest written run above it;
    the dependants of a run are the runs naming a teacher in it, through the link too."""
    ours = {root / name for name in spec["runs"] if is_run(root / name)}
    assert set(runs_below(root)) == ours  # a foreign config.json is no run, the link not followed
    for name in spec["runs"]:
        above = [root.joinpath(*Path(name).parts[:i]) for i in range(1, len(Path(name).parts))]
        nearest = next((p for p in reversed(above) if p in ours), None)
        assert enclosing_run(root / name) == nearest, name
        target = root / name
        named = {r for r in ours - {target} if (t := teacher_of(r, root, spec)) is not None
                 and (t == target or target in t.parents)}  # fmt: skip
        assert set(dependants(target, [root])) == named, name


def check_writer_and_delete(root: Path, spec: dict) -> None:
    """Every check of a new --out (nested, --overwrite, a teacher others name) and every
    delete answers with a UserError or goes through; a link is removed, never its target."""
    for name in spec["runs"]:
        for out, kw in ((root / name / "new", {}), (root / name, {"overwrite": True})):
            with contextlib.suppress(UserError):
                check_target(out, protect=[root / "link"], **kw)
    if (root / "link").is_symlink():
        target = (root / "link").resolve()
        with contextlib.suppress(UserError):
            jobs.delete(root, "link")
        assert target.is_dir(), "the delete of a link took its target"
    for name in spec["runs"]:
        with contextlib.suppress(UserError):
            jobs.delete(root, name)


def junk_settings(examples: int):
    # derandomize: the same examples on every run (a seed fixed by the test itself)
    return settings(max_examples=examples, deadline=None, database=None, derandomize=True,
                    suppress_health_check=[HealthCheck.too_slow])  # fmt: skip


@contextlib.contextmanager
def junk_folder(spec: dict):
    """A temp runs folder holding ``spec``."""
    with tempfile.TemporaryDirectory() as d:
        write_folder(Path(d), spec)
        yield Path(d)


def _run(teacher: str | None) -> dict:
    cfg = {"method": "kd", "student": "resnet8", "data": {"dataset": "digits"},
           "train": {"epochs": 1, "seed": 0}, "teacher": teacher}  # fmt: skip
    files = dict.fromkeys(["status.json", "summary.json", "metrics.jsonl", "best.pt", "last.pt"])
    return {"config.json": json.dumps(cfg).encode(), **files}


# every case at once: a run nested in a run, a foreign config.json, a teacher named through
# the link (the random examples need not draw all of these together)
EVERY_CASE = {
    "runs": {"a": _run(None), "a/inner": _run("<a>"), "b": _run("<link>/best.pt"),
             "x/y": {**_run(None), "config.json": b'{"model": "m", "lr": 0.1}'}},
    "records": {}, "progress": None, "link": "a",
}  # fmt: skip


@junk_settings(60)
@given(spec=folder)
@example(spec=EVERY_CASE)
def test_listings_never_raise_on_junk(spec):
    with junk_folder(spec) as root:
        check_library(root)
        check_provenance(root, spec)
        check_writer_and_delete(root, spec)


@pytest.mark.slow
@junk_settings(40)
@given(spec=folder)
def test_every_page_renders_on_junk(spec):
    from streamlit.testing.v1 import AppTest

    before = os.environ.get("FCFD_RUNS_DIR")
    with junk_folder(spec) as root:
        os.environ["FCFD_RUNS_DIR"] = str(root)  # monkeypatch is per test, not per example
        try:
            at = AppTest.from_file(APP, default_timeout=120)
            at.run()
            assert not at.exception, [e.value for e in at.exception]
            for page in PAGES:
                at.switch_page(page).run()
                assert not at.exception, (page, [e.value for e in at.exception])
        finally:
            os.environ.pop("FCFD_RUNS_DIR")
            if before is not None:
                os.environ["FCFD_RUNS_DIR"] = before
