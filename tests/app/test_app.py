"""Every page of the dashboard under streamlit.testing.v1.AppTest, on a tiny runs folder."""

from __future__ import annotations

from pathlib import Path

import pytest
from helpers import APP, DETECTION, DISTILL, GAP, RUNS, SENS, open_page, rerun, specs
from streamlit.testing.v1 import AppTest

from fcfd_viz.jobs import control as jobs
from fcfd_viz.jobs.records import job_record


def test_home_shows_the_default_runs(app_env):
    at = open_page()
    assert at.title[0].value == "fcfd-viz"
    assert len(at.metric) == 4 and len(specs(at)) == 1
    assert at.text_input(key="runs_dir").value == str(app_env)


def test_home_offers_to_build_defaults_in_an_empty_folder(monkeypatch, tmp_path):
    from fcfd_viz.jobs import demo_build

    calls = []
    monkeypatch.setenv("FCFD_RUNS_DIR", str(tmp_path / "empty"))
    monkeypatch.setattr(demo_build, "start_defaults", lambda root, demo: calls.append(root) or True)
    at = open_page()
    assert "No default runs" in at.warning[0].value
    at.button[0].click()
    rerun(at)
    assert calls == [tmp_path / "empty"]
    for page in (SENS, GAP, DETECTION, DISTILL, RUNS):  # every page copes with an empty folder
        at.switch_page(page)
        rerun(at)


def test_sensitivity_widgets_change_the_figures(app_env):
    at = open_page(SENS)
    assert at.title[0].value == "Sensitivity"
    before = specs(at)
    assert len(before) == 4  # sensitivity bars, Jacobian spectrum, attribution, maps
    at.selectbox(key="sens_stage").set_value(1)
    after = specs(rerun(at))
    assert len(after) == 4 and all(a != b for a, b in zip(before, after))
    at.number_input(key="sens_eps").set_value(0.2)
    assert specs(rerun(at))[0] != after[0]
    assert any("Spearman" in c.value for c in at.caption)
    at.number_input(key="sens_eps").set_value(0.0)  # out of range: an error, no crash
    assert "eps must be in (0, 1]" in rerun(at).error[0].value
    at.number_input(key="sens_eps").set_value(0.05)
    at.multiselect(key="sens_dirs").set_value(["channel"])
    at.selectbox(key="sens_mode").set_value("fisher")
    assert not rerun(at).error and len(specs(at)) == 3  # no Jacobian: its chart is gone


def test_sensitivity_eps_change_recomputes_only_the_probe(app_env, monkeypatch):
    # the spectrum and the attribution depend on neither eps nor the mode: cached apart
    from fcfd_viz.analysis.probe import attribution
    from fcfd_viz.analysis.reports import probe

    calls = {"probe": 0, "spectrum": 0, "attribution": 0}

    def counting(name, fn):
        def wrapper(*args, **kwargs):
            calls[name] += 1
            return fn(*args, **kwargs)

        return wrapper

    monkeypatch.setattr(probe, "probe_report", counting("probe", probe.probe_report))
    monkeypatch.setattr(probe, "jacobian_spectrum", counting("spectrum", probe.jacobian_spectrum))
    compute = counting("attribution", attribution.Attribution.compute)
    monkeypatch.setattr(attribution.Attribution, "compute", compute)
    at = open_page(SENS)
    at.number_input(key="sens_eps").set_value(0.0731)  # a value no other test probes
    before = dict(calls)
    assert len(specs(rerun(at))) == 4
    assert calls == {**before, "probe": before["probe"] + 1}


def test_sensitivity_reports_a_corrupt_checkpoint(runs_copy, monkeypatch):
    monkeypatch.setenv("FCFD_RUNS_DIR", str(runs_copy))
    (runs_copy / "defaults" / "ce" / "best.pt").write_bytes(b"not a checkpoint")
    at = open_page(SENS)
    labels = at.selectbox(key="sens_ckpt").options
    at.selectbox(key="sens_ckpt").set_value(next(s for s in labels if s.startswith("defaults/ce ")))
    assert "unreadable" in rerun(at).error[0].value
    at.selectbox(key="sens_ckpt").set_value(next(s for s in labels if "teacher" in s))
    assert not rerun(at).error and specs(at)  # the page recovers


