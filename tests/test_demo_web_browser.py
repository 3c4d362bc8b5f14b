"""The demo's web page in headless Chromium (Debian's chromium, driven by Playwright) during a real replay:
the page loads, the charts draw data points, the values update while the replay runs. It saves a
screenshot; `make screenshot` runs it with DEMO_SCREENSHOT=docs/demo-screenshot.png to renew the one the README
shows (a plain test run writes to its tmp dir, so tests never dirty the work tree).
"""

from __future__ import annotations

import io
import os
import queue
import shutil
import threading
from pathlib import Path

import pytest
from rich.console import Console

from simcore.demo.run import DemoRun
from tests.test_demo_end_to_end import demo_args

CHROMIUM = Path(shutil.which("chromium") or "/usr/bin/chromium")
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]
SCREENSHOT_ENV = "DEMO_SCREENSHOT"
WAIT_MS = 120_000

playwright_api = pytest.importorskip("playwright.sync_api")
pytestmark = pytest.mark.skipif(not CHROMIUM.exists(),
                                reason="Debian's chromium is not installed (apt-get install chromium)")


def _points(page, chart: str) -> int:
    return int(page.get_attribute(f"#{chart}", "data-points"))


def test_page_draws_charts_that_update_while_the_replay_runs(tmp_path: Path) -> None:
    screenshot = Path(os.environ.get(SCREENSHOT_ENV) or tmp_path / "demo-screenshot.png").absolute()
    # Ten days at 12 data hours per second: long enough to watch the page change while it runs.
    args = demo_args(tmp_path / "demo", "--from", "2013-11-20", "--to", "2013-11-29", "--speed", "12",
                     "--metrics-interval", "2")
    args.no_web, args.port = False, 0
    urls: queue.Queue[str] = queue.Queue()
    demo = DemoRun(args, Console(file=io.StringIO()), on_web_ready=urls.put)
    outcome: list = []
    runner = threading.Thread(target=lambda: outcome.append(demo.run()), daemon=True)
    runner.start()
    try:
        url = urls.get(timeout=120)
        with playwright_api.sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
            page = browser.new_page(viewport={"width": 1280, "height": 980})
            page.goto(url)
            assert page.title() == "simcore demo: rain at the edge"
            page.wait_for_function("Number(document.querySelector('#chart-rain').dataset.points) > 0",
                                   timeout=WAIT_MS)
            first_readings = _points(page, "chart-temperature")
            first_predictions = _points(page, "chart-rain")
            first_done = int(page.inner_text("#done"))
            assert first_readings > 0 and first_predictions > 0
            assert not page.is_visible("#finished"), "the replay ended before the page could watch it run"
            # Values move on while the replay runs.
            page.wait_for_function(
                f"Number(document.querySelector('#chart-rain').dataset.points) > {first_predictions} + 5",
                timeout=WAIT_MS)
            assert _points(page, "chart-temperature") > first_readings
            assert int(page.inner_text("#done")) > first_done
            for chart in ("chart-temperature", "chart-humidity", "chart-pressure", "chart-rain"):
                # Read in one go: the page redraws between two separate reads.
                drawn, counted = page.evaluate(
                    """chart => { const svg = document.getElementById(chart);
                                  const line = svg.querySelector('polyline.series').getAttribute('points');
                                  return [line.trim().split(/\\s+/).length, Number(svg.dataset.points)]; }""",
                    chart)
                assert drawn == counted > 1, chart
            # The end: the page says so, and its matrix holds every scored prediction.
            runner.join(timeout=WAIT_MS / 1000)
            assert outcome and outcome[0].outcome == "complete"
            page.wait_for_selector("#finished", state="visible", timeout=WAIT_MS)
            matrix_total = sum(int(page.inner_text(f"#{cell}")) for cell in ("tp", "fp", "tn", "fn"))
            assert matrix_total == outcome[0].score.rows
            assert page.locator("#metrics tbody tr").count() > 0
            # The shadow's update/accepted has no subscriber in the group: shown as unrouted, not as dropped.
            assert int(page.inner_text("#unrouted")) > 0
            screenshot.parent.mkdir(parents=True, exist_ok=True)
            page.screenshot(path=str(screenshot), full_page=True)
            browser.close()
    finally:
        demo.stop.requested.set()
        runner.join(timeout=60)
        if demo.web is not None:
            demo.web.stop()
    assert screenshot.stat().st_size > 10_000
