"""Method knobs are read from the configs (issue #12): one function lists them, the configs
check them, and a method registered here, with knobs of its own, reaches ``fcfd distill
--help``, a real run and the Distill page with no other edit."""

from __future__ import annotations

import dataclasses
import json
import math
from dataclasses import dataclass
from pathlib import Path

import pytest
import torch.nn.functional as F

from fcfd_viz import distill
from fcfd_viz.cli import main
from fcfd_viz.distill.base import Distiller, MethodConfig
from fcfd_viz.distill.knob import TYPES, knob
from fcfd_viz.distill.paths import MODES
from fcfd_viz.errors import UserError

pytestmark = pytest.mark.usefixtures("one_thread")

APP = str(Path(__file__).resolve().parents[2] / "app" / "main.py")
RUN = ["--student", "resnet8_w025", "--dataset", "digits", "--subset", "0.1", "--epochs", "1"]
FAST = ["--device", "cpu", "--no-progress"]


@dataclass
class ThrowawayConfig(MethodConfig):
    my_knob: int = knob(2, "how many times the cross-entropy counts", low=1)
    my_switch: bool = knob(False, "a switch nobody reads")
    my_mode: str = knob("a", "a mode nobody reads", choices=("a", "b"))


class Throwaway(Distiller):
    """CE scaled by ``my_knob``, under a loss name that says what the knob was."""

    method = "throwaway"
    Config = ThrowawayConfig
    needs_teacher = False

    def forward_train(self, images, labels):
        logits = self.student(images)
        ce = F.cross_entropy(logits, labels)
        return logits, {f"ce_x{self.cfg.my_knob}": self.cfg.my_knob * ce}


@pytest.fixture
def throwaway():
    distill.register(Throwaway)
    yield Throwaway
    distill.unregister(Throwaway.method)


def test_knobs_are_the_config_fields_with_their_declarations():
    for name, cls in distill.METHODS.items():
        fields = [f.name for f in dataclasses.fields(cls.Config)]
        ks = distill.knobs(name)
        assert [k.name for k in ks] == fields
        for k in ks:
            assert k.type in TYPES and k.help and name in k.methods
            assert k.default == getattr(cls.Config(), k.name)
    every = {k.name: k for k in distill.knobs()}
    assert every["ce_weight"].methods == tuple(distill.METHODS)
    assert every["temperature"].methods == ("kd", "dkd", "fcfd", "fcfd+dkd")
    assert every["hint_stage"].methods == ("fitnet",) and every["hint_stage"].low == -1
    assert every["paths"].choices == MODES and every["teacher_bn"].choices == ("frozen", "batch")
    assert every["num_paths"].type is int and every["num_paths"].low == 1
    assert every["temperature"].strict and every["temperature"].describe() == "float > 0"
    with pytest.raises(UserError, match="unknown method"):
        distill.knobs("kdd")


@pytest.mark.parametrize(
    "method, knobs, needle",
    [
        ("kd", {"temperature": 0}, "temperature must be a finite number > 0, got 0"),
        ("kd", {"kd_weight": math.nan}, "kd_weight must be a finite number >= 0"),
        ("fcfd", {"num_paths": 0}, "num_paths must be an integer >= 1, got 0"),
        ("fcfd", {"paths": "both"}, "paths must be one of bi, s2t, t2s, nomix"),
        ("fcfd+dkd", {"teacher_bn": "train"}, "teacher_bn must be one of frozen, batch"),
        ("dkd", {"warmup_epochs": 1.5}, "warmup_epochs must be an integer >= 0"),
        ("fitnet", {"hint_stage": -2}, "hint_stage must be an integer >= -1"),
        ("ce", {"ce_weight": -1.0}, "ce_weight must be a finite number >= 0"),
    ],
)
def test_configs_check_their_knobs(method, knobs, needle):
    with pytest.raises(UserError) as e:
        distill.make_config(method, **knobs)
    assert needle in str(e.value)
    cfg = distill.METHODS[method].Config(**knobs)  # built by hand: validate says the same
    with pytest.raises(UserError, match=needle.split(" must")[0]):
        cfg.validate()


def test_register_refuses_what_cannot_be_a_knob():
    @dataclass
    class Plain(MethodConfig):
        extra: float = 1.0  # not declared with knob(): no help

    @dataclass
    class IntTemperature(MethodConfig):
        temperature: int = knob(4, "the same name as a float knob of kd")

    before = dict(distill.METHODS)
    for config, error in ((Plain, TypeError), (IntTemperature, TypeError)):
        cls = type("Bad", (Distiller,), {"method": "bad", "Config": config})
        with pytest.raises(error):
            distill.register(cls)
    with pytest.raises(ValueError, match="registered already"):
        distill.register(type("KD2", (Distiller,), {"method": "kd"}))
    assert distill.METHODS == before


