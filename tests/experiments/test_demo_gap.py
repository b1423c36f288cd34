"""What `fcfd defaults` computes ahead for the Functional gap page (fcfd_viz.experiments.demo_gap);
the computation itself runs once for the app tests (tests/app/conftest.py ``gap_runs``)."""

from __future__ import annotations

from fcfd_viz.experiments import demo_gap as defaults_gap
from fcfd_viz.experiments.demo_gap import FIT_BUDGETS, FIT_EPOCHS, default_gap_students, fit_epochs


def test_students_are_labelled_as_the_page_labels_them(tmp_path):
    students = default_gap_students(tmp_path)
    # three seeds per method: the page's labels name the run ("method: name")
    assert list(students)[:3] == ["ce: defaults/ce", "kd: defaults/kd", "fcfd: defaults/fcfd"]
    assert len(students) == 9 and students["kd: defaults/kd-s2"] == tmp_path / "defaults/kd-s2"


def test_fit_budget_is_the_pages_default(monkeypatch):
    monkeypatch.delenv("FCFD_GAP_FIT_EPOCHS", raising=False)
    assert fit_epochs() == FIT_EPOCHS in FIT_BUDGETS
    monkeypatch.setenv("FCFD_GAP_FIT_EPOCHS", "12")
    assert fit_epochs() == 10  # the nearest budget the page's slider offers
    monkeypatch.setenv("FCFD_GAP_FIT_EPOCHS", "many")
    assert fit_epochs() == FIT_EPOCHS


def test_no_progress_is_not_running(tmp_path):
    assert defaults_gap.default_gap_progress(tmp_path) is None
    assert not defaults_gap.default_gap_running(tmp_path)
