"""The Functional gap page over seeds: mean ± std bars, the paired reading, the one-picture
view, and fitted connectors kept on disk for the next launch (AppTest, real tiny runs)."""

from __future__ import annotations

import json

import pytest
from helpers import GAP, open_page, rerun, specs

pytestmark = pytest.mark.slow


def test_students_of_several_seeds_show_spread_and_a_paired_reading(runs_copy, monkeypatch):
    monkeypatch.setenv("FCFD_RUNS_DIR", str(runs_copy))
    at = open_page(GAP)
    options = at.multiselect(key="g_students").options
    wanted = ("defaults/kd ", "defaults/kd-s1 ", "defaults/fcfd ", "defaults/fcfd-s1 ")
    picked = [o for o in options if o.startswith(wanted)]
    assert len(picked) == 4
    at.multiselect(key="g_students").set_value(picked)
    at.select_slider(key="g_fit").set_value(10)
    at.button(key="g_go").click()
    rerun(at)
    verdict = [*at.success, *at.warning]
    assert len(verdict) == 1 and "Paired by seed (2 seeds" in verdict[0].value
    charts = specs(at)
    assert len(charts) == 4  # seed bars, paired lines, mixed paths, one picture
    bars = json.loads(charts[0])
    assert "mean ± std over 2 seeds" in bars["layout"]["title"]["text"]
    assert all(t["error_y"]["visible"] for t in bars["data"])
    assert "fcfd (own bridges)" not in charts[0]
    picture = charts[3]
    at.number_input(key="g_img").set_value(7)
    assert specs(rerun(at))[3] != picture  # another image, another picture
    assert at.selectbox(key="g_img_seed").options == ["0", "1"]
    at.toggle(key="g_own").set_value(True)
    names = [t["name"] for t in json.loads(specs(rerun(at))[0])["data"]]
    assert any(n.startswith("fcfd (own bridges)") for n in names)
    assert any("eval-mode teacher" in c.value for c in at.caption)  # why they look bad
    # the connectors were saved: a new session (no memory cache) reads them instead of fitting
    assert len(list((runs_copy / ".cache").glob("connectors-*.pt"))) == 4


def test_the_default_students_gap_opens_without_fitting(gap_runs, monkeypatch):
    """After `fcfd defaults` (runs + default gap), the page shows all nine default students
    over three seeds at once: no Compute, no fit (every report comes from RUNS/.cache)."""
    monkeypatch.setenv("FCFD_RUNS_DIR", str(gap_runs))
    monkeypatch.setenv("FCFD_GAP_FIT_EPOCHS", "10")
    kept = sorted(p.stat().st_mtime_ns for p in (gap_runs / ".cache").glob("connectors-*.pt"))
    at = open_page(GAP)
    assert at.button(key="g_go").disabled  # cached: nothing to press
    assert len(at.multiselect(key="g_students").value) == 9
    verdict = [*at.success, *at.warning]
    assert len(verdict) == 1 and "Paired by seed (3 seeds" in verdict[0].value
    bars = json.loads(specs(at)[0])
    assert "mean ± std over 3 seeds" in bars["layout"]["title"]["text"]
    at.radio(key="g_bn").set_value("batch")
    assert "batch" in json.loads(specs(rerun(at))[0])["layout"]["title"]["text"]
    assert not at.exception
    after = sorted(p.stat().st_mtime_ns for p in (gap_runs / ".cache").glob("connectors-*.pt"))
    assert after == kept and len(kept) == 9  # nothing refitted or added


def test_the_page_shows_the_background_fits_while_they_run(runs_copy, monkeypatch):
    """While `fcfd defaults` fits the default connectors, the page says so with its progress
    instead of asking for Compute (this process plays the build: it writes the progress)."""
    from fcfd_viz.experiments.demo import DEFAULTS, progress_writer
    from fcfd_viz.experiments.demo_gap import PROGRESS_FILE

    monkeypatch.setenv("FCFD_RUNS_DIR", str(runs_copy))
    progress_writer(runs_copy / DEFAULTS / PROGRESS_FILE, None)(0.5, "gap: fitting kd (eval BN)")
    at = open_page(GAP)
    assert "fitted in the background" in at.info[0].value
    assert not specs(at)
    progress_writer(runs_copy / DEFAULTS / PROGRESS_FILE, None)(1.0, "gap ready in 1 s")
    assert "Press Compute" in open_page(GAP).info[0].value


