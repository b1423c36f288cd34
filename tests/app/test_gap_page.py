"""The Functional gap page over seeds: mean ± std bars, the paired reading, the one-picture
view, and fitted connectors kept on disk for the next launch (AppTest, real tiny runs)."""

from __future__ import annotations

import json

import pytest
from test_app import GAP, open_page, rerun, specs

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
