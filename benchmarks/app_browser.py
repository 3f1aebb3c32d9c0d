"""Time to first render of every page as a person sees it: `python app.py` (what `make run`
does) on the shipped runs, headless Chromium (Playwright).

1. first visits: for each page, a fresh server and that page opened by its URL (the first
   visit after a server start: imports, model, data), ``--rounds`` times, median; under
   `python app.py` and under `streamlit run app.py`, with nothing in the browser's cache,
   and under `python app.py` again with a browser that has seen the app before;
2. in one server: each page opened twice (a new session each time; cold then cached),
   fresh Home sessions (median of 5), and run switches on the Latent explorer (the first
   switch to each run in that server: loading it, its stored projections);
3. with ``--sliders RUN...``: slider moves on the Latent explorer: the page's own
   "server time" and the browser's round trip (key press to new image on screen);
4. the browser decoder (``--decoders RUN...``, the 2-D VAE and the MLP GAN unless told):
   the time from a slider's input event to new pixels, as the component itself times it.

    GENLAB_DATA=../shared/datasets .venv/bin/python benchmarks/app_browser.py [--rounds 3]

5. with ``--baseline CHECKOUT`` instead: run switches alone, a fresh server per round, this
   checkout's and another's (`git worktree add ../before REV`, its .venv linked) in turn:

    GENLAB_DATA=../shared/datasets .venv/bin/python benchmarks/app_browser.py --baseline ../before --rounds 5

The speed goals (``GOALS``) are here, beside the figures, and each figure says whether it
met its goal: the tests (tests/app/test_app_browser.py, test_live_decoder_browser.py,
test_page_latent.py) assert what the pages do, and time nothing but a hang.

A page counts as rendered when the script run has finished, every chart has
drawn, every image has loaded, no skeleton is left (as tests/app/test_app_browser.py
waits) and nothing has changed for 0.8 s; its time is that of its last change. The server
inherits OMP_NUM_THREADS; unset, `python app.py` gives torch half the cores
(pages/ui/launch.py). Writes benchmarks/results/app_browser.json.
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
                     .every(c => c.querySelector('.js-plotly-plot .main-svg'))
                && [...document.images].every(i => i.complete)
                && !document.querySelector('[data-testid="stSpinner"]')
                && !document.querySelector('[data-testid="stSkeleton"]')"""
# the time (ms after navigation began) of the page's last change: a DOM mutation, or an
# image that finished loading (which mutates nothing)
WATCH = """window.__genlabLast = 0;
new MutationObserver(() => { window.__genlabLast = performance.now(); })
    .observe(document, {childList: true, subtree: true, attributes: true, characterData: true});
addEventListener('load', e => { if (e.target.tagName === 'IMG') window.__genlabLast = performance.now(); }, true);"""
QUIET_MS = 800  # the page counts as drawn once nothing has changed for this long
GOALS = {"first_visit_s": 3.5,  # issue 27, item 2: a chart page's first visit after a server start, drawn
         "home_first_visit_s": 2.0,  # Home (no chart) after a server start
         "browser_decode_ms": 20.0,  # issue 15: the browser decoder, an input event to new pixels
         "slider_server_ms": 100.0}  # the server's decode, a slider's new value to the image
SERVER_TIME = "[...document.querySelectorAll('p')].find(p => p.innerText.startsWith('server time'))"
TIMEOUT_MS = 300_000


LAUNCHERS = {"python app.py": ["app.py"],  # the heavy imports start before the server
             "streamlit run app.py": ["-m", "streamlit", "run", "app.py"]}