def test_fcfd_defaults_finds_the_default_gap_kept(gap_runs):
    """`fcfd defaults` on a folder it completed before: nothing trained, nothing fitted, and
    both phases report done (the gap phase computes with $FCFD_GAP_FIT_EPOCHS's budget)."""
    import os
    import subprocess
    import sys

    from fcfd_viz.experiments.demo_gap import default_gap_progress, default_gap_running

    out = subprocess.run(
        [sys.executable, "-m", "fcfd_viz", "defaults", "--runs-dir", str(gap_runs)],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "FCFD_GAP_FIT_EPOCHS": "10"},
    )
    assert out.returncode == 0, out.stderr
    assert "defaults ready" in out.stdout and "gap ready" in out.stdout
    assert "fitting" not in out.stdout
    assert default_gap_progress(gap_runs)["fraction"] == 1.0 and not default_gap_running(gap_runs)


def test_home_says_the_gap_fits_run_in_the_background(runs_copy, monkeypatch):
    from fcfd_viz.experiments.demo import DEFAULTS, progress_writer
    from fcfd_viz.experiments.demo_gap import PROGRESS_FILE

    monkeypatch.setenv("FCFD_RUNS_DIR", str(runs_copy))
    progress_writer(runs_copy / DEFAULTS / PROGRESS_FILE, None)(0.25, "gap: fitting ce (eval BN)")
    at = open_page()
    assert any("Every page works now" in i.value for i in at.info)


def test_where_the_error_lies_shows_the_spectrum_kept_with_the_gap(runs_copy, monkeypatch):
    """Asking for the error spectrum computes it with the gap (no Compute to press), keeps it
    in RUNS/.cache under the library's key, and draws the share curves and the l2 / fisher
    scatters from that very result, with its Spearman correlations in words."""
    from fcfd_viz.analysis.gap.spectra import predictors
    from fcfd_viz.analysis.reports.gap import GapReport

    monkeypatch.setenv("FCFD_RUNS_DIR", str(runs_copy))
    at = open_page(GAP)
    options = at.multiselect(key="g_students").options
    picked = [o for o in options if o.startswith(("defaults/kd ", "defaults/fcfd "))]
    at.multiselect(key="g_students").set_value(picked)
    at.select_slider(key="g_fit").set_value(10)
    assert "Press Compute" in rerun(at).info[0].value and not specs(at)  # off by default
    at.select_slider(key="g_spec").set_value(32)  # asking for it computes, as Compute does
    charts = specs(rerun(at))
    assert len(charts) == 5  # gap bars, mixed paths, share, l2/fisher scatters, one picture
    panel = next(e for e in at.expander if e.label == "Where the error lies")
    assert "**fisher**" in panel.markdown[0].value and "dashed line" in panel.markdown[0].value
    kept = [json.loads(f.read_text()) for f in (runs_copy / ".cache").glob("gap-*.json")]
    spectra = [GapReport.from_dict(d).spectrum for d in kept if d.get("spectrum")]
    assert len(spectra) == 2 and all(s.images == 32 for s in spectra)  # kd's and fcfd's
    entries = {v: e for s in spectra for v, e in s.entries.items() if e.bridges == "fitted"}
    assert set(entries) == {"kd (fitted)", "fcfd (fitted)"}  # own bridges hidden by default
    share = json.loads(charts[2])
    for e in entries.values():
        trace = next(t for t in share["data"] if t["name"].startswith(f"{e.method} (fitted)"))
        assert trace["y"] == pytest.approx(e.share[0])  # first stage, from the kept result
    spectrum = spectra[0]
    spectrum.entries = entries
    expected = predictors([spectrum])
    words = panel.caption[0].value
    assert f"over {expected['points']['students']} students" in words
    for m in ("fisher", "l2"):
        assert f"{m} {expected[m]['spearman']:.2f} [" in words
        assert f"{m} vs KL: Spearman {expected[m]['spearman']:.2f}" in charts[3]
    at.toggle(key="g_own").set_value(True)  # FCFD's own bridges join the curves
    names = [t["name"] for t in json.loads(specs(rerun(at))[2])["data"]]
    assert any(n.startswith("fcfd (own bridges)") for n in names)
    at.select_slider(key="g_spec").set_value(0)  # off again: the gap alone, the panel says how
    panel = next(e for e in rerun(at).expander if e.label == "Where the error lies")
    assert len(specs(at)) == 3 and "Error spectrum" in panel.caption[0].value