def test_a_new_methods_knobs_show_in_the_cli_help(throwaway, capsys):
    @dataclass
    class ColdConfig(MethodConfig):
        temperature: float = knob(1.0, "a temperature with another default", low=0)

    distill.register(type("Cold", (Distiller,), {"method": "cold", "Config": ColdConfig}))
    try:
        with pytest.raises(SystemExit) as e:
            main(["distill", "--help"])
    finally:
        distill.unregister("cold")
    out = " ".join(capsys.readouterr().out.split())  # argparse wraps lines
    assert e.value.code == 0
    assert "knobs of throwaway: --my-knob INT how many times the cross-entropy counts" in out
    assert "(int >= 1, default 2)" in out
    assert "--my-switch, --no-my-switch a switch nobody reads (bool, default False)" in out
    assert "--my-mode {a,b} a mode nobody reads (default a)" in out
    assert "{ce,kd,fitnet,dkd,fcfd,fcfd+dkd,throwaway,cold}" in out
    assert "(float > 0, default per method)" in out  # kd's 4.0, cold's 1.0


def test_a_new_method_trains_from_the_cli_with_its_knobs(throwaway, tmp_path, capsys):
    out = tmp_path / "run"
    argv = ["distill", "--method", "throwaway", "--my-knob", "3", "--my-switch"]
    argv += ["--my-mode", "b", "--temperature", "2", *RUN, "--out", str(out), *FAST]
    assert main(argv) == 0
    err = capsys.readouterr().err
    assert "note: --temperature does not apply to throwaway; ignored" in err
    config = json.loads((out / "config.json").read_text())
    assert config["method"] == "throwaway"
    assert config["method_config"] == {
        "ce_weight": 1.0,
        "my_knob": 3,
        "my_switch": True,
        "my_mode": "b",
    }
    record = json.loads((out / "metrics.jsonl").read_text().splitlines()[0])
    assert set(record["losses"]) == {"ce_x3"}  # the knob reached the distiller
    assert json.loads((out / "summary.json").read_text())["method"] == "throwaway"


def test_a_new_methods_knob_out_of_bounds_is_one_line(throwaway, tmp_path, capsys):
    out = tmp_path / "run"
    code = main(["distill", "--method", "throwaway", "--my-knob", "0", *RUN, "--out", str(out)])
    lines = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and lines == ["fcfd distill: error: --my-knob must be an integer >= 1, got 0"]
    assert not out.exists()


def test_a_new_method_appears_on_the_distill_page_and_its_knobs_go_to_the_run(
    throwaway, tmp_path, monkeypatch
):
    from streamlit.testing.v1 import AppTest

    from fcfd_viz.jobs import control as jobs
    from fcfd_viz.jobs.records import job_record

    root = tmp_path / "runs"
    monkeypatch.setenv("FCFD_RUNS_DIR", str(root))
    at = AppTest.from_file(APP, default_timeout=120)
    at.run()
    at.switch_page("pages/3_Distill.py").run()
    at.selectbox(key="d_method").set_value("throwaway")
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    key = "d_knob_throwaway_"
    assert at.number_input(key=key + "my_knob").value == 2
    assert at.checkbox(key=key + "my_switch").value is False
    assert at.selectbox(key=key + "my_mode").options == ["a", "b"]
    assert not any(w.key.startswith("d_knob_fcfd") for w in at.number_input)
    at.number_input(key=key + "my_knob").set_value(3)
    at.checkbox(key=key + "my_switch").check()
    at.selectbox(key=key + "my_mode").set_value("b")
    at.text_input(key="d_name").input("tw")
    next(b for b in at.button if b.label == "Launch").click()
    at.run()
    assert "started tw" in at.success[0].value, [e.value for e in at.error]
    cmd = job_record(root, "tw")["cmd"]
    for flags in (["--my-knob", "3"], ["--my-switch"], ["--my-mode", "b"], ["--ce-weight", "1.0"]):
        i = cmd.index(flags[0])
        assert cmd[i : i + len(flags)] == flags, cmd
    # the background process is a fresh interpreter that never registered the method: it
    # refuses it and ends; the launch above is what this test is about
    assert not jobs.wait(root, "tw", timeout=120).active
