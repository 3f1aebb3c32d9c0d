"""A real browser: `streamlit run app.py` on a free localhost port, driven by Debian's
Chromium through Playwright. Every page must finish running without an exception box;
a full-page screenshot of each goes to test-artifacts/screenshots/<page>.png.

Without /usr/bin/chromium or the playwright package the test skips locally and fails
under CI (env CI set), so a missing browser can never pass silently."""
from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from pages import PAGES
from runs_fixture import GOOD, REPO

CHROMIUM = Path("/usr/bin/chromium")
SHOTS = REPO / "test-artifacts" / "screenshots"
START_TIMEOUT_S = 60
PAGE_TIMEOUT_MS = 60_000


def _require_browser():
    why = None
    if not CHROMIUM.exists():
        why = f"{CHROMIUM} not found (apt-get install chromium)"
    else:
        try:
            from playwright.sync_api import sync_playwright  # noqa: F401
        except ImportError:
            why = "the playwright package is not installed (pip install -r requirements-dev.txt)"
    if why:
        if os.environ.get("CI"):
            pytest.fail(why)
        pytest.skip(why)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("localhost", 0))
        return s.getsockname()[1]


@pytest.fixture
def server(runs_root, data_root, tmp_path):
    """The app served from the repository on a free port, reading the fixture runs."""
    port = _free_port()
    env = {**os.environ, "GENLAB_RUNS": str(runs_root), "GENLAB_DATA": str(data_root)}
    log = open(tmp_path / "streamlit.log", "w+")
    proc = subprocess.Popen(
        [sys.executable, "-m", "streamlit", "run", "app.py", "--server.port", str(port),
         "--server.address", "localhost", "--server.headless", "true",
         "--browser.gatherUsageStats", "false"], cwd=REPO, env=env, stdout=log, stderr=log)
    url = f"http://localhost:{port}"
    try:
        deadline = time.time() + START_TIMEOUT_S
        while True:
            try:
                with urllib.request.urlopen(f"{url}/_stcore/health", timeout=2) as r:
                    if r.read() == b"ok":
                        break
            except OSError:
                pass
            if proc.poll() is not None or time.time() > deadline:
                log.seek(0)
                pytest.fail(f"streamlit did not start on {url}:\n{log.read()[-3000:]}")
            time.sleep(0.3)
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(3)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        log.close()


def _wait_until_rendered(page) -> None:
    """Streamlit has finished the script run, and every chart and image has drawn."""
    page.wait_for_selector('[data-testid="stApp"][data-test-script-state="notRunning"]',
                           timeout=PAGE_TIMEOUT_MS)
    page.wait_for_selector('[data-testid="stMainBlockContainer"] h1', timeout=PAGE_TIMEOUT_MS)
    page.wait_for_function(
        """() => [...document.querySelectorAll('[data-testid="stPlotlyChart"]')]
                   .every(c => c.querySelector('.main-svg'))
              && [...document.images].every(i => i.complete)""", timeout=PAGE_TIMEOUT_MS)
    page.wait_for_timeout(500)  # let the last layout pass settle


def _screenshot(page, path: Path) -> None:
    """The whole page: the main area scrolls inside the window, which a plain full-page
    screenshot would cut, so grow the window to the content's height (until it settles:
    charts re-lay themselves out when the window changes)."""
    js = """() => Math.max(...['[data-testid="stMain"]', '[data-testid="stMainBlockContainer"]',
                            '[data-testid="stAppViewContainer"]']
             .map(s => document.querySelector(s)).filter(Boolean).map(e => e.scrollHeight))"""
    height = 0
    for _ in range(5):
        new = max(900, int(page.evaluate(js)) + 40)
        if new == height:
            break
        height = new
        page.set_viewport_size({"width": 1400, "height": height})
        page.wait_for_timeout(400)
    page.screenshot(path=str(path), full_page=True)


def test_every_page_in_a_browser(server):
    _require_browser()
    from playwright.sync_api import sync_playwright

    SHOTS.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), args=[
            "--no-sandbox", "--disable-gpu", "--disable-background-networking"])
        try:
            page = browser.new_page(viewport={"width": 1400, "height": 900})
            for spec in PAGES:
                page.goto(f"{server}/{spec.url_path}", timeout=PAGE_TIMEOUT_MS)
                _wait_until_rendered(page)
                name = spec.url_path or "home"
                _screenshot(page, SHOTS / f"{name}.png")
                boxes = page.locator('[data-testid="stException"]')
                assert boxes.count() == 0, f"{name}: {boxes.first.inner_text()[:2000]}"
                assert "Device" in page.locator('[data-testid="stSidebar"]').inner_text()
                if not spec.url_path:
                    assert GOOD in page.locator('[data-testid="stMain"]').inner_text()
        finally:
            browser.close()
