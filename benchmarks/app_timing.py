"""Dashboard timings and the screenshots in docs/screenshots/.

1. first launch: ``fcfd defaults`` into a fresh runs folder (the Home page's button runs the
   same command in the background), wall time until the runs are built (every page works)
   and until its second phase has fitted the gap page's connectors (fcfd_viz.experiments.demo_gap);
2. ``streamlit run app/main.py`` to the Home page rendered with its chart, defaults cached
   (Chromium already started, so browser start-up is not counted);
3. a Sensitivity interaction: change eps, time until the new sensitivity chart is drawn
   (model cached, probe recomputed), median of three values;
4. the Functional gap page opened on those kept results (and, when ``--no-gap`` built the
   runs alone, its first computation);
5. screenshots of every page, the Home page's tour and the Perturbation explorer included.

    python benchmarks/app_timing.py [--runs-dir DIR] [--shots docs/screenshots]

With ``--runs-dir`` holding finished defaults, step 1 is skipped (reported as reused).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.common import RESULTS, ROOT, machine, table, write_json, write_section  # noqa: E402
from fcfd_viz.experiments.demo_gap import fit_epochs  # noqa: E402
from tests.app.test_browser import ARGS, CHROMIUM, free_port, start_server, stop_server  # noqa: E402

TARGETS = {"build_defaults_s": 180, "first_page_s": 5, "sensitivity_interaction_s": 2}


def build_defaults(runs_dir: Path, gap: bool) -> tuple[float | None, float | None]:
    """(seconds until ``fcfd defaults`` reported the runs ready, seconds until it exited after
    the gap phase); ``(None, None)`` when the runs were there already."""
    from fcfd_viz.experiments.demo import defaults_ready

    if defaults_ready(runs_dir):
        return None, None
    t0, runs_s = time.perf_counter(), None
    cmd = [sys.executable, "-m", "fcfd_viz", "defaults", "--runs-dir", str(runs_dir)]
    proc = subprocess.Popen(cmd + ([] if gap else ["--no-gap"]), stdout=subprocess.PIPE, text=True)
    for line in proc.stdout:  # one progress line per epoch, then per fitted student
        if runs_s is None and "defaults ready" in line:
            runs_s = time.perf_counter() - t0
    if proc.wait() != 0:
        sys.exit(f"fcfd defaults failed ({proc.returncode})")
    return runs_s, (time.perf_counter() - t0 if gap else None)


def chart(page, timeout_s: float = 600):
    loc = page.locator("[data-testid=stPlotlyChart] .js-plotly-plot").first
    loc.wait_for(state="visible", timeout=timeout_s * 1000)
    page.wait_for_timeout(500)


def shoot(page, shots: Path, name: str) -> None:
    page.wait_for_timeout(1000)
    page.screenshot(path=str(shots / f"{name}.png"))


def measure(runs_dir: Path, shots: Path) -> dict:
    from playwright.sync_api import sync_playwright

    out: dict = {}
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=ARGS)
        page = browser.new_page(viewport={"width": 1400, "height": 1500})
        port = free_port()
        url = f"http://127.0.0.1:{port}"
        t0 = time.perf_counter()
        proc = start_server(runs_dir, port, Path(tempfile.mkdtemp()) / "streamlit.log")
        try:
            while True:  # poll until the server answers, then load the page
                try:
                    page.goto(url, wait_until="domcontentloaded", timeout=2000)
                    break
                except Exception:  # noqa: BLE001 - not listening yet
                    if proc.poll() is not None or time.perf_counter() - t0 > 120:
                        raise
                    time.sleep(0.1)
            chart(page, 120)
            out["first_page_s"] = time.perf_counter() - t0
            shoot(page, shots, "home")
            page.get_by_text("Start here: a 30-minute class", exact=True).click()
            page.get_by_text("The payoff").first.wait_for(timeout=30_000)
            page.screenshot(path=str(shots / "tour.png"), full_page=True)

            t0 = time.perf_counter()
            page.goto(f"{url}/sensitivity", wait_until="domcontentloaded")
            chart(page)
            out["sensitivity_first_s"] = time.perf_counter() - t0
            box = page.get_by_label("eps (relative to ||f||)")
            times = []
            for eps in ("0.1", "0.2", "0.03"):
                t0 = time.perf_counter()
                box.fill(eps)
                box.press("Enter")
                page.locator(".gtitle", has_text=f"eps={eps},").wait_for(timeout=120_000)
                times.append(time.perf_counter() - t0)
            out["sensitivity_interaction_s"] = statistics.median(times)
            out["sensitivity_interactions_s"] = times
            box.fill("0.05")
            box.press("Enter")
            page.locator(".gtitle", has_text="eps=0.05,").wait_for(timeout=120_000)
            shoot(page, shots, "sensitivity")

            t0 = time.perf_counter()
            page.goto(f"{url}/gap", wait_until="domcontentloaded")
            page.locator("h1", has_text="Functional gap").wait_for(timeout=60_000)
            button = page.get_by_role("button", name="Compute")
            cached = not button.is_enabled()  # computed by an earlier run: kept on disk
            if not cached:
                button.click()
            chart(page, 1200)
            out["gap_first_s" if not cached else "gap_cached_s"] = time.perf_counter() - t0
            page.wait_for_timeout(1000)
            page.screenshot(path=str(shots / "gap.png"), full_page=True)  # bars, verdict, picture
            for name in ("perturbation", "distill", "runs"):
                page.goto(f"{url}/{name}", wait_until="domcontentloaded")
                chart(page)
                shoot(page, shots, name)
        finally:
            stop_server(proc)
            browser.close()
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs-dir", default=None, help="default: a fresh temporary folder")
    ap.add_argument("--shots", default=str(ROOT / "docs" / "screenshots"))
    ap.add_argument(
        "--no-gap", action="store_true", help="build the runs alone; time the page's own fits"
    )
    args = ap.parse_args()
    runs_dir = Path(args.runs_dir or tempfile.mkdtemp(prefix="fcfd-app-")).resolve()
    shots = Path(args.shots)
    shots.mkdir(parents=True, exist_ok=True)
    load_before = os.getloadavg()[0]
    runs_s, with_gap_s = build_defaults(runs_dir, gap=not args.no_gap)
    res = {"build_defaults_s": runs_s, "defaults_with_gap_s": with_gap_s}
    res.update(measure(runs_dir, shots))
    try:  # reused defaults / cached gap: keep the figures an earlier full run measured
        old = json.loads((RESULTS / "app_timing.json").read_text())
    except (OSError, ValueError):
        old = {}
    for key in ("build_defaults_s", "defaults_with_gap_s"):
        if res.get(key) is None:
            res[key] = old.get(key)
    res["load_average"] = [round(load_before, 1), round(os.getloadavg()[0], 1)]
    res = {k: (round(v, 2) if isinstance(v, float) else v) for k, v in res.items()}
    res["sensitivity_interactions_s"] = [round(v, 2) for v in res["sensitivity_interactions_s"]]
    res.update(machine=machine(), runs_dir=str(runs_dir), targets=TARGETS)
    write_json("app_timing", res)
    rows = [
        ["first launch: build the default runs", res["build_defaults_s"] or "reused", "<= 180"],
        [
            "... and the gap page's connectors, fitted after them in the background "
            f"(fit budget {fit_epochs()} epochs)",
            res.get("defaults_with_gap_s") or "-",
            "-",
        ],
        ["`streamlit run` to Home rendered (defaults cached)", res["first_page_s"], "<= 5"],
        [
            "Sensitivity: eps change to new chart (median of 3)",
            res["sensitivity_interaction_s"],
            "<= 2",
        ],
        ["Sensitivity: first visit (model load + probe)", res["sensitivity_first_s"], "-"],
        ["Functional gap: first computation (fits connectors)", res.get("gap_first_s", "-"), "-"],
        ["Functional gap: opened on kept results", res.get("gap_cached_s", "-"), "-"],
    ]
    rows = [[a, f"{b:.1f}" if isinstance(b, float) else b, c] for a, b, c in rows]
    m = res["machine"]
    write_section(
        "app_timing",
        "## Dashboard (`benchmarks/app_timing.py`)\n\n"
        f"Machine: {m['cpu']}, {m['threads']} threads, torch {m['torch']}; Chromium headless "
        "via Playwright, seconds of wall time. The machine was shared with other jobs while "
        f"measuring (1-minute load average {res['load_average'][0]} to "
        f"{res['load_average'][1]} on 2 cores), so these are upper bounds.\n\n"
        + table(["step", "seconds", "target"], rows)
        + "\n\nScreenshots: [Home](screenshots/home.png), [Sensitivity](screenshots/sensitivity.png), "
        "[Functional gap](screenshots/gap.png), [Perturbation](screenshots/perturbation.png), "
        "[the tour](screenshots/tour.png), [Distill](screenshots/distill.png), "
        "[Runs](screenshots/runs.png).",
    )
    print(res)


if __name__ == "__main__":
    main()
