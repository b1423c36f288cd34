"""The table of runs under junk (issue #11, points 2, 6 and 9): a malformed run is one
``unreadable`` row and everything else keeps working; a dead writer reads ``interrupted``
whatever its pid now names; listing costs the same whatever the size of a metrics file."""

from __future__ import annotations

import json
import subprocess
import time
from pathlib import Path

import pytest

from fcfd_viz.cli import main
from fcfd_viz.io.procs import identity
from fcfd_viz.jobs import control as jobs
from fcfd_viz.runs.listing import list_runs

CONFIG = {
    "method": "ce",
    "method_config": {"ce_weight": 1.0},
    "student": "resnet8",
    "teacher": None,
    "data": {"dataset": "digits"},
    "train": {"epochs": 3, "seed": 0},
}
RECORD = {"epoch": 1, "lr": 0.1, "loss": 1.0, "losses": {"ce": 1.0}, "train_top1": 50.0,
          "test_top1": 60.0, "seconds": 0.1, "steps": 5}  # fmt: skip


def make_run(root: Path, name: str, files: dict) -> Path:
    """A run directory; ``files`` maps names to str/bytes contents or ``"<dir>"``."""
    path = root / name
    path.mkdir(parents=True)
    files = {"config.json": json.dumps(CONFIG), **files}
    for fname, content in files.items():
        if content == "<dir>":
            (path / fname).mkdir()
        elif isinstance(content, bytes):
            (path / fname).write_bytes(content)
        else:
            (path / fname).write_text(content)
    return path


# the crashers of issue #11, one run each; the row must say unreadable (True) or simply
# leave the bad line out (False)
CRASHERS = {
    "config-list": ({"config.json": "[1, 2]"}, True),
    "method-number": ({"config.json": json.dumps({**CONFIG, "method": 5})}, True),
    "method-config-list": ({"config.json": json.dumps({**CONFIG, "method_config": []})}, True),
    "method-name-list": ({"config.json": json.dumps({**CONFIG, "method": {"method": []}})}, True),
    "no-test-top1": ({"metrics.jsonl": json.dumps({**RECORD, "test_top1": None}) + "\n"}, False),
    "metrics-list": ({"metrics.jsonl": "[1, 2, 3]\n"}, False),
    "metrics-not-utf8": ({"metrics.jsonl": b"\xff\xfe\x00garbage\n"}, False),
    "metrics-dir": ({"metrics.jsonl": "<dir>"}, True),
    "status-list": ({"status.json": "[]"}, True),
    "status-junk-pid": ({"status.json": json.dumps({"state": "running", "pid": "x"})}, False),
    "summary-junk": ({"summary.json": json.dumps({"top1": "high"})}, True),
}


@pytest.fixture
def junk_root(tmp_path: Path) -> Path:
    root = tmp_path / "runs"
    for name, (files, _) in CRASHERS.items():
        make_run(root, name, files)
    make_run(root, "good", {"metrics.jsonl": json.dumps(RECORD) + "\n"})
    # config.json as written before issue #12: the name inside the knobs' dict
    old = {k: v for k, v in CONFIG.items() if k != "method_config"}
    old["method"] = {"method": "kd", "temperature": 4.0}
    make_run(root, "good-old-config", {"config.json": json.dumps(old)})
    return root


def test_each_malformed_run_is_one_row_and_the_rest_lists(junk_root: Path, capsys):
    rows = {r["name"]: r for r in list_runs(junk_root)}
    assert set(rows) == {*CRASHERS, "good", "good-old-config"}
    for name, (_, unreadable) in CRASHERS.items():
        assert (rows[name]["state"] == "unreadable") == unreadable, rows[name]
        assert bool(rows[name]["error"]) == unreadable, rows[name]
    assert rows["good"]["top1"] == 60.0 and rows["good"]["epochs"] == "1/3"
    assert rows["good"]["method"] == "ce" and rows["good-old-config"]["method"] == "kd"
    assert rows["good-old-config"]["state"] == "unknown" and not rows["good-old-config"]["error"]
    assert rows["status-junk-pid"]["state"] == "interrupted"  # "running", but no such process
    assert main(["runs", str(junk_root)]) == 0
    out = capsys.readouterr().out
    assert "unreadable: config.json holds a JSON list, not an object" in out
    assert main(["runs", str(junk_root), "--json"]) == 0
    assert len(json.loads(capsys.readouterr().out)) == len(CRASHERS) + 2
    listed = {j.name: j for j in jobs.list_jobs(junk_root)}
    assert set(listed) == set(rows)
    for name in listed:
        job = jobs.get_job(junk_root, name)
        assert not job.active and (job.state == "unreadable") == (name in _unreadable())
    jobs.delete(junk_root, "config-list")  # a broken run can be deleted
    assert not (junk_root / "config-list").exists()


