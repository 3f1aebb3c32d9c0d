"""Start training in a real browser while runs are listed (issue 24, item 1): `python app.py`
serves the shipped runs (checkpoints/, read-only) beside an empty run folder, headless
Chromium waits for the form's expected time per epoch (timed in a process of its own, then
redrawn), fills the form for a tiny run (one epoch of 200 images) and clicks Start.
The page shows no traceback, watches the new run at once and, without a refresh (a marker
set in the window before the click is still there), its polling brings the run's first
live point. The one deadline is long, only to catch a hang. A screenshot goes to
test-artifacts/screenshots/train-started.png."""
from __future__ import annotations

import os

import pytest

from genlab.runs import jobs, status
from runs_fixture import served_app
from test_app_browser import (CHROMIUM, IDLE, PAGE_TIMEOUT_MS, SHIPPED, SHOTS, WIDTH,
                              _require_browser, _settle)

LIVE_TIMEOUT_MS = 300_000  # start a process (imports torch), train, poll: a hang, not a speed
NAME = "from-the-browser"


@pytest.fixture
def server(data_root, tmp_path):
    """The app as `make run` serves it, reading an empty run folder first (where Start
    saves) and the shipped runs after it."""
    if not any(SHIPPED.glob("*/checkpoint.pt")):
        pytest.fail(f"no shipped runs under {SHIPPED} (see checkpoints/recipe.sh)")
    mine = tmp_path / "runs"
    env = {**os.environ, "GENLAB_RUNS": f"{mine},{SHIPPED.name}", "GENLAB_DATA": str(data_root),
           "OMP_NUM_THREADS": "1"}
    with served_app(env, tmp_path / "streamlit.log") as url:
        try:
            yield url, mine
        finally:
            for run in mine.glob("*"):  # the training process, if it is still going
                jobs.stop(run)
                jobs.wait(run, 30)


def _no_traceback(page) -> None:
    main = page.locator('[data-testid="stMain"]').inner_text()
    boxes = page.locator('[data-testid="stException"]')
    assert boxes.count() == 0, boxes.first.inner_text()[:2000]
    assert "Traceback" not in main and "StreamlitWidgetAlreadyInstantiatedError" not in main


def _fill(page, label: str, value) -> None:
    box = page.get_by_label(label, exact=True)
    box.fill(str(value))
    box.press("Tab")


def test_start_training_while_runs_are_listed(server):
    _require_browser()
    from playwright.sync_api import sync_playwright

    url, mine = server
    SHOTS.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), args=[
            "--no-sandbox", "--disable-gpu", "--disable-background-networking"])
        page = browser.new_page(base_url=url, viewport={"width": WIDTH, "height": 900})
        try:
            page.goto("/train", timeout=PAGE_TIMEOUT_MS)
            page.wait_for_selector('[data-testid="stMainBlockContainer"] h1:has-text("Train")',
                                   timeout=PAGE_TIMEOUT_MS)
            _settle(page)
            _no_traceback(page)
            # the time an epoch should take: timed in a process of its own, then redrawn
            page.wait_for_selector('[data-testid="stCaptionContainer"]:has-text("Expected: about")',
                                   timeout=LIVE_TIMEOUT_MS)
            _settle(page)
            watched = page.get_by_role("combobox", name="Watch", exact=True).input_value()
            assert watched and watched != NAME  # a shipped run is listed and watched
            for label, value in {"epochs": 1, "limit": 200, "batch_size": 100}.items():
                _fill(page, label, value)
            page.get_by_text("More training options").click()
            for label, value in {"log_every": 1, "n_samples": 4}.items():
                _fill(page, label, value)
            _fill(page, "Run name", NAME)
            page.evaluate("() => { window.__notReloaded = true }")
            page.get_by_role("button", name="Start training").click()

            page.wait_for_selector(f'[data-testid="stAlertContentSuccess"]:has-text("{NAME}"), '
                                   '[data-testid="stException"]', timeout=PAGE_TIMEOUT_MS)
            page.wait_for_selector(IDLE, timeout=PAGE_TIMEOUT_MS)
            _no_traceback(page)  # it was StreamlitWidgetAlreadyInstantiatedError
            assert page.get_by_role("combobox", name="Watch", exact=True).input_value() == NAME
            assert page.locator(f'h3:has-text("{NAME}")').count() == 1
            run = mine.resolve() / NAME
            assert (run / status.JOB).exists()

            # the fragment polls the run folder: its first live point comes without a refresh
            page.wait_for_function(
                """name => {
                    const h = [...document.querySelectorAll('h3')].find(h => h.innerText.includes(name));
                    const main = document.querySelector('[data-testid="stMain"]').innerText;
                    return h && !main.includes('No metrics yet')
                        && document.querySelector('[data-testid="stPlotlyChart"] .main-svg') }""",
                arg=NAME, timeout=LIVE_TIMEOUT_MS)
            assert page.evaluate("() => window.__notReloaded === true")  # the same page, not reloaded
            assert page.get_by_role("combobox", name="Watch", exact=True).input_value() == NAME
            _settle(page)
            _no_traceback(page)
            page.screenshot(path=str(SHOTS / "train-started.png"), full_page=True)
        finally:
            browser.close()
