"""The Sensitivity page probes networks from outside the project's runs: pretrained
torchvision models whose weights are in the hub cache, the user's registered architectures
(built fresh) and imported teachers; unstaged ones are cut after a layer picked by name."""

from __future__ import annotations

import torch
from streamlit.testing.v1 import AppTest
from test_app import APP, SENS, rerun, specs
from test_state_plugins import fresh_state

from fcfd_viz.models import crd, sources


def small_page() -> AppTest:
    """The Sensitivity page probing 2 images in the channel family only (set before its
    first run, which already probes)."""
    at = AppTest.from_file(APP, default_timeout=240)
    at.session_state["sens_n"] = 2
    at.session_state["sens_dirs"] = ["channel"]
    at.run()
    return rerun(at.switch_page(SENS))


def pick(at, word: str):
    labels = at.selectbox(key="sens_ckpt").options
    at.selectbox(key="sens_ckpt").set_value(next(s for s in labels if word in s))
    return rerun(at)


def test_cached_pretrained_weights_are_listed_and_probed_at_a_layer(
    fake_hub, monkeypatch, tmp_path
):
    monkeypatch.setenv("FCFD_RUNS_DIR", str(tmp_path / "runs"))  # no runs at all
    assert sources.pretrained_in_cache() == [("tv_mobilenet_v3_small", "IMAGENET1K_V1")]
    at = small_page()
    assert at.selectbox(key="sens_ckpt").options == [
        "tv_mobilenet_v3_small · IMAGENET1K_V1 (cached)"
    ]
    assert at.selectbox(key="sens_layer").value == "features.6"  # a mid-depth block
    at.selectbox(key="sens_layer").set_value("features.3")
    assert len(specs(rerun(at))) == 3  # channel sensitivities, attribution, feature maps
    assert any("digits test images" in c.value and "224x224" in c.value for c in at.caption)


def test_a_registered_model_of_the_user_is_offered_built_fresh(model_module, monkeypatch, tmp_path):
    model_module("user_sens_nets", "user_sens_tiny")
    monkeypatch.setenv("FCFD_IMPORT", "user_sens_nets")
    monkeypatch.setenv("FCFD_RUNS_DIR", str(tmp_path / "runs"))
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "no_hub"))
    fresh_state(monkeypatch)
    at = small_page()
    assert at.selectbox(key="sens_ckpt").options == ["user_sens_tiny (your model, random init)"]
    assert "random init" in rerun(at).info[0].value and len(specs(at)) == 3


def test_a_missing_image_folder_is_an_error_line(model_module, monkeypatch, tmp_path):
    model_module("user_sens_nets2", "user_sens_tiny2")
    monkeypatch.setenv("FCFD_IMPORT", "user_sens_nets2")
    monkeypatch.setenv("FCFD_RUNS_DIR", str(tmp_path / "runs"))
    fresh_state(monkeypatch)
    at = small_page()
    at.text_input(key="sens_folder").set_value(str(tmp_path / "nowhere"))
    assert "image folder" in rerun(at).error[0].value and not specs(at)


def test_an_imported_teacher_run_is_probed_by_stage(monkeypatch, tmp_path):
    from fcfd_viz import models
    from fcfd_viz.weights.interop import import_teacher

    torch.manual_seed(0)
    net = models.create("resnet8", num_classes=10)
    torch.save({"model": crd.to_crd(net)}, tmp_path / "t.pth")
    import_teacher(
        tmp_path / "t.pth", "resnet8", tmp_path / "runs" / "imported", "digits", device="cpu"
    )
    assert not (tmp_path / "runs" / "imported" / "last.pt").exists()
    monkeypatch.setenv("FCFD_RUNS_DIR", str(tmp_path / "runs"))
    at = small_page()
    pick(at, "imported")
    at.selectbox(key="sens_stage").set_value(1)
    assert len(specs(rerun(at))) == 3
    assert any("test images of the run's dataset" in c.value for c in at.caption)
