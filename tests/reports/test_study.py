"""The study report: one offline HTML page of runs (curves, configs and the commands that
train them again, the teacher's probe, the students' gap kept on disk), on the tiny runs
folder of tests/conftest.py."""

from __future__ import annotations

import html
import json
import re
import shlex
import shutil
from pathlib import Path

import pytest

from fcfd_viz.analysis.reports import gap as gap_mod
from fcfd_viz.cli import main
from fcfd_viz.errors import UserError
from fcfd_viz.reports.study import (
    StudyOptions,
    gap_kept,
    load_study,
    train_command,
)
from fcfd_viz.reports.study_page import study_report

CURVES_ONLY = StudyOptions(probe=False, gap=False)
# what the probe shows: channel sensitivity, Jacobian spectrum, one attribution scatter
# (grad_x_act) and every single perturbation (KL divergence)
PROBE_FIGURES = 4
GAP_FIGURES = 2  # appearance vs functional bars, mixed-path accuracy

pytestmark = pytest.mark.usefixtures("one_thread_module")


def figures(page: str) -> int:
    return page.count('class="plotly-graph-div"')


def external_scripts(page: str) -> list[str]:
    return re.findall(r"<script[^>]*\bsrc=[^>]*>", page)


def runs(root: Path, *names: str) -> list[Path]:
    return [root / "defaults" / n for n in names]


def test_page_holds_every_run_config_and_command_offline(runs_root):
    paths = runs(runs_root, "kd", "fcfd")
    page = study_report(paths, options=CURVES_ONLY, root=runs_root, out="x.html")
    study = load_study(paths, root=runs_root)
    # the teacher the students record joins the page, first
    assert [r.name for r in study.runs] == ["defaults/teacher", "defaults/kd", "defaults/fcfd"]
    assert study.runs[0].is_teacher and study.teacher == str(runs_root / "defaults/teacher")
    for run in study.runs:
        config = json.loads((run.path / "config.json").read_text())
        assert html.escape(json.dumps(config, indent=2, sort_keys=True), quote=False) in page
        assert html.escape(run.command, quote=False) in page
    assert f"fcfd train-teacher --config {study.runs[0].path / 'config.json'}" in page
    assert f"fcfd distill --config {paths[0] / 'config.json'} --out {paths[0]}-again" in page
    assert "fcfd report" in page and "--no-probe --no-gap --out x.html" in page
    assert figures(page) == 1 + 3  # accuracy of all runs, the losses of each
    assert external_scripts(page) == [] and page.count("<script") >= 4
    assert "Teacher probe" not in page and "Functional gap" not in page


def test_train_command_repeats_the_run(runs_root, tmp_path, capsys):
    # what the page says to run gives the same config.json and the same metrics
    for name in ("teacher", "kd"):
        src = runs_root / "defaults" / name
        config = json.loads((src / "config.json").read_text())
        argv = shlex.split(train_command(src, config))
        assert argv[:2] == ["fcfd", "train-teacher" if name == "teacher" else "distill"]
        out = tmp_path / name
        argv[argv.index("--out") + 1] = str(out)
        assert main([*argv[1:], "--no-progress", "--no-tensorboard"]) == 0, capsys.readouterr()
        again = json.loads((out / "config.json").read_text())
        assert again == config
        old, new = (
            [json.loads(line) for line in (d / "metrics.jsonl").read_text().splitlines()]
            for d in (src, out)
        )
        assert [r["loss"] for r in new] == pytest.approx([r["loss"] for r in old], rel=1e-3)


def test_a_distributed_run_is_repeated_under_torchrun():
    config = {"method": "kd", "teacher": "t", "distributed": {"world_size": 4}}
    assert train_command("runs/kd", config).startswith(
        "torchrun --nproc_per_node=4 -m fcfd_viz distill --config runs/kd/config.json"
    )


@pytest.mark.slow
def test_probe_and_gap_with_gaps_kept_on_disk(runs_root, tmp_path, monkeypatch):
    paths = runs(runs_root, "kd", "fcfd")
    options = StudyOptions(images=4, fit_epochs=1)
    cache = tmp_path / "cache"
    page = study_report(paths, options=options, root=runs_root, cache_dir=cache)
    assert figures(page) == 1 + 3 + PROBE_FIGURES + GAP_FIGURES and not external_scripts(page)
    teacher = runs_root / "defaults" / "teacher"
    assert f"fcfd probe {teacher} --stage 2 --images 4 --attribution grad_x_act" in page
    assert (
        f"fcfd gap --teacher {teacher} --student {paths[0]} --label kd --student {paths[1]} "
        "--label fcfd --fit-data full --fit-max-epochs 1 --bn eval"
    ) in page
    reading = re.search(r"<p>(With the teacher.*?)</p>", page).group(1)
    assert "smallest functional gap" in reading
    assert len(list(cache.glob("gap-*.json"))) == 2  # one per student, where the app keeps them
    study = load_study(paths, root=runs_root)
    assert gap_kept(study, options, cache) and not gap_kept(study, options, tmp_path)

    def no_fit(*args, **kwargs):
        raise AssertionError("a kept gap was fitted again")

    monkeypatch.setattr(gap_mod, "fitted_student", no_fit)
    again = study_report(paths, options=StudyOptions(probe=False, fit_epochs=1), cache_dir=cache)
    assert reading in again and figures(again) == 1 + 3 + GAP_FIGURES