def serve(port: int, launcher: str = "python app.py", *, runs: str | None = None,
          args: tuple[str, ...] = (), log=None):
    """The app on ``port``, listing the shipped runs (``runs``: GENLAB_RUNS instead), with
    Streamlit options ``args`` added, its output to ``log`` (an open file; else dropped)."""
    env = {**os.environ, "GENLAB_RUNS": runs or str(REPO / "checkpoints")}  # threads as make run has them
    out = log if log is not None else subprocess.DEVNULL
    proc = subprocess.Popen(
        [sys.executable, *LAUNCHERS[launcher], "--server.port", str(port),
         "--server.headless", "true", "--server.fileWatcherType", "none", *args],
        cwd=REPO, env=env, stdout=out, stderr=subprocess.STDOUT if log is not None else subprocess.DEVNULL)
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
    """Seconds from the navigation's start to the page's last change before it went quiet.

    The script run's end is not enough: Streamlit draws some elements after it (a chunk of
    JavaScript loaded on first use: a chart library, the data grid; meanwhile a grey skeleton), and
    a check that ran between the two would count a half-drawn page as drawn."""
    page.add_init_script(WATCH)
    page.goto(url, timeout=TIMEOUT_MS)
    page.wait_for_selector('[data-testid="stMainBlockContainer"] h1', timeout=TIMEOUT_MS)
    return round(last_change_ms(page) / 1000, 2)


def last_change_ms(page) -> float:
    """Wait until the page is settled and quiet; the time of its last change (ms after
    the navigation began, on the page's own clock)."""
    while True:
        settle(page)
        page.wait_for_function(f"() => performance.now() - window.__genlabLast > {QUIET_MS}",
                               timeout=TIMEOUT_MS)
        if page.evaluate(SETTLED) and page.query_selector(IDLE):
            return page.evaluate("window.__genlabLast")


SWITCH_RUNS = ("vae-20d-mnist", "realnvp-mnist", "vae-realnvp-post-mnist", "nice-fashion-mnist",
               "vae-2d-mnist")


def run_switches(page, base: str, names=SWITCH_RUNS) -> dict:
    """Seconds from picking a run in the Latent explorer's picker to the page's last change."""
    page.add_init_script(WATCH)
    page.goto(f"{base}/latent", timeout=TIMEOUT_MS)
    last_change_ms(page)
    out = {}
    for run in names:
        t = page.evaluate("performance.now()")
        page.get_by_role("combobox", name="Run", exact=True).click()
        page.keyboard.type(run)  # the list shows a screenful of runs: filter it to this one
        page.get_by_role("option", name=re.compile("^" + re.escape(run) + " ")).first.click()
        page.wait_for_function(f"() => document.querySelector(`input[aria-label='Run']`)"
                               f".value.startsWith('{run}')", timeout=TIMEOUT_MS)
        page.wait_for_timeout(150)  # the rerun starts
        out[run] = round((last_change_ms(page) - t) / 1000, 2)
        print("switch", run, out[run], flush=True)
    return out


def switch_rounds(browser, rounds: int, module=None) -> dict:
    """Run switches (:func:`run_switches`) on a fresh server per round, in a fresh browser
    context (nothing cached): each round's switches are the first to each run in that
    server. ``module``: another checkout's benchmarks/app_browser.py (its app, its pages'
    settled test), else this one. Median and every value per run, and the load."""
    module = module or sys.modules[__name__]
    every, loads = {}, []
    for _ in range(rounds):
        port = module.free_port()
        proc = module.serve(port)
        ctx = browser.new_context(viewport={"width": 1400, "height": 900})
        try:
            loads.append(round(os.getloadavg()[0], 2))
            for run, t in module.run_switches(ctx.new_page(), f"http://localhost:{port}").items():
                every.setdefault(run, []).append(t)
        finally:
            ctx.close()
            module.stop(proc)
    return {"median_s": {run: statistics.median(v) for run, v in every.items()},
            "all_s": every, "load_avg": loads}


