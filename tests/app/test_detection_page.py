"""The Detection page under streamlit.testing.v1.AppTest, on tiny detection runs: the info
box without runs, boxes of teacher and students, the per-level gap computed once and kept;
the Runs page's mAP columns."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from helpers import open_page, rerun, specs

DET, RUNS = "pages/6_Detection.py", "pages/4_Runs.py"


@pytest.fixture
def det_copy(det_runs: Path, tmp_path: Path, monkeypatch) -> Path:
    """A private copy of the tiny detection runs (the page writes RUNS/.cache), its students
    recording the copy's teacher; the app pointed at it."""
    dst = tmp_path / "runs"
    shutil.copytree(det_runs, dst, ignore=shutil.ignore_patterns(".jobs", ".lock"))
    for config in dst.glob("det/*/config.json"):
        d = json.loads(config.read_text())
        if d.get("teacher"):
            d["teacher"] = d["teacher"].replace(str(det_runs), str(dst))
            config.write_text(json.dumps(d, indent=2, sort_keys=True))
    monkeypatch.setenv("FCFD_RUNS_DIR", str(dst))
    return dst


def test_without_detection_runs_the_page_says_how_to_train_them(tmp_path, monkeypatch):
    monkeypatch.setenv("FCFD_RUNS_DIR", str(tmp_path / "empty"))
    at = open_page(DET)
    text = at.info[0].value
    assert "fcfd train-teacher --task detection --preset det-digits --out" in text
    assert "fcfd distill --task detection --preset det-digits --method fcfd --teacher" in text


@pytest.mark.slow
def test_boxes_and_the_gap_computed_once_then_kept(det_copy: Path):
    at = open_page(DET)
    assert at.title[0].value == "Detection"
    assert at.selectbox(key="det_teacher").value.startswith("det/teacher ")
    assert sorted(s.split()[0] for s in at.multiselect(key="det_students").value) == [
        "det/fcfd",
        "det/kd",
    ]
    (boxes,) = specs(at)  # the boxes; the gap waits for Compute
    assert "ground truth" in boxes and '"kd' in boxes and '"fcfd' in boxes
    assert any("Press Compute" in i.value for i in at.info)
    at.slider(key="det_thr").set_value(0.0)
    assert specs(rerun(at))[0] != boxes  # every proposal's box is drawn now
    at.number_input(key="det_index").set_value(3)
    assert len(specs(rerun(at))) == 1

    at.select_slider(key="det_gap_test").set_value(8)
    at.select_slider(key="det_gap_fit").set_value(16)
    at.select_slider(key="det_gap_epochs").set_value(2)
    rerun(at).button(key="det_gap_go").click()
    charts = specs(rerun(at))
    assert len(charts) == 2 and "functional gap (KL, teacher box head)" in charts[1]
    assert "kd (fitted)" in charts[1] and "fcfd (own bridges)" in charts[1]
    assert any("smallest functional gap" in i.value for i in at.info)
    assert len(list((det_copy / ".cache").glob("detgap-*.json"))) == 1

    again = open_page(DET)  # a new session: the kept report shows without Compute
    again.select_slider(key="det_gap_test").set_value(8)
    again.select_slider(key="det_gap_fit").set_value(16)
    again.select_slider(key="det_gap_epochs").set_value(2)
    assert len(specs(rerun(again))) == 2 and again.button(key="det_gap_go").disabled


def test_runs_page_shows_map_for_detection_runs(det_copy: Path):
    at = open_page(RUNS)
    table = at.dataframe[0].value
    assert {"mAP", "best_mAP"} <= set(table.columns)
    teacher = table[table["run"] == "det/teacher"].iloc[0]
    summary = json.loads((det_copy / "det" / "teacher" / "summary.json").read_text())
    assert teacher["mAP"] == pytest.approx(summary["map"]) and teacher["top1"] is None
    # Compare picks the detection runs: their test mAP is drawn, and the report offers no
    # probe (it takes classifiers)
    assert set(at.multiselect(key="r_cmp").value) == {"det/teacher", "det/kd", "det/fcfd"}
    charts = [json.loads(s) for s in specs(at)]
    acc = next(c for c in charts if c["layout"]["title"]["text"] == "Test mAP")
    assert "kd: det/kd test mAP" in [t["name"] for t in acc["data"]]
    probe = at.checkbox(key="r_rep_probe")
    assert probe.disabled and not probe.value and at.download_button(key="r_report")
