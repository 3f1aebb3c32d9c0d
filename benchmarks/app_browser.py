"""Time to first render of every page as a person sees it: `streamlit run app.py` on the
shipped runs, headless Chromium (Playwright), each page opened by its URL twice (a new
session each time): the first visit of the page in this server process (cold) and the
second (cached). Then slider moves on the Latent explorer for a few runs: the page's own
"server time" and the browser's round trip (key press to new image on screen).

    GENLAB_DATA=/work/shared/datasets .venv/bin/python benchmarks/app_browser.py [runs...]

A page counts as rendered when the script run has finished, every plotly chart has
drawn and every image has loaded (as tests/app/test_app_browser.py waits). The server
inherits OMP_NUM_THREADS (2 if unset). Writes benchmarks/results/app_browser.json.
"""
from __future__ import annotations

import json
import os
import platform
import re
import socket
import statistics
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
IDLE = '[data-testid="stApp"][data-test-script-state="notRunning"]'
SETTLED = """() => [...document.querySelectorAll('[data-testid="stPlotlyChart"]')]
                     .every(c => c.querySelector('.main-svg'))
                && [...document.images].every(i => i.complete)
                && !document.querySelector('[data-testid="stSpinner"]')"""
SERVER_TIME = "[...document.querySelectorAll('p')].find(p => p.innerText.startsWith('server time'))"
TIMEOUT_MS = 300_000


def serve(port: int):
    env = {**os.environ, "GENLAB_RUNS": str(REPO / "checkpoints"),
           "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS", "2")}
    proc = subprocess.Popen(
        [sys.executable, "-m", "streamlit", "run", "app.py", "--server.port", str(port),
         "--server.headless", "true", "--server.fileWatcherType", "none"],
        cwd=REPO, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    for _ in range(200):
        try:
            with urllib.request.urlopen(f"http://localhost:{port}/_stcore/health", timeout=2):
                return proc
        except OSError:
            time.sleep(0.3)
    proc.kill()
    raise RuntimeError("streamlit did not start")


def settle(page) -> None:
    page.wait_for_selector(IDLE, timeout=TIMEOUT_MS)
    page.wait_for_function(SETTLED, timeout=TIMEOUT_MS)
    page.wait_for_selector(IDLE, timeout=TIMEOUT_MS)


def first_render(page, url: str) -> float:
    t = time.perf_counter()
    page.goto(url, timeout=TIMEOUT_MS)
    page.wait_for_selector('[data-testid="stMainBlockContainer"] h1', timeout=TIMEOUT_MS)
    settle(page)
    return round(time.perf_counter() - t, 2)


def slider_moves(page, base: str, run: str, n: int = 8) -> dict:
    page.goto(f"{base}/latent", timeout=TIMEOUT_MS)
    settle(page)
    page.get_by_role("combobox", name="Run", exact=True).click()
    page.get_by_role("option", name=re.compile("^" + re.escape(run))).first.click()
    page.wait_for_function(f"() => {SERVER_TIME} && document.querySelector(`input[aria-label='Run']`)"
                           f".value.startsWith('{run}')", timeout=TIMEOUT_MS)
    settle(page)
    thumb = page.locator('input[type="range"][aria-label^="z"]').first
    server, trip = [], []
    for i in range(n):
        before = page.evaluate(f"() => {SERVER_TIME}.innerText")
        t = time.perf_counter()
        thumb.focus()
        thumb.press("ArrowRight" if i % 2 == 0 else "ArrowLeft")
        page.wait_for_function(f"b => {SERVER_TIME}?.innerText !== b", arg=before, timeout=TIMEOUT_MS)
        page.wait_for_function(SETTLED, timeout=TIMEOUT_MS)
        trip.append(1e3 * (time.perf_counter() - t))
        server.append(float(re.search(r"([\d.]+) ms", page.evaluate(f"() => {SERVER_TIME}.innerText"))[1]))
    return {"server_ms": {"median": round(statistics.median(server), 1), "max": round(max(server), 1)},
            "browser_round_trip_ms": {"median": round(statistics.median(trip)), "max": round(max(trip))}}


def main(slider_runs: list[str]) -> dict:
    from playwright.sync_api import sync_playwright

    from pages import PAGES

    with socket.socket() as s:
        s.bind(("localhost", 0))
        port = s.getsockname()[1]
    base = f"http://localhost:{port}"
    out = {"machine": platform.processor() or platform.machine(), "cpus": os.cpu_count(),
           "omp_num_threads": os.environ.get("OMP_NUM_THREADS", "2"),
           "load_avg": os.getloadavg()[0], "pages": {}, "sliders": {}}
    proc = serve(port)
    try:
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path="/usr/bin/chromium", args=[
                "--no-sandbox", "--disable-gpu", "--disable-background-networking"])
            page = browser.new_page(viewport={"width": 1400, "height": 900})
            for spec in sorted(PAGES, key=lambda s: s.url_path == ""):  # Home last: cold too
                url = f"{base}/{spec.url_path}"
                out["pages"][spec.title] = {"cold_s": first_render(page, url),
                                            "cached_s": first_render(page, url)}
                print(spec.title, out["pages"][spec.title], flush=True)
            for run in slider_runs:
                out["sliders"][run] = slider_moves(page, base, run)
                print(run, out["sliders"][run], flush=True)
            browser.close()
    finally:
        proc.terminate()
        proc.wait(10)
    out["load_avg_end"] = os.getloadavg()[0]
    path = REPO / "benchmarks" / "results" / "app_browser.json"
    path.write_text(json.dumps(out, indent=1) + "\n")
    return out


if __name__ == "__main__":
    main(sys.argv[1:] or ["vae-2d-mnist", "vae-20d-mnist", "realnvp-mnist", "gan-mnist"])