def paired_switches(browser, baseline: Path, rounds: int) -> dict:
    """:func:`switch_rounds` of this checkout and of ``baseline`` (another checkout of
    genlab, e.g. a `git worktree` of an older commit, run with its own app_browser.py),
    round by round in turn, so that both see the same load."""
    import importlib.util

    spec = importlib.util.spec_from_file_location("baseline_app_browser", baseline / "benchmarks" / "app_browser.py")
    other = importlib.util.module_from_spec(spec)
    path = list(sys.path)
    spec.loader.exec_module(other)
    sys.path[:] = path  # it put its own checkout first
    rev = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=baseline, capture_output=True,
                         text=True).stdout.strip()
    if os.environ.get("GENLAB_DATA"):  # the other server runs in its own checkout
        os.environ["GENLAB_DATA"] = str(Path(os.environ["GENLAB_DATA"]).resolve())
    out = {"baseline_rev": rev, "rounds": rounds, "baseline": [], "this": []}
    for _ in range(rounds):
        out["baseline"].append(switch_rounds(browser, 1, other))
        out["this"].append(switch_rounds(browser, 1))
    for key in ("baseline", "this"):
        every = {}
        for r in out[key]:
            for run, v in r["all_s"].items():
                every.setdefault(run, []).extend(v)
        out[key] = {"median_s": {run: statistics.median(v) for run, v in every.items()}, "all_s": every,
                    "load_avg": [r["load_avg"][0] for r in out[key]]}
    print("paired run switches", out, flush=True)
    return out


def first_visits(browser, pages, rounds: int, launcher: str = "python app.py",
                 browser_cache: bool = False) -> dict:
    """Each page's first visit after a server start (a fresh server per visit, opened as soon
    as it answers its health check): median and every value, with the load average, and
    the median time from the launch command to the page drawn (server start included).

    Each visit is a new browser context on a new port: nothing cached, a person's first
    visit ever. With ``browser_cache``, the page is first opened once on a server that is
    then stopped, and the measured visit is to a new server on the same port in the same
    browser context: a server restarted under a browser that has seen the app before (its
    HTTP and script caches hold Streamlit's JavaScript and its charts')."""
    out = {}
    for spec in pages:
        times, totals, loads = [], [], []
        for _ in range(rounds):
            port = free_port()
            ctx = browser.new_context(viewport={"width": 1400, "height": 900})
            if browser_cache:
                proc = serve(port, launcher)
                try:
                    first_render(ctx.new_page(), f"http://localhost:{port}/{spec.url_path}")
                finally:
                    stop(proc)
            t0 = time.perf_counter()
            proc = serve(port, launcher)
            try:
                page = ctx.new_page()
                loads.append(round(os.getloadavg()[0], 2))
                times.append(first_render(page, f"http://localhost:{port}/{spec.url_path}"))
                totals.append(round(time.perf_counter() - t0, 2))
            finally:
                stop(proc)
                ctx.close()
        median = statistics.median(times)
        goal = GOALS["home_first_visit_s" if spec.url_path == "" else "first_visit_s"]
        out[spec.title] = {"median_s": median, "all_s": times, "load_avg": loads,
                           "from_launch_s": statistics.median(totals), "imports_s": import_seconds(),
                           "goal_s": goal, "met": median <= goal}
        print("first visit", spec.title, out[spec.title], flush=True)
    return out


def stop(proc) -> None:
    proc.terminate()
    try:
        proc.wait(20)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def import_seconds() -> float:
    """Wall seconds a fresh Python takes to import torch, torchvision, plotly, scikit-learn's
    mixture and the genlab modules: a gauge of the machine's load, the same set since it
    was first reported (the app no longer imports plotly), so its figures compare."""
    t = time.perf_counter()
    subprocess.run([sys.executable, "-c", "import torch, torchvision, plotly.graph_objects, "
                    "sklearn.mixture, genlab.evaluation.explore, genlab.evaluation.compare, "
                    "genlab.training.train"], cwd=REPO, check=True)
    return round(time.perf_counter() - t, 2)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("localhost", 0))
        return s.getsockname()[1]


def open_run(page, base: str, run: str) -> None:
    """The Latent explorer on ``run`` (typed into the picker first: the list is long)."""
    page.goto(f"{base}/latent", timeout=TIMEOUT_MS)
    settle(page)
    pick_run(page, run)


def pick_run(page, run: str, label: str = "Run") -> None:
    """Pick ``run`` in the open page's run picker (the selectbox ``label``) and wait for the
    page to draw it."""
    page.get_by_role("combobox", name=label, exact=True).click()
    page.keyboard.type(run)
    page.get_by_role("option", name=re.compile("^" + re.escape(run))).first.click()
    page.wait_for_function(f"() => document.querySelector(`input[aria-label='{label}']`)"
                           f".value.startsWith('{run}')", timeout=TIMEOUT_MS)
    page.wait_for_timeout(150)
    settle(page)


