"""The dashboard in a real browser: `streamlit run` on a free 127.0.0.1 port, driven by
Playwright with Debian's Chromium; screenshots land in test-artifacts/screenshots/."""

from __future__ import annotations

from pathlib import Path

import pytest
from helpers import ARGS, CHROMIUM, SHOTS

pytestmark = [
    pytest.mark.browser,
    pytest.mark.slow,
    pytest.mark.skipif(
        not Path(CHROMIUM).exists(),
        reason=f"{CHROMIUM} not found: apt-get install -y --no-install-recommends chromium",
    ),
]

# (url path, page title, heading, needs a click on Compute)
PAGES = [
    ("", "Home", "fcfd-viz", False),
    ("sensitivity", "Sensitivity", "Sensitivity", False),
    ("perturbation", "Perturbation", "Perturbation explorer", False),
    # `fcfd defaults` fitted the default students' connectors: the page opens on them
    ("gap", "Functional gap", "Functional gap", False),
    ("distill", "Distill", "Distill", False),
    ("runs", "Runs", "Runs", False),
]


def visit(page, url: str, path: str, title: str, heading: str, compute: bool) -> None:
    """Open one page, wait for its heading and a rendered plotly chart."""
    page.goto(f"{url}/{path}", wait_until="domcontentloaded")
    page.locator("h1").filter(has_text=heading).first.wait_for(timeout=60_000)
    if compute:
        page.get_by_role("button", name="Compute").click(timeout=60_000)
    chart = page.locator("[data-testid=stPlotlyChart] .js-plotly-plot").first
    # Compute fits connectors for every student picked: minutes for the nine default ones
    chart.wait_for(state="visible", timeout=480_000 if compute else 180_000)
    page.wait_for_timeout(800)  # let plotly finish drawing before the screenshot
    assert title in page.title()


def test_every_page_renders_in_chromium(server):
    from playwright.sync_api import sync_playwright

    SHOTS.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=ARGS)
        try:
            page = browser.new_page(viewport={"width": 1400, "height": 1000})
            for path, title, heading, compute in PAGES:
                visit(page, server, path, title, heading, compute)
                name = path or "home"
                page.screenshot(path=str(SHOTS / f"{name}.png"), full_page=True)
                assert page.locator(".js-plotly-plot").count() >= 1
                assert not page.locator("[data-testid=stException]").count(), name
        finally:
            browser.close()
