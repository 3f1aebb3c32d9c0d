"""The 2-D lab in headless Chromium: `python app.py` serves it, the page opens at /lab with
two families from its URL, Step advances them by one and the picture changes, Play trains
(the step count climbs without a click) and Pause stops it. The deadlines are long, only
to catch a hang; screenshots go to test-artifacts/screenshots/lab-*.png."""
from __future__ import annotations

import os
import re
import time

import pytest

from runs_fixture import served_app
from test_app_browser import CHROMIUM, SHOTS, WIDTH, _require_browser

WAIT_MS = 180_000
QUERY = "families=realnvp,gmm&couplings=4&hidden=32&target=moons"
STEP = re.compile(r"^step (\d+)")


@pytest.fixture
def lab_url(tmp_path):
    env = {**os.environ, "GENLAB_RUNS": str(tmp_path / "runs"), "OMP_NUM_THREADS": "1"}
    with served_app(env, tmp_path / "streamlit.log") as url:
        yield f"{url}/lab?{QUERY}"


def steps(page) -> list[int]:
    """The step count each family's column shows."""
    out = []
    for t in page.locator('[data-testid="stMarkdownContainer"] p').all_inner_texts():
        m = STEP.match(t)
        if m:
            out.append(int(m.group(1)))
    return out


def wait_steps(page, ok, what: str) -> list[int]:
    deadline = time.time() + WAIT_MS / 1000
    while time.time() < deadline:
        s = steps(page)
        if len(s) == 2 and ok(s):
            return s
        page.wait_for_timeout(200)
    pytest.fail(f"the lab never showed {what} (last: {steps(page)})")


def model_chart(page):
    return page.locator('[data-testid="stPlotlyChart"]').nth(1)  # the first family's density


def test_play_pause_and_step_change_the_picture(lab_url):
    _require_browser()
    from playwright.sync_api import sync_playwright

    SHOTS.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), args=[
            "--no-sandbox", "--disable-gpu", "--disable-background-networking"])
        page = browser.new_page(viewport={"width": WIDTH, "height": 1400})
        t0 = time.time()
        page.goto(lab_url, timeout=WAIT_MS)
        wait_steps(page, lambda s: s == [0, 0], "step 0")
        page.locator('[data-testid="stPlotlyChart"] .main-svg').first.wait_for(timeout=WAIT_MS)
        print(f"first frame {time.time() - t0:.2f} s")
        page.wait_for_timeout(500)
        before = model_chart(page).screenshot()

        page.get_by_role("button", name="Step").click()
        wait_steps(page, lambda s: s == [1, 1], "step 1 after Step")
        page.wait_for_timeout(800)
        after = model_chart(page).screenshot()
        assert after != before  # the model's density moved

        page.get_by_role("button", name="Play").click()
        climbed = wait_steps(page, lambda s: min(s) > 20, "the steps climbing while playing")
        page.screenshot(path=str(SHOTS / "lab-playing.png"), full_page=True)
        page.get_by_role("button", name="Pause").click()
        page.get_by_role("button", name="Play").wait_for(timeout=WAIT_MS)
        page.wait_for_timeout(1500)
        paused = steps(page)
        page.wait_for_timeout(2000)
        assert steps(page) == paused and min(paused) >= min(climbed)  # no step without Play
        assert "Traceback" not in page.locator('[data-testid="stMain"]').inner_text()
        assert "play=0" in page.url and "families=realnvp%2Cgmm" in page.url or "families=realnvp,gmm" in page.url
        browser.close()