def _unreadable() -> set[str]:
    return {n for n, (_, bad) in CRASHERS.items() if bad}


def test_a_reused_pid_does_not_keep_a_dead_run_running(tmp_path: Path):
    root = tmp_path / "runs"
    sleeper = subprocess.Popen(["sleep", "60"])  # alive, but not the process that trained
    try:
        me = identity(sleeper.pid)
        status = {"state": "running", "epoch": 1, "epochs": 3}
        make_run(root, "reused", {"status.json": json.dumps(
            {**status, "pid": sleeper.pid, "create_time": me["create_time"] - 100})})  # fmt: skip
        make_run(root, "legacy", {"status.json": json.dumps(  # no create_time: older files
            {**status, "pid": sleeper.pid, "time": me["create_time"] - 100})})  # fmt: skip
        make_run(root, "alive", {"status.json": json.dumps({**status, **me})})
        rows = {r["name"]: r["state"] for r in list_runs(root)}
        assert rows == {"reused": "interrupted", "legacy": "interrupted", "alive": "running"}
        assert jobs.active_count(root) == 1  # only the live one counts against the limit
        jobs.delete(root, "reused")  # a dead run can be deleted
        with pytest.raises(jobs.UserError, match="stop it before deleting"):
            jobs.delete(root, "alive")
    finally:
        sleeper.kill()
        sleeper.wait()


def test_listing_reads_only_the_end_of_a_huge_metrics_file(tmp_path: Path):
    root = tmp_path / "runs"
    run = make_run(root, "big", {})
    line = json.dumps({**RECORD, "losses": {f"t{i}": 0.5 for i in range(8)}})
    n = 50 * 2**20 // len(line)
    with open(run / "metrics.jsonl", "w") as f:
        for e in range(1, n + 1):
            f.write(line.replace('"epoch": 1', f'"epoch": {e}') + "\n")
    for _ in range(2):  # an uncached listing, then the 2 s poll of the app
        t0 = time.perf_counter()
        rows = list_runs(root)
        jobs.list_jobs(root)
        elapsed = time.perf_counter() - t0
        assert rows[0]["epochs"] == f"{n}/3"
        # reading 50 MB took > 1.8 s here before; the tail read takes milliseconds
        assert elapsed < 0.5, elapsed


def test_a_long_history_is_thinned_for_curves_and_keeps_its_newest_epoch(tmp_path: Path):
    from fcfd_viz.runs.layout import Run

    run = make_run(tmp_path, "long", {})
    lines = [json.dumps({**RECORD, "epoch": e}) for e in range(1, 10_001)]
    (run / "metrics.jsonl").write_text("\n".join(lines) + '\n{"epoch": 10001, "lr"')  # torn
    curve = Run(run).metrics(max_points=100)
    assert 90 <= len(curve) <= 100 and curve[-1]["epoch"] == 10_000
    epochs = [r["epoch"] for r in curve]
    assert epochs == sorted(epochs) and len(Run(run).metrics()) == 10_000


APP = str(Path(__file__).resolve().parents[2] / "app" / "main.py")


def test_every_page_renders_beside_the_malformed_runs(junk_root: Path, monkeypatch):
    from streamlit.testing.v1 import AppTest

    monkeypatch.setenv("FCFD_RUNS_DIR", str(junk_root))
    at = AppTest.from_file(APP, default_timeout=120)
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    for page in ("pages/1_Sensitivity.py", "pages/2_Functional_gap.py", "pages/3_Distill.py",
                 "pages/5_Perturbation.py", "pages/4_Runs.py"):  # fmt: skip
        at.switch_page(page).run()
        assert not at.exception, (page, [e.value for e in at.exception])
    table = at.dataframe[0].value  # the Runs page: one row per run, the broken ones say why
    states = dict(zip(table["run"], table["state"]))
    assert states["config-list"] == "unreadable: config.json holds a JSON list, not an object"
    assert len(states) == len(CRASHERS) + 2


def finished(root: Path, name: str, seed: int, top1: float, top5: float | None, **train) -> Path:
    """A completed run of seed ``seed`` (its subset fixed per seed, as the pipeline writes)."""
    config = {
        **CONFIG,
        "data": {"dataset": "digits", "subset_seed": seed},
        "train": {"epochs": 3, "seed": seed, **train},
    }
    summary = {"top1": top1, "best_top1": top1 + 1, "top5": top5, "best_top5": top5}
    if top5 is None:  # a run from before top-5: no such keys
        summary = {"top1": top1, "best_top1": top1 + 1}
    return make_run(
        root,
        name,
        {
            "config.json": json.dumps(config),
            "summary.json": json.dumps(summary),
            "status.json": json.dumps({"state": "completed"}),
            "metrics.jsonl": json.dumps({**RECORD, "test_top1": top1}) + "\n",
        },
    )


