"""The gap report: inputs from checkpoints, one report (the CLI) or per-student reports
merged (the app), and the round trip of its dict."""

from __future__ import annotations

import json

import pytest
import torch

from fcfd_viz import distill, models
from fcfd_viz.analysis import GapReport, gap_inputs, gap_report, merge_gap_reports
from fcfd_viz.errors import UserError
from fcfd_viz.runs.checkpoints import save_checkpoint

SHAPE = [3, 16, 16]
pytestmark = pytest.mark.usefixtures("one_thread_module")


@pytest.fixture(scope="module")
def ckpts(tmp_path_factory):
    """A teacher and two FCFD students (their own bridges: nothing to fit) on digits."""
    root = tmp_path_factory.mktemp("gap-report")
    torch.manual_seed(0)
    teacher = models.create("resnet8", num_classes=10).eval()
    paths = {"teacher": root / "teacher.pt"}
    state = {"model": teacher.spec(), "state_dict": teacher.state_dict()}
    save_checkpoint(paths["teacher"], {**state, "dataset": "digits", "input_shape": SHAPE})
    for seed in (0, 1):
        torch.manual_seed(seed)
        student = models.create("resnet8", num_classes=10)
        d = distill.create("fcfd", student, teacher, input_shape=SHAPE)
        paths[seed] = root / f"fcfd{seed}.pt"
        extra = {"dataset": "digits", "input_shape": SHAPE, "seed": seed}
        save_checkpoint(paths[seed], {**d.checkpoint_state(), **extra, "teacher": "x"})
    return paths


def test_one_report_and_merged_reports_agree(ckpts):
    both = gap_inputs([ckpts[0], ckpts[1]], ckpts["teacher"], ["a", "b"])
    assert both.gap.methods == {"a": "fcfd", "b": "fcfd"} and both.to("cpu") is both
    joint = gap_report(both, bn="eval", fit=False)
    assert list(joint.result.entries) == ["a (own bridges)", "b (own bridges)"]
    assert {e.method for e in joint.result.entries.values()} == {"fcfd"}
    assert joint.inputs["b"] == {
        "path": str(ckpts[1]),
        "method": "fcfd",
        "dataset": "digits",
        "seed": 1,
    }
    apart = [
        gap_report(gap_inputs([ckpts[s]], ckpts["teacher"], [lab]), bn="eval", fit=False)
        for s, lab in ((0, "a"), (1, "b"))
    ]
    merged = merge_gap_reports(apart)
    assert merged.result.seconds == pytest.approx(sum(r.result.seconds for r in apart))
    strip = lambda d: {k: v for k, v in d.items() if k != "seconds"}  # noqa: E731
    assert strip(merged.to_dict()) == strip(joint.to_dict())
    assert merged.reading == joint.reading and "smallest functional gap" in merged.reading
    for bn, size in (("batch", 256), ("eval", 100)):
        inputs = gap_inputs([ckpts[1]], ckpts["teacher"], ["b"], batch_size=size)
        other = gap_report(inputs, bn, fit=False)
        with pytest.raises(UserError, match="cannot be merged"):
            merge_gap_reports([apart[0], other])
    with pytest.raises(UserError, match="no gap reports"):
        merge_gap_reports([])


def test_report_round_trip_and_cli_keys(ckpts):
    report = gap_report(gap_inputs([ckpts[0]], ckpts["teacher"]), bn="batch", fit=False)
    d = json.loads(json.dumps(report.to_dict(), allow_nan=False))
    for key in ("bn", "bn_label", "stages", "num_images", "batch_size", "teacher_accuracy"):
        assert key in d, key
    for key in ("seconds", "students", "teacher", "dataset", "input_shape", "reading", "inputs"):
        assert key in d, key
    assert d["teacher"] == str(ckpts["teacher"]) and d["input_shape"] == SHAPE
    again = GapReport.from_dict(d)
    assert again.to_dict() == report.to_dict() and again.reading == report.reading
    entry = again.result.entries["fcfd (own bridges)"]
    assert torch.is_tensor(entry.functional) and entry.functional.dtype == torch.float64


def test_bad_inputs(ckpts):
    with pytest.raises(UserError, match="batch-size"):
        gap_inputs([ckpts[0]], ckpts["teacher"], batch_size=0)
    with pytest.raises(UserError, match="fit data"):
        gap_inputs([ckpts[0]], ckpts["teacher"], fit_data="half")
