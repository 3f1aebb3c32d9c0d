"""A server killed under an open browser (issue 30, item 3): `python app.py` serves an
empty run folder, headless Chromium starts two runs from the Train page's form (so the
server is their parent), then the server is killed with SIGKILL. The runs go on (their
processes alive, their metrics.jsonl growing while no server is there); a new server on
the same port comes up and the open page reconnects by itself: no exception box, no
traceback, the watched run shown running, and its Stop button, pressed in that page,
stops it with a checkpoint, though this server never started it. The other run is
stopped from the page too. Deadlines are long, only to catch a hang. A screenshot goes to
test-artifacts/screenshots/train-reconnected.png."""
from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from genlab.runs import jobs, status, store
from runs_fixture import REPO, START_TIMEOUT_S
from test_app_browser import (CHROMIUM, IDLE, PAGE_TIMEOUT_MS, SHOTS, WIDTH, _choose,
                              _require_browser, _settle)
from test_train_browser import _fill, _no_traceback

LIVE_TIMEOUT_MS = 300_000  # start a process (imports torch), train, poll: a hang, not a speed
NAMES = ("kept-a", "kept-b")
FORM = {"epochs": 100000, "limit": 10000, "batch_size": 100}  # about a second an epoch; stopped
MORE = {"log_every": 10, "n_samples": 4}


def _serve(port: int, env: dict, log: Path) -> subprocess.Popen:
    """`python app.py` on ``port``, once /_stcore/health answers."""
    with open(log, "a") as out:
        proc = subprocess.Popen(
            [sys.executable, "app.py", "--server.port", str(port), "--server.address", "localhost",
             "--server.headless", "true", "--server.fileWatcherType", "none",
             "--browser.gatherUsageStats", "false"], cwd=REPO, env=env, stdout=out, stderr=out)
    deadline = time.time() + START_TIMEOUT_S
    while True:
        try:
            with urllib.request.urlopen(f"http://localhost:{port}/_stcore/health", timeout=2) as r:
                if r.read() == b"ok":
                    return proc
        except OSError:
            pass
        if proc.poll() is not None or time.time() > deadline:
            proc.kill()
            pytest.fail(f"streamlit did not start on port {port}:\n{log.read_text()[-3000:]}")
        time.sleep(0.3)


def _stop_server(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def _lines(run: Path) -> int:
    try:
        return (run / store.METRICS).read_bytes().count(b"\n")
    except OSError:
        return 0


def _wait_for(pred, timeout: float, what: str):
    deadline = time.time() + timeout
    while time.time() < deadline:
        if pred():
            return
        time.sleep(0.2)
    raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what}")


def _start(page, name: str) -> None:
    """Fill the form and press Start."""
    _settle(page)
    start = page.get_by_role("button", name="Start training")
    if not start.is_visible():  # the expander folds while something trains
        page.get_by_text("Start a new run").click()
        start.wait_for(state="visible", timeout=PAGE_TIMEOUT_MS)
    for label, value in FORM.items():
        _fill(page, label, value)
    more = page.get_by_label("log_every", exact=True)
    if not more.is_visible():
        page.get_by_text("More training options").click()
    for label, value in MORE.items():
        _fill(page, label, value)
    _fill(page, "Run name", name)
    start.click()
    page.wait_for_selector(f'[data-testid="stAlertContentSuccess"]:has-text("{name}"), '
                           '[data-testid="stException"]', timeout=PAGE_TIMEOUT_MS)
    _no_traceback(page)
    _watching(page, name, "")  # watched at the top, whatever its state
    _settle(page)


def _watching(page, name: str, state: str) -> None:
    """The page shows ``name`` at the top, in ``state`` (its caption: model · state · path)."""
    page.wait_for_function(
        """([name, state]) => {
            const h = [...document.querySelectorAll('h3')].find(h => h.innerText.includes(name));
            const caps = [...document.querySelectorAll('[data-testid="stCaptionContainer"]')];
            return h && caps.some(c => c.innerText.includes(` · ${state}`)
                                       && c.innerText.includes(name)) }""",
        arg=[name, state], timeout=LIVE_TIMEOUT_MS)