def slider_moves(page, base: str, run: str, n: int = 8) -> dict:
    open_run(page, base, run)
    server, trip = slider_trips(page, n)
    median = round(statistics.median(server), 1)
    return {"server_ms": {"median": median, "max": round(max(server), 1),
                          "goal": GOALS["slider_server_ms"], "met": median <= GOALS["slider_server_ms"]},
            "browser_round_trip_ms": {"median": round(statistics.median(trip)), "max": round(max(trip))}}


def slider_trips(page, n: int = 8) -> tuple[list[float], list[float]]:
    """``n`` slider moves on the open Latent explorer (the server decoding): each move's
    "server time" and its round trip in the browser, key press to new image on screen (ms)."""
    live = page.get_by_text("Decode in the browser while dragging")  # issue 15: the server path
    if live.count() and page.locator('[data-testid="stImage"]:has-text("decode(z)")').count() == 0:
        live.click()
        page.wait_for_function(f"() => {SERVER_TIME}", timeout=TIMEOUT_MS)
        settle(page)
    thumb = page.locator('input[type="range"][aria-label^="z"], input[type="range"][aria-label^="PC "]').first
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
    return server, trip


# in the decoder component's frame: random codes through the sliders' input events, each
# event's handler timed (it decodes and draws before it returns)
DECODE_JS = """([n, seed]) => {
    let s = seed;
    const rnd = () => { s = (s * 1103515245 + 12345) % 2147483648; return s / 2147483648; };
    const inputs = [...document.querySelectorAll('input[type=range]')];
    const ms = [];
    for (let t = 0; t < n; t++) {
        for (const el of inputs) el.value = String(Number(el.min) + rnd() * (Number(el.max) - Number(el.min)));
        const t0 = performance.now();
        inputs.forEach(el => el.dispatchEvent(new Event('input', { bubbles: true })));
        ms.push((performance.now() - t0) / inputs.length);
    }
    return ms; }"""


def browser_decoder(page, base: str, run: str, n: int = 40) -> dict:
    """The browser decoder on ``run``: milliseconds from an input event to new pixels."""
    open_run(page, base, run)
    if not page.query_selector('iframe[title*="latent_decoder"]'):
        page.get_by_text("Decode in the browser while dragging").click()
    page.wait_for_selector('iframe[title*="latent_decoder"]', timeout=TIMEOUT_MS)
    frame = next(f for f in page.frames if "latent_decoder" in f.url)
    frame.wait_for_function("() => Number(document.getElementById('out').dataset.draws || 0) > 0",
                            timeout=TIMEOUT_MS)
    ms = frame.evaluate(DECODE_JS, [n, 12345])
    median = round(statistics.median(ms), 2)
    return {"median_ms": median, "max_ms": round(max(ms), 2), "n": n,
            "goal_ms": GOALS["browser_decode_ms"], "met": median <= GOALS["browser_decode_ms"]}


def missed(out: dict) -> list[str]:
    """Every figure over its goal, one line each."""
    lines = [f"first visit {title}: {v['median_s']} s (goal {v['goal_s']} s)"
             for key in ("first_visits", "first_visits_streamlit_run", "first_visits_browser_cache")
             for title, v in out.get(key, {}).items() if not v["met"]]
    lines += [f"slider {run}: server {v['server_ms']['median']} ms (goal {v['server_ms']['goal']} ms)"
              for run, v in out["sliders"].items() if not v["server_ms"]["met"]]
    lines += [f"browser decoder {run}: {v['median_ms']} ms (goal {v['goal_ms']} ms)"
              for run, v in out["browser_decoder"].items() if not v["met"]]
    return lines


