"""The Perturbation page under streamlit.testing.v1.AppTest, on the tiny runs folder: eps
redraws from the prepared explorer, a new image prepares again, other models cut at a layer."""

from __future__ import annotations

import time

from streamlit.testing.v1 import AppTest
from test_app import APP, rerun, specs
from test_state_plugins import fresh_state

PERTURB = "pages/5_Perturbation.py"


def counting_prepare(monkeypatch) -> list:
    """Count the real ``PerturbationExplorer.prepare`` calls (the work eps must not redo)."""
    from fcfd_viz.analysis.probe.perturb import PerturbationExplorer

    calls, prepare = [], PerturbationExplorer.prepare

    def counted(self, image):
        calls.append(tuple(image.shape))
        return prepare(self, image)

    monkeypatch.setattr(PerturbationExplorer, "prepare", counted)
    return calls


def open_perturbation(**session) -> AppTest:
    at = AppTest.from_file(APP, default_timeout=240)
    for key, value in session.items():
        at.session_state[key] = value
    at.run()
    return rerun(at.switch_page(PERTURB))


def kls(at: AppTest) -> list[str]:
    return [m.value for m in at.metric[:3]]


def test_eps_redraws_the_figures_without_preparing_again(app_env, monkeypatch):
    calls = counting_prepare(monkeypatch)
    at = open_perturbation(pt_index=11)  # an image no other test prepares
    assert at.title[0].value == "Perturbation explorer"
    assert at.selectbox(key="pt_ckpt").value.startswith("defaults/teacher")
    assert len(calls) == 1 and len(at.get("image")) == 1  # the thumbnail
    before, kl_before = specs(at), kls(at)
    assert len(before) == 3 and all(float(v) > 0 for v in kl_before)
    at.slider(key="pt_eps").set_value(0.5)
    t0 = time.perf_counter()
    after = specs(rerun(at))
    print(f"eps redraw (AppTest rerun): {time.perf_counter() - t0:.3f} s")
    assert len(calls) == 1  # the directions were cached: one forward pass of the rest only
    assert all(a != b for a, b in zip(before, after)) and kls(at) != kl_before
    assert [float(v) for v in kls(at)] > [0.0] * 3
    at.slider(key="pt_eps").set_value(0.0)  # no perturbation: no change at all
    assert kls(rerun(at)) == ["0", "0", "0"] and len(calls) == 1
    at.number_input(key="pt_index").set_value(12)  # another image: prepared once more
    assert len(specs(rerun(at))) == 3 and len(calls) == 2


def test_stage_choice_changes_the_cut(app_env):
    at = open_perturbation(pt_index=3)
    before = specs(at)
    at.selectbox(key="pt_stage").set_value(1)
    after = specs(rerun(at))
    assert len(after) == 3 and after[1] != before[1]  # other maps: another feature shape
    assert any("Fisher sensitivity" in c.value for c in at.caption)


def test_a_registered_model_is_cut_at_a_layer_on_digits(model_module, monkeypatch, tmp_path):
    model_module("user_pt_nets", "user_pt_tiny")
    monkeypatch.setenv("FCFD_IMPORT", "user_pt_nets")
    monkeypatch.setenv("FCFD_RUNS_DIR", str(tmp_path / "runs"))
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "no_hub"))
    fresh_state(monkeypatch)
    at = open_perturbation()
    assert at.selectbox(key="pt_ckpt").options == ["user_pt_tiny (your model, random init)"]
    assert at.number_input(key="pt_index").max == 359  # the digits test split
    assert any("digits test images" in c.value for c in at.caption) and len(specs(at)) == 3
    at.selectbox(key="pt_layer").set_value("stages.0")
    assert len(specs(rerun(at))) == 3


def test_an_empty_folder_says_what_to_do(monkeypatch, tmp_path):
    monkeypatch.setenv("FCFD_RUNS_DIR", str(tmp_path / "empty"))
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "no_hub"))
    at = open_perturbation()
    assert "No checkpoints" in at.info[0].value and not specs(at)