def test_runs_group_by_config_but_seed_with_mean_and_std(tmp_path: Path, capsys):
    root = tmp_path / "runs"
    for seed, top1 in enumerate([90.0, 92.0, 94.0]):
        finished(root, f"ce-s{seed}", seed, top1, 99.0 + seed / 2)
    finished(root, "ce-lr-s0", 0, 50.0, None, lr=0.2)  # another config: its own group
    running = finished(root, "ce-s3", 3, 10.0, 10.0)  # not finished: left out
    (running / "status.json").write_text(json.dumps({"state": "stopped"}))
    row = next(r for r in list_runs(root) if r["name"] == "ce-s1")
    assert (row["top1"], row["top5"], row["best_top5"]) == (92.0, 99.5, 99.5)

    assert main(["runs", str(root), "--group", "--json"]) == 0
    groups = json.loads(capsys.readouterr().out)
    assert [g["n"] for g in groups] == [3, 1]
    three, one = groups
    assert three["seeds"] == [0, 1, 2] and three["method"] == "ce" and three["epochs"] == 3
    assert three["top1"] == {"mean": 92.0, "std": 2.0, "n": 3}  # stdev of 90, 92, 94
    assert three["best_top1"]["mean"] == 93.0
    assert three["top5"] == {"mean": 99.5, "std": 0.5, "n": 3}
    assert one["top1"] == {"mean": 50.0, "std": None, "n": 1}
    assert one["top5"] == {"mean": None, "std": None, "n": 0}  # written before top-5
    assert three["config"] != one["config"]

    assert main(["runs", str(root), "--group"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split()[:6] == ["config", "method", "student", "dataset", "epochs", "seeds"]
    assert "92.00 ± 2.00" in lines[1] and "99.50 ± 0.50" in lines[1]
    assert lines[1].endswith("ce-s0, ce-s1, ce-s2")
    assert "50.00 " in lines[2] and "±" not in lines[2]


def test_detection_runs_list_their_map(tmp_path: Path, capsys):
    root = tmp_path / "runs"
    det = {**CONFIG, "task": "detection", "student": "det_resnet10"}
    det["data"] = {"dataset": "digit-boxes"}
    record = {"epoch": 1, "lr": 0.1, "loss": 1.0, "losses": {}, "map": 12.5, "map_50": 30.0,
              "map_75": 10.0, "seconds": 1.0}  # fmt: skip
    summary = {"map": 12.5, "best_map": 14.25, "task": "detection", "seconds": 2.0}
    make_run(
        root, "det-done", {"config.json": json.dumps(det), "summary.json": json.dumps(summary)}
    )
    make_run(
        root,
        "det-going",
        {"config.json": json.dumps(det), "metrics.jsonl": json.dumps(record) + "\n"},
    )
    make_run(root, "clf", {"metrics.jsonl": json.dumps(RECORD) + "\n"})
    rows = {r["name"]: r for r in list_runs(root)}
    assert rows["det-done"]["task"] == "detection" and rows["clf"]["task"] == "classification"
    assert (rows["det-done"]["map"], rows["det-done"]["best_map"]) == (12.5, 14.25)
    assert rows["det-going"]["map"] == 12.5  # from the last metrics line, before the summary
    assert rows["det-done"]["top1"] is None and rows["clf"]["map"] is None
    assert main(["runs", str(root)]) == 0
    lines = {ln.split()[0]: ln for ln in capsys.readouterr().out.splitlines()}
    assert "12.50 mAP  14.25 mAP" in lines["det-done"] and "12.50 mAP" in lines["det-going"]
    assert "60.00" in lines["clf"] and "mAP" not in lines["clf"]


def test_detection_runs_group_with_their_map(tmp_path: Path, capsys):
    root = tmp_path / "runs"
    for seed, mean_ap in enumerate([40.0, 44.0]):
        config = {**CONFIG, "task": "detection", "student": "det_resnet10"}
        config |= {"data": {"dataset": "digit-boxes"}, "train": {"epochs": 3, "seed": seed}}
        summary = {"map": mean_ap, "best_map": mean_ap + 1, "task": "detection"}
        files = {
            "config.json": config,
            "summary.json": summary,
            "status.json": {"state": "completed"},
        }
        make_run(root, f"det-s{seed}", {k: json.dumps(v) for k, v in files.items()})
    assert main(["runs", str(root), "--group", "--json"]) == 0
    (group,) = json.loads(capsys.readouterr().out)
    assert group["task"] == "detection" and group["seeds"] == [0, 1]
    assert group["map"] == {"mean": 42.0, "std": pytest.approx(2 * 2**0.5), "n": 2}
    assert group["best_map"]["mean"] == 43.0 and group["top1"]["n"] == 0
    assert main(["runs", str(root), "--group"]) == 0
    line = capsys.readouterr().out.splitlines()[1]
    assert "42.00 ± 2.83 mAP  43.00 ± 2.83 mAP" in line