def test_a_killed_server_comes_back_under_an_open_page(data_root, tmp_path):
    _require_browser()
    from playwright.sync_api import sync_playwright

    mine = tmp_path / "runs"
    env = {**os.environ, "GENLAB_RUNS": str(mine), "GENLAB_DATA": str(data_root),
           "OMP_NUM_THREADS": "1"}
    with socket.socket() as s:
        s.bind(("localhost", 0))
        port = s.getsockname()[1]
    log = tmp_path / "streamlit.log"
    server = _serve(port, env, log)
    runs = [mine.resolve() / n for n in NAMES]
    SHOTS.mkdir(parents=True, exist_ok=True)
    try:
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=str(CHROMIUM), args=[
                "--no-sandbox", "--disable-gpu", "--disable-background-networking"])
            page = browser.new_page(base_url=f"http://localhost:{port}",
                                    viewport={"width": WIDTH, "height": 900})
            console_errors = []
            try:
                page.goto("/train", timeout=PAGE_TIMEOUT_MS)
                page.wait_for_selector('[data-testid="stMainBlockContainer"] h1:has-text("Train")',
                                       timeout=PAGE_TIMEOUT_MS)
                _settle(page)
                for name in NAMES:
                    _start(page, name)
                _watching(page, NAMES[-1], "running")
                for run in runs:
                    _wait_for(lambda: _lines(run) > 0, LIVE_TIMEOUT_MS / 1000, f"{run.name}'s metrics")
                before = [status.read_job(run) for run in runs]
                assert all(j.alive for j in before), before

                server.send_signal(signal.SIGKILL)
                assert server.wait(10) == -signal.SIGKILL
                at_kill = [_lines(run) for run in runs]
                for run, n in zip(runs, at_kill):  # no server: the runs go on
                    _wait_for(lambda: _lines(run) > n, 120, f"{run.name} to go on")
                assert [status.read_job(run).alive for run in runs] == [True, True]

                page.on("console", lambda m: console_errors.append(m.text) if m.type == "error" else None)
                sockets = []
                page.on("websocket", lambda ws: sockets.append(ws.url))
                server = _serve(port, env, log)  # the same port: the page finds it by itself
                page.wait_for_function("() => true")  # events are delivered while waiting
                deadline = time.time() + LIVE_TIMEOUT_MS / 1000
                while not any("/_stcore/stream" in u for u in sockets):  # the page reconnected
                    assert time.time() < deadline, "the page never reconnected"
                    page.wait_for_timeout(200)
                _watching(page, NAMES[-1], "running")
                _settle(page)
                _no_traceback(page)
                assert page.locator(f'h3:has-text("{NAMES[-1]}")').count() == 1
                lost = sorted({e.split(" - ")[0][:70] for e in console_errors})  # while it was gone
                console_errors.clear()

                for i in (1, 0):  # Stop, in the reconnected page, on runs this server never started
                    if i == 0:
                        _choose(page, "Watch", NAMES[0])
                        _watching(page, NAMES[0], "running")
                    page.get_by_role("button", name="Stop").click()
                    assert jobs.wait(runs[i], 120), status.log_tail(runs[i])
                    st = store.read_json(runs[i] / store.STATUS)
                    assert st["state"] == "stopped" and "resume" in st["message"], st
                    assert store.load_checkpoint(runs[i] / store.CHECKPOINT)["step"] == st["step"]
                    records, bad = store.read_metrics(runs[i] / store.METRICS)
                    assert bad == 0 and len(records) > at_kill[i]
                    _watching(page, NAMES[i], "stopped")
                _settle(page)
                _no_traceback(page)
                page.screenshot(path=str(SHOTS / "train-reconnected.png"), full_page=True)
                # once reconnected nothing failed, but an image of the dead server's media store
                # (Streamlit keeps media in memory, per server) may still be asked for once
                assert [e for e in console_errors if "/media/" not in e] == []
                print(f"metrics lines at the kill {dict(zip(NAMES, at_kill))}; the console "
                      "while the server was gone:", *lost, sep="\n")
            finally:
                browser.close()
    finally:
        _stop_server(server)
        for run in runs:
            if jobs.stop(run):
                jobs.wait(run, 60)