def main(slider_runs: list[str], rounds: int = 3,
         decoder_runs: tuple[str, ...] = ("vae-2d-mnist", "gan-mnist"),
         baseline: Path | None = None, switch_only: bool = False) -> dict:
    from playwright.sync_api import sync_playwright

    from pages import PAGES

    port = free_port()
    base = f"http://localhost:{port}"
    out = {"machine": platform.processor() or platform.machine(), "cpus": os.cpu_count(),
           "omp_num_threads": os.environ.get("OMP_NUM_THREADS", "unset"),
           "load_avg": os.getloadavg()[0], "goals": GOALS, "first_visits": {}, "pages": {},
           "sliders": {}, "browser_decoder": {}}
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path="/usr/bin/chromium", args=[
            "--no-sandbox", "--disable-gpu", "--disable-background-networking"])
        if baseline is not None:
            out["run_switches_paired"] = paired_switches(browser, baseline, max(rounds, 1))
        if switch_only:
            browser.close()
            return out
        for launcher in LAUNCHERS if rounds else ():  # paired, page by page
            key = "first_visits" if launcher == "python app.py" else "first_visits_streamlit_run"
            out[key] = first_visits(browser, PAGES, rounds, launcher)
        if rounds:
            out["first_visits_browser_cache"] = first_visits(browser, PAGES, rounds, browser_cache=True)
        proc = serve(port)
        try:
            page = browser.new_page(viewport={"width": 1400, "height": 900})
            for spec in sorted(PAGES, key=lambda s: s.url_path == ""):  # Home last: cold too
                url = f"{base}/{spec.url_path}"
                out["pages"][spec.title] = {"cold_s": first_render(page, url),
                                            "cached_s": first_render(page, url)}
                print(spec.title, out["pages"][spec.title], flush=True)
            homes = []
            for _ in range(5):  # a fresh session each: a new tab on Home
                tab = browser.new_page(viewport={"width": 1400, "height": 900})
                homes.append(first_render(tab, base))
                tab.close()
            out["fresh_home_s"] = {"median": statistics.median(homes), "all": homes,
                                   "load_avg": os.getloadavg()[0]}
            print("fresh Home", out["fresh_home_s"], flush=True)
            out["run_switch_s"] = run_switches(page, base)
            out["run_switch_s"]["load_avg"] = os.getloadavg()[0]
            for run in slider_runs:
                out["sliders"][run] = slider_moves(page, base, run)
                print(run, out["sliders"][run], flush=True)
            for run in decoder_runs:
                out["browser_decoder"][run] = browser_decoder(page, base, run)
                print("browser decoder", run, out["browser_decoder"][run], flush=True)
        finally:
            stop(proc)
        browser.close()
    out["load_avg_end"] = os.getloadavg()[0]
    out["over_goal"] = missed(out)
    print("over their goals:" if out["over_goal"] else "every figure met its goal",
          *out["over_goal"], sep="\n  ")
    path = REPO / "benchmarks" / "results" / "app_browser.json"
    path.write_text(json.dumps(out, indent=1) + "\n")
    return out


if __name__ == "__main__":
    import argparse

    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--rounds", type=int, default=3, help="fresh servers per page for the first visits")
    ap.add_argument("--sliders", nargs="*", default=[], metavar="RUN",
                    help="runs whose Latent explorer slider to time (e.g. vae-2d-mnist realnvp-mnist)")
    ap.add_argument("--decoders", nargs="*", default=["vae-2d-mnist", "gan-mnist"], metavar="RUN",
                    help="runs whose browser decoder to time (an MLP decoder: the VAEs, the MLP GAN)")
    ap.add_argument("--baseline", type=Path, metavar="CHECKOUT",
                    help="another checkout of genlab (a git worktree of an older commit): its run "
                         "switches are timed round by round beside this one's, written to "
                         "benchmarks/results/app_browser-switches.json")
    a = ap.parse_args()
    if a.baseline:  # the paired comparison alone: its own file, the other figures untouched
        paired = main([], a.rounds, (), a.baseline, switch_only=True)
        paired["load_avg_end"] = os.getloadavg()[0]
        (REPO / "benchmarks" / "results" / "app_browser-switches.json").write_text(json.dumps(paired, indent=1) + "\n")
    else:
        main(a.sliders, a.rounds, tuple(a.decoders))