def test_functional_gap_computes_and_follows_the_widgets(runs_copy, monkeypatch):
    monkeypatch.setenv("FCFD_RUNS_DIR", str(runs_copy))
    at = open_page(GAP)
    assert at.title[0].value == "Functional gap" and not specs(at)  # waits for Compute
    fcfd = next(
        s for s in at.multiselect(key="g_students").options if s.startswith("defaults/fcfd ")
    )
    at.multiselect(key="g_students").set_value([fcfd])
    at.select_slider(key="g_fit").set_value(10)
    at.button(key="g_go").click()
    before = specs(rerun(at))
    # one seed: the plain gap bars, the mixed paths and the one-picture view; the reading
    # warns that one seed per method cannot tell a difference from noise
    assert len(before) == 3 and "functional gap" in at.info[0].value
    assert "One seed per method" in at.info[0].value
    at.radio(key="g_bn").set_value("batch")
    after = specs(rerun(at))
    assert all(a != b for a, b in zip(before[:2], after[:2]))  # the picture is eval-mode
    assert list((runs_copy / ".cache").glob("gap-*.json"))  # kept for the next launch


def test_functional_gap_rejects_a_student_of_another_dataset(runs_copy, monkeypatch):
    import shutil

    import torch

    from fcfd_viz.runs.checkpoints import load_checkpoint, save_checkpoint

    monkeypatch.setenv("FCFD_RUNS_DIR", str(runs_copy))
    other = runs_copy / "cifar-student"
    shutil.copytree(runs_copy / "defaults" / "ce", other)
    ckpt = load_checkpoint(other / "best.pt")
    ckpt.update(dataset="cifar10", input_shape=[3, 32, 32])
    save_checkpoint(other / "best.pt", {k: v for k, v in ckpt.items() if k != "path"})
    assert torch.is_tensor(ckpt["state_dict"]["head.fc.weight"])
    at = open_page(GAP)
    label = next(s for s in at.multiselect(key="g_students").options if "cifar-student" in s)
    at.multiselect(key="g_students").set_value([label])
    at.button(key="g_go").click()
    assert "same dataset" in rerun(at).error[0].value


def test_runs_page_compares_and_deletes(runs_copy, monkeypatch):
    monkeypatch.setenv("FCFD_RUNS_DIR", str(runs_copy))
    at = open_page(RUNS)
    assert at.title[0].value == "Runs" and len(at.dataframe) == 1
    before = specs(at)
    at.multiselect(key="r_cmp").set_value(["defaults/kd"])
    mid = specs(rerun(at))
    assert mid[0] != before[0] and mid[1] != before[1]
    at.selectbox(key="r_metric").set_value("train_top1")
    assert specs(rerun(at))[1] != mid[1]
    at.selectbox(key="r_del").set_value("defaults/ce")
    assert at.button(key="r_delete").disabled  # until the deletion is confirmed
    at.checkbox(key="r_sure").check()
    rerun(at).button(key="r_delete").click()
    rerun(at)
    assert not (runs_copy / "defaults" / "ce").exists()
    assert "deleted defaults/ce" in at.success[0].value


@pytest.mark.slow
def test_runs_page_offers_the_report_of_the_picked_runs(runs_copy, monkeypatch):
    monkeypatch.setenv("FCFD_RUNS_DIR", str(runs_copy))
    monkeypatch.setenv("FCFD_GAP_FIT_EPOCHS", "10")
    at = open_page(RUNS)
    assert at.download_button(key="r_report").label == "Download report (HTML)"
    assert at.checkbox(key="r_rep_probe").value  # the teacher is known
    assert not at.checkbox(key="r_rep_gap").value  # no gap kept yet: off, it would fit
    assert any("fcfd report" in c.value and "--no-gap" in c.value for c in at.caption)
    at.multiselect(key="r_cmp").set_value([])
    assert not rerun(at).download_button and "Pick runs" in at.info[0].value
    # a gap the Functional gap page measured is what the report reuses
    at.switch_page(GAP).run()
    kd = next(s for s in at.multiselect(key="g_students").options if s.startswith("defaults/kd "))
    at.multiselect(key="g_students").set_value([kd])
    at.button(key="g_go").click()
    assert len(specs(rerun(at))) == 3  # gap bars, mixed paths, one picture
    at.switch_page(RUNS).run()
    at.multiselect(key="r_cmp").set_value(["defaults/kd"])
    assert rerun(at).checkbox(key="r_rep_gap").value and at.download_button(key="r_report")
    assert not any("--no-gap" in c.value for c in at.caption)


def launch_from_page(name: str, method: str = "kd", epochs: int = 1) -> AppTest:
    """A fresh session (a browser tab) on the Distill page that submits the launch form."""
    at = open_page(DISTILL)
    at.selectbox(key="d_method").set_value(method)
    at.number_input(key="d_epochs").set_value(epochs)
    at.text_input(key="d_name").input(name)
    next(b for b in at.button if b.label == "Launch").click()
    return rerun(at)


