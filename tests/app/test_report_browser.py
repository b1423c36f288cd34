"""The study report in a real browser: the page of ``study_report`` opened as a file:// URL
with the network off (Playwright, Debian's Chromium) draws every plotly figure, fetches
nothing and logs no error; its screenshot lands in test-artifacts/screenshots/."""

from __future__ import annotations

from pathlib import Path

import pytest
from test_browser import ARGS, CHROMIUM, SHOTS, server  # noqa: F401, F811 (a fixture)

from fcfd_viz.experiments.demo import default_names
from fcfd_viz.reports.study import StudyOptions
from fcfd_viz.reports.study_page import study_report

pytestmark = [
    pytest.mark.browser,
    pytest.mark.slow,
    pytest.mark.skipif(
        not Path(CHROMIUM).exists(),
        reason=f"{CHROMIUM} not found: apt-get install -y --no-install-recommends chromium",
    ),
]


def test_report_renders_offline(runs_root, tmp_path, one_thread):
    from playwright.sync_api import sync_playwright

    kd = runs_root / "defaults" / "kd"
    options = StudyOptions(images=4, fit_epochs=1)
    page_html = study_report([kd], options=options, cache_dir=tmp_path / "cache")
    n = page_html.count('class="plotly-graph-div"')
    assert n == 1 + 2 + 4 + 2  # accuracy, 2 runs' losses, the probe's 4, the gap's 2
    path = tmp_path / "report.html"
    path.write_text(page_html)
    errors, fetched = [], []
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=ARGS)
        try:
            context = browser.new_context(offline=True, viewport={"width": 1300, "height": 900})
            page = context.new_page()
            page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
            page.on("pageerror", lambda e: errors.append(str(e)))
            page.on("request", lambda r: fetched.append(r.url))
            page.goto(path.as_uri(), wait_until="load")
            drawn = page.locator(".js-plotly-plot:has(.main-svg)")
            page.wait_for_function(
                f"document.querySelectorAll('.js-plotly-plot .main-svg').length >= {n}",
                timeout=60_000,
            )
            assert drawn.count() == n == page.locator(".plotly-graph-div").count()
            traces = page.evaluate(
                "[...document.querySelectorAll('.js-plotly-plot')].map(d => d.data.length)"
            )
            assert len(traces) == n and min(traces) >= 1
            page.wait_for_timeout(500)  # let plotly finish drawing before the screenshot
            SHOTS.mkdir(parents=True, exist_ok=True)
            page.screenshot(path=str(SHOTS / "report.png"), full_page=True)
        finally:
            browser.close()
    assert not errors, errors
    assert [u for u in fetched if not u.startswith(("file:", "data:", "blob:"))] == []


def test_runs_page_downloads_the_report(server, tmp_path):  # noqa: F811
    # the Runs page's button builds the page when clicked (a deferred download)
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=ARGS)
        try:
            page = browser.new_page(viewport={"width": 1400, "height": 1000})
            page.goto(server, wait_until="domcontentloaded")
            page.locator("h1").filter(has_text="fcfd-viz").first.wait_for(timeout=60_000)
            page.get_by_role("link", name="Runs").click()
            button = page.get_by_role("button", name="Download report (HTML)")
            button.wait_for(timeout=120_000)
            with page.expect_download(timeout=240_000) as info:
                button.click()
            download = info.value
            target = tmp_path / download.suggested_filename
            download.save_as(target)
        finally:
            browser.close()
    report = target.read_text()
    assert target.name == "fcfd-report.html" and "fcfd distill --config" in report
    # one accuracy figure, every default run's loss curves (a teacher and 3 methods x 3
    # seeds), the teacher's probe (4) and the gap `fcfd defaults` kept (bars, mixed paths):
    # the Runs page includes a kept gap by default, as it costs no fitting
    runs = len(default_names())
    assert report.count('class="plotly-graph-div"') == 1 + runs + 4 + 2
    assert "Teacher probe" in report and "Functional gap" in report