def test_the_gap_section_carries_the_error_spectrum_when_asked(runs_root, tmp_path):
    paths = runs(runs_root, "kd", "fcfd")
    options = StudyOptions(probe=False, fit_epochs=1, spectrum=4)
    cache = tmp_path / "cache"
    page = study_report(paths, options=options, root=runs_root, cache_dir=cache)
    assert figures(page) == 1 + 3 + GAP_FIGURES + 2  # the share and the predictor figures
    assert "Error spectrum on 4 test images" in page and "Spearman with the measured KL" in page
    assert "--bn eval --spectrum 4" in page
    assert gap_kept(load_study(paths, root=runs_root), options, cache)
    plain = StudyOptions(probe=False, fit_epochs=1)  # kept apart from the plain gap
    assert not gap_kept(load_study(paths, root=runs_root), plain, cache)
    with pytest.raises(UserError, match="--spectrum"):
        StudyOptions(spectrum=0).validate()


def test_missing_teacher_and_students_are_said_on_the_page(runs_root):
    # ce records no teacher: neither probe nor gap, and the page says why
    page = study_report(runs(runs_root, "ce"))
    assert page.count("Not measured: the runs record no teacher") == 2 and figures(page) == 2
    teacher = runs_root / "defaults" / "teacher"
    page = study_report([teacher], teacher, StudyOptions(probe=False))
    assert "Not measured: no student runs beside the teacher." in page


def test_bad_runs_are_one_line_errors(runs_root, tmp_path):
    with pytest.raises(UserError, match="no such run directory"):
        load_study([tmp_path / "nope"])
    (tmp_path / "empty").mkdir()
    with pytest.raises(UserError, match="not a run directory"):
        load_study([tmp_path / "empty"])
    junk = tmp_path / "junk"
    shutil.copytree(runs_root / "defaults" / "kd", junk)
    (junk / "config.json").write_text("{not json")
    with pytest.raises(UserError, match="unreadable run"):
        load_study([junk])
    other = tmp_path / "other"
    shutil.copytree(runs_root / "defaults" / "kd", other)
    config = json.loads((other / "config.json").read_text())
    (other / "config.json").write_text(json.dumps({**config, "teacher": str(tmp_path / "t")}))
    with pytest.raises(UserError, match="different teachers"):
        load_study([runs_root / "defaults" / "kd", other])
    with pytest.raises(UserError, match="is not found from here; pass --teacher"):
        load_study([other], need_teacher=True)
    assert load_study([other]).teacher == str(tmp_path / "t")  # curves alone need none
    with pytest.raises(UserError, match="--images must be >= 1"):
        study_report([other], options=StudyOptions(images=0))


def test_detection_study_reports_map_and_the_per_level_gap(
    det_runs, runs_root, tmp_path, monkeypatch
):
    from fcfd_viz.detection import data as det_data

    monkeypatch.setattr(det_data, "TEST_CANVASES", 4)  # the gap measures on these
    monkeypatch.setattr(det_data, "TRAIN_CANVASES", 8)  # the kd student's connectors fit on these
    det = det_runs / "det"
    out = tmp_path / "det.html"
    argv = ["report", str(det / "kd"), str(det / "fcfd"), "--fit-max-epochs", "1"]
    assert main([*argv, "--out", str(out), "--no-progress"]) == 0
    page = out.read_text()
    body = re.sub(r"<script.*?</script>", "", page, flags=re.S)
    text = html.unescape(re.sub(r"<[^>]+>", " ", body))
    assert "best_map" in text and "best_top1" not in text  # the runs table speaks mAP
    assert "Test mAP" in page  # the curves: mAP per epoch, not an empty top-1 axis
    assert "the probe takes classifiers" in text
    assert "4 test images of digit-boxes" in text and "smallest functional gap" in text
    assert "fcfd gap --teacher" in text and "--label kd" in text
    # curves, one loss figure per run (teacher, kd, fcfd), the per-level gap bars
    assert figures(page) == 1 + 3 + 1

    with pytest.raises(UserError, match="mix detection and classification"):
        load_study([det / "kd", *runs(runs_root, "kd")])