def test_distill_launches_a_background_run(runs_copy, monkeypatch):
    monkeypatch.setenv("FCFD_RUNS_DIR", str(runs_copy))
    monkeypatch.setenv("FCFD_MAX_JOBS", "1")
    at = launch_from_page("smoke")
    assert at.title[0].value == "Distill"
    assert "started smoke" in at.success[0].value, [e.value for e in at.error]
    pid = jobs.get_job(runs_copy, "smoke").pid
    cmd = job_record(runs_copy, "smoke")["cmd"]  # every knob of kd, from the page's inputs
    assert all(f in cmd for f in ("--ce-weight", "--temperature", "--kd-weight")), cmd
    tab2 = launch_from_page("smoke")  # a second tab, same run: nothing new starts
    assert "exists already" in tab2.info[0].value
    if jobs.get_job(runs_copy, "smoke").active:  # a third run while it trains: refused
        assert "limit 1" in launch_from_page("other").error[0].value
    job = jobs.wait(runs_copy, "smoke", timeout=240)
    assert job.state == "completed" and job.pid == pid, (runs_copy / ".jobs/smoke.log").read_text()
    assert (runs_copy / "smoke" / "summary.json").exists()
    at.multiselect(key="d_cmp").set_value(["smoke"])
    assert len(specs(rerun(at))) == 2


def test_distill_launches_any_preset_student_and_device(runs_copy, monkeypatch):
    monkeypatch.setenv("FCFD_RUNS_DIR", str(runs_copy))
    monkeypatch.delenv("FCFD_DATA_DIR", raising=False)
    at = open_page(DISTILL)
    at.selectbox(key="d_preset").set_value("resnet56-resnet20")  # CIFAR-100, no data here
    rerun(at)
    assert "cifar100 not found" in at.warning[0].value
    assert next(b for b in at.button if b.label == "Launch").disabled
    warmup = "d_knob_fcfd_feat_warmup_epochs"
    assert at.number_input(key=warmup).value == 20  # the preset's knobs are the defaults
    at.selectbox(key="d_preset").set_value("digits")
    assert rerun(at).number_input(key=warmup).value == 5 and not at.warning
    at.selectbox(key="d_preset").set_value("digits-hard")
    at.selectbox(key="d_method").set_value("kd")
    rerun(at)
    assert "defaults/teacher" in at.selectbox(key="d_teacher").value  # no resnet8x4 run
    at.selectbox(key="d_student").set_value("resnet8_w025")
    at.selectbox(key="d_device").set_value("cpu")
    at.number_input(key="d_epochs").set_value(1)
    at.text_input(key="d_name").input("hard")
    next(b for b in at.button if b.label == "Launch").click()
    assert "started hard" in rerun(at).success[0].value, [e.value for e in at.error]
    cmd = job_record(runs_copy, "hard")["cmd"]
    for flag, value in [
        ("--preset", "digits-hard"),
        ("--student", "resnet8_w025"),
        ("--device", "cpu"),
        ("--epochs", "1"),
    ]:
        assert cmd[cmd.index(flag) + 1] == value, cmd
    job = jobs.wait(runs_copy, "hard", timeout=240)
    assert job.state == "completed", (runs_copy / ".jobs/hard.log").read_text()
    assert job.student == "resnet8_w025"


@pytest.mark.parametrize("page", [SENS, GAP, DETECTION, DISTILL, RUNS])
def test_every_page_loads(app_env, page):
    at = open_page(page)
    assert at.title and not at.error


def test_pages_use_the_library_not_the_cli():
    for page in Path(APP).parent.rglob("*.py"):
        assert "fcfd_viz.cli" not in page.read_text(), page.name


def test_no_app_module_reaches_into_another_modules_privates():
    # a cached function another module calls is public (state.cached_model, not _model)
    import re

    app = Path(APP).parent
    names = {f.stem for f in app.glob("*.py")}
    for f in app.rglob("*.py"):
        used = re.findall(r"\b(\w+)\._[a-z]\w*", f.read_text())
        assert not [m for m in used if m in names], (f.name, used)


def test_home_page_modules_do_not_import_torch():
    # the Home page must render within seconds of `make app`: importing torch alone takes
    # 2-3 s on 2 cores, so what app/main.py and app/state.py import at the top stays torch-free
    import subprocess
    import sys

    code = (
        "import sys; sys.path.insert(0, 'app'); import state, models_state, gap_state; "
        "from fcfd_viz.experiments import demo; from fcfd_viz.jobs import control, demo_build; "
        "from fcfd_viz.viz import figures; "
        "print(sorted(m for m in ('torch', 'numpy') if m in sys.modules))"
    )
    root = Path(APP).parents[1]
    out = subprocess.run([sys.executable, "-c", code], cwd=root, capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "[]"
