"""A classroom on one server: `python app.py` (what `make run` does), two real CPU
trainings beside it, and N people at once in headless Chromium (Playwright), each on the
same scripted tour; then a soak, the tour on a loop, watching the server's memory.

The tour, in each session (one browser, a context per session, driven concurrently from a
thread each that connects its own Playwright to the browser over CDP, so the helpers of
benchmarks/app_browser.py drive it): Home opened by its URL; the Latent explorer (a click
in the sidebar, as every later page) on ``--latent-runs`` with ``--slider-moves`` keyboard
moves of a slider, the server decoding; Compare with ``--k-changes`` moves of the bound's
k; the True posterior on ``--posterior-run`` with ``--posterior-picks`` test images typed
in (each session its own images); the 2-D lab playing for ``--lab-seconds``, then paused.
The trainings (a 2-D VAE and a RealNVP on MNIST, ``--train-limit`` images an epoch, run
by genlab.runs.jobs.start_train in a temporary run folder the server lists first, beside
the shipped runs) are restarted if they end and stopped at the end; Home lists them and
Compare shows one beside the session's run, its checkpoint changing under it.

1. the load (``--sessions 1,4,8``): one server for every N, a one-session tour first to
   warm it (``warmup``, figures of a cold server; ``--no-warmup`` skips it), then each N in
   turn. Written after each N, so a cut-off run keeps what it did (``--resume`` goes on
   from the Ns already in the file, on a fresh server):

    GENLAB_DATA=../shared/datasets OMP_NUM_THREADS=1 .venv/bin/python benchmarks/app_load.py --sessions 1,4,8

2. the soak (``--soak-only --soak-minutes 30 --soak-sessions 2``): a fresh server, the
   tour on a loop with new sessions each loop (the contexts closed at its end), until the
   minutes are up (two loops at least); then, everyone gone, ``--release-wait`` seconds
   (past Streamlit's server.disconnectedSessionTTL, 120 s) to see what the closed sessions
   give back. Written after each loop:

    GENLAB_DATA=../shared/datasets OMP_NUM_THREADS=1 .venv/bin/python benchmarks/app_load.py --soak-only --soak-minutes 30 --soak-sessions 2

The figures, per N (app_load.json, ``by_sessions``):
- ``slider_round_trip_ms``: key press on a Latent explorer slider to the new image on
  screen (app_browser.slider_trips), every move of every session pooled: median, p95;
  ``slider_server_ms`` the page's own "server time" of the same moves;
- ``page_switch_s``: a click on a page in the sidebar to that page drawn and quiet for
  0.8 s (app_browser.last_change_ms), every switch pooled, and per page; ``home_s`` Home's
  first visit (a new session); ``k_change_s`` and ``posterior_pick_s`` a k move and a test
  image typed in to the page redrawn; ``lab_steps_per_s`` each session's lab steps a second;
- ``errors``: what any page showed or the browser said: an exception box
  (``[data-testid="stException"]``), an error alert, a console error, an uncaught error, a
  failed request, a page crash, an image not drawn, a step that failed (its first line),
  each with the session, the page and the text; a console error or failed request naming a
  /media/ file is counted apart (``media_misses``): Streamlit drops a script run's media when
  the next run ends, so a slider key pressed again can outrun an image (an image that did
  not load at the end of a step is an error);
- ``server_rss_mb``: the server process's resident set (psutil, the server's own process,
  no children, sampled every 0.5 s; ``rss_source`` says which was used): peak during the
  N's tours, with every session still open after them, once their contexts closed, and
  VmHWM (the process's peak since it started);
- ``cpu_s_per_session_minute``: the server's CPU seconds (utime + stime of /proc/PID/stat,
  every thread) during the tours over sessions x wall minutes;
- ``streamlit_metrics_sessions_open`` and ``streamlit_metrics`` (after the contexts closed):
  Streamlit's /_stcore/metrics (it has them in 1.67): cache_memory_bytes per cache
  (st.cache_data in serialized bytes; st.cache_resource and st_session_state are item
  counts unless the server runs with server.enableExpensiveMemoryStats, which the soak
  turns on: ``--fast-memory-stats`` leaves it off; session state is that of the connected
  sessions only), the media store's bytes, the session counts.

The soak (app_load-soak.json, app_load-soak.png: the RSS curve, the loops' ends marked):
per loop the same figures, the RSS after it and Streamlit's metrics; ``rss_growth`` from the
end of the first loop to the end of the last (each loop's sessions closed); ``release``: RSS,
active sessions and the media store every 5 s after the last sessions closed, and the
server's CPU then.
By default each loop repeats the same tour (the same test images), so growth after the
first loop is state that is never given back, not caches filling with new keys, but for the
trainings' new checkpoints, which add entries up to each cache's max_entries
(``--soak-fresh-images``: new images each loop, what a class does).

The goals (``GOALS``) sit beside the figures and each figure with one says whether it met
it: no error at any N; the p95 slider round trip at the largest N (8) within 4x of N = 1;
the soak's RSS growth after the first loop under 10 %. ``--out DIR`` writes the files
elsewhere (benchmarks/results by default; a smoke run belongs under a temporary folder).
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import re
import shutil
import statistics
import tempfile
import threading
import time
import urllib.request
from pathlib import Path

import app_browser as ab  # benchmarks/ (this script's folder); it puts the repository on sys.path

REPO = ab.REPO
GOALS = {"errors": 0,  # issue 30, item 1: no error in any page at any N
         "slider_p95_ratio": 4.0,  # p95 slider round trip at the largest N (8) over N = 1
         "soak_rss_growth": 0.10}  # issue 30, item 2: RSS after the last loop over after the first
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking"]
VIEWPORT = {"width": 1400, "height": 900}
TRAININGS = (("load-vae-2d", "vae", {"latent_dim": 2}), ("load-realnvp", "realnvp", {}))
K_LABEL = "importance samples k"
POSTERIOR_LABEL = "Run (VAEs with a 2-D latent)"
STEP_RE = re.compile(r"^step (\d+)")
MB = 2 ** 20
TRACEBACK_LINES = 40
PLACES: dict[str, str] = {str(REPO): "."}  # this machine's folders, as the results name them


def scrub(text: str) -> str:
    """``text`` with this machine's folders (the checkout, the temporary folder) replaced
    by names that hold anywhere: the results never carry a path of this machine."""
    for where, name in sorted(PLACES.items(), key=lambda kv: -len(kv[0])):
        text = text.replace(where, name)
    return text


# -- the server: memory, CPU, Streamlit's own figures -----------------------------------
def cpu_seconds(pid: int) -> float:
    """utime + stime of /proc/PID/stat (every thread of the process), in seconds."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()  # from field 3 (state) on
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def proc_status_kb(pid: int, key: str) -> int | None:
    """A "kB" line of /proc/PID/status (VmRSS, VmHWM), in kB."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith(key + ":"):
                return int(line.split()[1])
    except OSError:
        return None
    return None


class RssSampler(threading.Thread):
    """The server process's resident set every ``every`` seconds (psutil when installed,
    else VmRSS of /proc/PID/status): the server's own process, no children."""

    def __init__(self, pid: int, every: float = 0.5):
        super().__init__(daemon=True)
        self.pid, self.every, self.t0 = pid, every, time.time()
        self.samples: list[tuple[float, int]] = []  # (seconds since start, bytes)
        self.done = threading.Event()
        try:
            import psutil
            proc = psutil.Process(pid)
            self.read = lambda: proc.memory_info().rss
            self.source = "psutil.Process(server).memory_info().rss, the server process only, every 0.5 s"
        except ImportError:
            self.read = lambda: 1024 * (proc_status_kb(pid, "VmRSS") or 0)
            self.source = "VmRSS of /proc/PID/status, the server process only, every 0.5 s"

    def run(self) -> None:
        while not self.done.wait(self.every):
            self.sample()

    def sample(self) -> int:
        try:
            rss = self.read()
        except Exception:  # the server is gone
            return 0
        self.samples.append((time.time() - self.t0, rss))
        return rss

    def peak(self, since: float) -> int:
        """The highest sample since ``since`` (a time.time())."""
        return max((r for t, r in self.samples if t >= since - self.t0), default=self.sample())

    def curve(self, every: float = 2.0) -> list[list[float]]:
        """[seconds, MB] about every ``every`` seconds."""
        out, last = [], -every
        for t, r in self.samples:
            if t - last >= every:
                out.append([round(t, 1), round(r / MB, 1)])
                last = t
        return out


METRIC_RE = re.compile(r"^(\w+)(?:\{(.*)\})? (\S+)$")


def streamlit_metrics(base: str) -> dict | None:
    """Streamlit's /_stcore/metrics (OpenMetrics text): cache_memory_bytes per cache type
    and cache, their totals per type, and the session gauges; None when it does not answer."""
    try:
        with urllib.request.urlopen(f"{base}/_stcore/metrics", timeout=60) as r:
            text = r.read().decode()
    except OSError as e:
        return {"unavailable": str(e)}
    out: dict = {"cache_memory_bytes": {}, "cache_memory_totals": {}, "sessions": {}}
    for line in text.splitlines():
        m = METRIC_RE.match(line)
        if not m or line.startswith("#"):
            continue
        name, labels, value = m[1], dict(re.findall(r'(\w+)="([^"]*)"', m[2] or "")), float(m[3])
        if name == "cache_memory_bytes":
            kind = labels.get("cache_type", "")
            out["cache_memory_bytes"].setdefault(kind, {})[labels.get("cache") or kind] = value
            out["cache_memory_totals"][kind] = out["cache_memory_totals"].get(kind, 0) + value
        elif name.startswith(("active_sessions", "session_events", "session_duration")):
            key = name + "".join(f"[{v}]" for k, v in sorted(labels.items()) if k != "le")
            if "le" not in labels:  # the histogram's buckets left out
                out["sessions"][key] = value
    return out


def tracebacks(log: Path, seen: int = 0) -> tuple[list[str], int]:
    """The tracebacks in the server's log after its first ``seen`` characters (each up
    to TRACEBACK_LINES lines), and the log's length now."""
    try:
        text = log.read_text(errors="replace")
    except OSError:
        return [], seen
    blocks = []
    for part in text[seen:].split("Traceback (most recent call last):")[1:]:
        lines = part.strip("\n").splitlines()
        end = next((i + 1 for i, line in enumerate(lines) if line and not line[0].isspace()), len(lines))
        blocks.append(scrub("Traceback (most recent call last):\n" + "\n".join(lines[:min(end, TRACEBACK_LINES)])))
    return blocks, len(text)


class Server:
    """`python app.py` on a free port listing ``runs`` (GENLAB_RUNS), its output in ``log``."""

    def __init__(self, runs: str, log: Path, args: tuple[str, ...] = ()):
        self.port = ab.free_port()
        self.base = f"http://localhost:{self.port}"
        self.log_path = log
        self.log = open(log, "w")
        self.proc = ab.serve(self.port, runs=runs, args=args, log=self.log)
        self.pid = self.proc.pid
        self.sampler = RssSampler(self.pid)
        self.sampler.start()
        self.log_seen = 0

    def new_tracebacks(self) -> list[str]:
        blocks, self.log_seen = tracebacks(self.log_path, self.log_seen)
        return blocks

    def close(self) -> None:
        self.sampler.done.set()
        ab.stop(self.proc)
        self.log.close()


# -- the trainings beside it ---------------------------------------------------------------
class Trainings:
    """Two small real CPU trainings in ``root`` (genlab.runs.jobs.start_train), each
    restarted (a new run folder) whenever it ends, until :meth:`stop`."""

    def __init__(self, root: Path, limit: int):
        from genlab.runs import jobs

        self.jobs, self.root = jobs, root
        self.specs = []
        for name, model, values in TRAININGS:
            model_cfg, train_cfg = jobs.check_train(model, "mnist", values, {
                "limit": limit, "epochs": 100_000, "max_minutes": 0.0, "device": "cpu"})
            self.specs.append((name, model, model_cfg, train_cfg))
        self.runs: dict[str, list[Path]] = {name: [] for name, *_ in self.specs}
        self.done = threading.Event()
        self.watcher = threading.Thread(target=self._watch, daemon=True)

    def start(self) -> None:
        for spec in self.specs:
            self._start(*spec)
        self.watcher.start()

    def _start(self, name, model, model_cfg, train_cfg) -> None:
        self.runs[name].append(self.jobs.start_train(self.root, name, model, model_cfg, train_cfg))
        print(f"training {self.runs[name][-1].name} started", flush=True)

    def _watch(self) -> None:
        from genlab.runs import status

        while not self.done.wait(5.0):
            for spec in self.specs:
                job = status.read_job(self.runs[spec[0]][-1])
                if not self.done.is_set() and (job is None or not job.alive):
                    self._start(*spec)

    def report(self) -> dict:
        """Each training's run folders: state and epoch (status.json), the last log line."""
        from genlab.runs import store

        out = {}
        for name, runs in self.runs.items():
            out[name] = []
            for run in runs:
                st = store.read_json(run / store.STATUS) or {}
                log = (run / self.jobs.TRAIN_LOG).read_text(errors="replace").strip().splitlines() \
                    if (run / self.jobs.TRAIN_LOG).exists() else []
                out[name].append({"run": run.name, "state": st.get("state"), "epoch": st.get("epoch"),
                                  "log_tail": scrub(log[-1][:300]) if log else ""})
        return out

    def stop(self) -> None:
        self.done.set()
        for runs in self.runs.values():
            for run in runs:
                if self.jobs.stop(run):
                    self.jobs.wait(run, 60)


# -- one session's tour --------------------------------------------------------------------
CHECK_JS = """() => ({
    exception: [...document.querySelectorAll('[data-testid="stException"]')].map(e => e.innerText.slice(0, 4000)),
    alert: [...document.querySelectorAll('[data-testid="stAlertContentError"]')]
        .filter(e => !e.closest('[data-testid="stException"]')).map(e => e.innerText.slice(0, 1000)),
    image: [...document.images].filter(i => i.complete && i.naturalWidth === 0).map(i => i.src)})"""


class Session:
    """What one session saw: its timings and its errors."""

    def __init__(self, index: int):
        self.index = index
        self.where = "start"
        self.slider_ms: list[float] = []
        self.slider_server_ms: list[float] = []
        self.switch_s: dict[str, float] = {}
        self.k_change_s: list[float] = []
        self.posterior_pick_s: list[float] = []
        self.lab_steps_per_s: float | None = None
        self.home_s: float | None = None
        self.errors: list[dict] = []
        self.media_misses = 0
        self.crashed = False
        self.finished = threading.Event()  # the tour is over (the context still open)
        self._seen: set[tuple[str, str]] = set()

    def error(self, kind: str, text: str) -> None:
        text = scrub(text)
        if (kind, text) not in self._seen:
            self._seen.add((kind, text))
            self.errors.append({"session": self.index, "page": self.where, "kind": kind, "text": text})
            print(f"  session {self.index} {self.where}: {kind}: {text[:300]}", flush=True)

    def watch(self, page) -> None:
        def console(m):
            if m.type == "error":
                where = m.location.get("url") or ""
                if "/media/" in m.text or "/media/" in where:
                    self.media_misses += 1
                else:
                    self.error("console error", f"{m.text} ({where})")

        def response(r):
            if r.status >= 400:
                if "/media/" in r.url:
                    self.media_misses += 1
                else:
                    self.error("failed request", f"HTTP {r.status} {r.url}")

        def crash(_):
            self.crashed = True
            self.error("page crash", "the page crashed")

        page.on("console", console)
        page.on("pageerror", lambda e: self.error("uncaught error", str(e)[:2000]))
        page.on("response", response)
        page.on("crash", crash)

    def check(self, page) -> None:
        if self.crashed:
            return
        try:
            seen = page.evaluate(CHECK_JS)
        except Exception as e:
            self.error("page unreadable", first_line(e))
            return
        for kind, texts in seen.items():
            for text in texts:
                self.error({"exception": "exception box", "alert": "error alert",
                            "image": "image not drawn"}[kind], text)


def first_line(e: BaseException) -> str:
    return (str(e).strip().splitlines() or [type(e).__name__])[0][:500]


class PageRaised(RuntimeError):
    """The page showed an exception box instead of its title (Session.check records it)."""


def switch(page, url_path: str, title: str) -> float:
    """Seconds from a click on the page's link in the sidebar to the page drawn and quiet."""
    t0 = page.evaluate("performance.now()")
    page.locator(f'[data-testid="stSidebarNav"] a[href$="/{url_path}"]').first.click()
    h1 = f'[data-testid="stMainBlockContainer"] h1:has-text("{title}")'
    page.wait_for_selector(f'{h1}, [data-testid="stException"]', timeout=ab.TIMEOUT_MS)
    if not page.query_selector(h1):
        page.wait_for_selector(ab.IDLE, timeout=ab.TIMEOUT_MS)
        if not page.query_selector(h1):
            raise PageRaised(title)
    return round((ab.last_change_ms(page) - t0) / 1000, 2)


def timed(page, act, done_js: str, arg) -> float:
    """Seconds from ``act()`` to ``done_js(arg)`` holding and the page drawn and quiet."""
    t0 = page.evaluate("performance.now()")
    act()
    page.wait_for_function(done_js, arg=arg, timeout=ab.TIMEOUT_MS)
    page.wait_for_timeout(150)  # the rerun's last deltas
    return round((ab.last_change_ms(page) - t0) / 1000, 2)


def lab_steps(page) -> list[int]:
    texts = page.locator('[data-testid="stMarkdownContainer"] p').all_inner_texts()
    return [int(m[1]) for m in map(STEP_RE.match, texts) if m]


HAS_COLUMN = """k => [...document.querySelectorAll('[data-testid="stTable"] th')]
                        .some(h => h.innerText.trim() === 'L_' + k)"""
METRIC_CHANGED = "b => document.querySelector('[data-testid=\"stMetric\"]')?.innerText !== b"


def tour(page, base: str, plan: dict, s: Session, images: list[int]) -> None:
    """Home, Latent explorer, Compare, True posterior, 2-D lab (see the module's docstring)."""
    from genlab.evaluation.compare import K_CHOICES

    def home():
        s.home_s = ab.first_render(page, base)

    def latent():
        s.switch_s["Latent explorer"] = switch(page, "latent", "Latent explorer")
        runs = plan["latent_runs"]
        ab.pick_run(page, runs[s.index % len(runs)])
        server, trip = ab.slider_trips(page, plan["slider_moves"])
        s.slider_server_ms += server
        s.slider_ms += trip

    def compare():
        s.switch_s["Compare"] = switch(page, "compare", "Compare")
        thumb = page.locator(f'input[type="range"][aria-label="{K_LABEL}"]').first
        k = 10  # the page's default
        for _ in range(plan["k_changes"]):
            k = K_CHOICES[K_CHOICES.index(k) + 1]
            s.k_change_s.append(timed(page, lambda: (thumb.focus(), thumb.press("ArrowRight")),
                                      HAS_COLUMN, k))

    def posterior():
        s.switch_s["True posterior"] = switch(page, "posterior", "True posterior")
        ab.pick_run(page, plan["posterior_run"], label=POSTERIOR_LABEL)
        box = page.get_by_label(re.compile(r"^Test image \(0-"))
        for index in images:
            before = page.locator('[data-testid="stMetric"]').first.inner_text()
            s.posterior_pick_s.append(timed(page, lambda: (box.fill(str(index)), box.press("Enter")),
                                            METRIC_CHANGED, before))

    def lab():
        s.switch_s["2-D lab"] = switch(page, "lab", "2-D lab")
        before = lab_steps(page)
        page.get_by_role("button", name="Play").click()
        t0 = time.perf_counter()
        page.wait_for_timeout(1000 * plan["lab_seconds"])
        after = lab_steps(page)
        played = time.perf_counter() - t0
        page.get_by_role("button", name="Pause").click()
        page.get_by_role("button", name="Play").wait_for(timeout=ab.TIMEOUT_MS)
        ab.settle(page)
        if before and after:
            s.lab_steps_per_s = round((min(after) - min(before)) / played, 1)

    for name, step in (("Home", home), ("Latent explorer", latent), ("Compare", compare),
                       ("True posterior", posterior), ("2-D lab", lab)):
        s.where = name
        try:
            step()
        except PageRaised:
            pass
        except Exception as e:  # a timeout, a widget not found: the tour goes on
            s.error("step failed", first_line(e))
        s.check(page)
        if s.crashed:
            break


def posterior_images(round_id: int, session: int, picks: int) -> list[int]:
    """Test images (1-499, never 0: the page opens on 0) for a session, different for each
    session and round."""
    return [1 + (37 * (16 * round_id + session) + 11 * j) % 499 for j in range(picks)]


def run_session(endpoint: str, base: str, plan: dict, s: Session, images: list[int],
                ready: threading.Barrier, may_close: threading.Event) -> None:
    """One session in its own thread: its own Playwright, connected to the shared browser,
    a new context (nothing shared with the other sessions), the tour; the context is
    closed once ``may_close`` is set (the server is looked at with every session open)."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        try:
            ctx = p.chromium.connect_over_cdp(endpoint).new_context(viewport=VIEWPORT)
            page = ctx.new_page()
            s.watch(page)
        except Exception as e:
            s.error("session failed to start", first_line(e))
            s.finished.set()
            ready.abort()
            return
        try:
            ready.wait(timeout=300)
            tour(page, base, plan, s, images)
        except threading.BrokenBarrierError:
            s.error("session failed to start", "another session could not start")
        finally:
            s.finished.set()
            may_close.wait(timeout=600)
            ctx.close()


def pct(values: list[float], q: float) -> float | None:
    if not values:
        return None
    import numpy as np
    return float(np.percentile(values, q))


def spread(values: list[float], digits: int = 2) -> dict:
    """median, p95, max and count of ``values``."""
    if not values:
        return {"median": None, "p95": None, "max": None, "n": 0}
    return {"median": round(statistics.median(values), digits), "p95": round(pct(values, 95), digits),
            "max": round(max(values), digits), "n": len(values)}


def tours(endpoint: str, server: Server, plan: dict, n: int, round_id: int) -> dict:
    """``n`` sessions on the tour at once; their figures pooled, with the server's memory
    and CPU over the time they took."""
    sessions = [Session(i) for i in range(n)]
    ready, may_close = threading.Barrier(n + 1), threading.Event()
    threads = [threading.Thread(target=run_session, daemon=True, args=(
        endpoint, server.base, plan, s, posterior_images(round_id, s.index, plan["posterior_picks"]),
        ready, may_close)) for s in sessions]
    for t in threads:
        t.start()
    try:
        ready.wait(timeout=300)
    except threading.BrokenBarrierError:
        pass
    t0, cpu0, load0 = time.time(), cpu_seconds(server.pid), os.getloadavg()[0]
    for s in sessions:
        s.finished.wait()
    wall, cpu = time.time() - t0, cpu_seconds(server.pid) - cpu0
    open_rss, open_metrics = server.sampler.sample(), streamlit_metrics(server.base)  # all still open
    may_close.set()
    for t in threads:
        t.join()
    errors = [e for s in sessions for e in s.errors]
    for tb in server.new_tracebacks():
        errors.append({"session": None, "page": "server log", "kind": "server traceback", "text": tb})
    switches = [v for s in sessions for v in s.switch_s.values()]
    by_page = {}
    for s in sessions:
        for page, v in s.switch_s.items():
            by_page.setdefault(page, []).append(v)
    hwm = proc_status_kb(server.pid, "VmHWM")
    return {
        "sessions": n, "wall_s": round(wall, 1), "load_avg": [round(load0, 2), round(os.getloadavg()[0], 2)],
        "slider_round_trip_ms": spread([round(v) for s in sessions for v in s.slider_ms], 0),
        "slider_server_ms": spread([v for s in sessions for v in s.slider_server_ms], 1),
        "page_switch_s": {**spread(switches), "by_page": {p: spread(v) for p, v in by_page.items()}},
        "home_s": spread([s.home_s for s in sessions if s.home_s is not None]),
        "k_change_s": spread([v for s in sessions for v in s.k_change_s]),
        "posterior_pick_s": spread([v for s in sessions for v in s.posterior_pick_s]),
        "lab_steps_per_s": spread([s.lab_steps_per_s for s in sessions if s.lab_steps_per_s is not None], 1),
        "errors": {"count": len(errors), "goal": GOALS["errors"], "met": len(errors) <= GOALS["errors"],
                   "list": errors},
        "media_misses": sum(s.media_misses for s in sessions),
        "server_rss_mb": {"peak": round(server.sampler.peak(t0) / MB, 1),
                          "sessions_open": round(open_rss / MB, 1),
                          "end": round(server.sampler.sample() / MB, 1),
                          "vm_hwm": round(hwm / 1024, 1) if hwm else None},
        "server_cpu_s": round(cpu, 1),
        "cpu_s_per_session_minute": round(cpu / (n * wall / 60), 2) if wall > 0 else None,
        "streamlit_metrics_sessions_open": open_metrics,
    }


def show(label: str, r: dict) -> None:
    print(f"{label}: {r['wall_s']} s; slider round trip median {r['slider_round_trip_ms']['median']} "
          f"p95 {r['slider_round_trip_ms']['p95']} ms; page switch median {r['page_switch_s']['median']} "
          f"p95 {r['page_switch_s']['p95']} s; errors {r['errors']['count']}; RSS peak "
          f"{r['server_rss_mb']['peak']} MB; {r['cpu_s_per_session_minute']} CPU s/session-min", flush=True)


# -- the two runs --------------------------------------------------------------------------
def machine() -> dict:
    import streamlit

    return {"machine": platform.processor() or platform.machine(), "cpus": os.cpu_count(),
            "omp_num_threads": os.environ.get("OMP_NUM_THREADS", "unset"),
            "streamlit": streamlit.__version__, "load_avg_start": round(os.getloadavg()[0], 2)}


def write(path: Path, out: dict) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(out, indent=1) + "\n")
    tmp.replace(path)


def p95_ratio(by: dict) -> dict | None:
    ns = sorted(int(n) for n in by)
    if len(ns) < 2 or ns[0] != 1:
        return None
    lo, hi = by["1"]["slider_round_trip_ms"]["p95"], by[str(ns[-1])]["slider_round_trip_ms"]["p95"]
    if not lo or hi is None:
        return None
    ratio = round(hi / lo, 2)
    return {"sessions": ns[-1], "over_sessions": 1, "p95_ms": [lo, hi], "ratio": ratio,
            "goal": GOALS["slider_p95_ratio"], "met": ratio <= GOALS["slider_p95_ratio"]}


def load_run(args, plan: dict, endpoint: str, runs: str, tmp: Path, trainings) -> dict:
    path = args.out / "app_load.json"
    settings = {**plan, "train_limit": args.train_limit, "trainings": not args.no_trainings}
    out = {**machine(), "goals": GOALS, "settings": settings, "by_sessions": {}}
    if args.resume and path.exists():
        old = json.loads(path.read_text())
        if old.get("settings") != settings:
            raise SystemExit(f"--resume: {path} was written with other settings ({old.get('settings')}); "
                             "run without --resume to start again")
        out = old
    todo = [n for n in args.sessions if str(n) not in out["by_sessions"]]
    if not todo:
        print(f"every N of --sessions is in {path} already", flush=True)
        return out
    server = Server(runs, tmp / "server-load.log")
    try:
        out["rss_source"] = server.sampler.source
        out["server_rss_at_start_mb"] = round(server.sampler.sample() / MB, 1)
        if not args.no_warmup:
            out["warmup"] = tours(endpoint, server, plan, 1, 0)
            show("warm-up (1 session, a fresh server)", out["warmup"])
            write(path, out)
        for i, n in enumerate(args.sessions):
            if n not in todo:
                print(f"N = {n}: already in {path}", flush=True)
                continue
            r = tours(endpoint, server, plan, n, i + 1)
            r["streamlit_metrics"] = streamlit_metrics(server.base)
            r["trainings"] = trainings.report() if trainings else None
            out["by_sessions"][str(n)] = r
            show(f"N = {n}", r)
            out["slider_p95_ratio"] = p95_ratio(out["by_sessions"])
            out["over_goal"] = missed(out)
            out["load_avg_end"] = round(os.getloadavg()[0], 2)
            write(path, out)
    finally:
        server.close()
    print("over their goals:" if out.get("over_goal") else "every figure met its goal",
          *out.get("over_goal", []), sep="\n  ")
    print(f"wrote {path}", flush=True)
    return out


def missed(out: dict) -> list[str]:
    lines = [f"N = {n}: {r['errors']['count']} errors" for n, r in out["by_sessions"].items()
             if not r["errors"]["met"]]
    ratio = out.get("slider_p95_ratio")
    if ratio and not ratio["met"]:
        lines.append(f"p95 slider round trip at N = {ratio['sessions']}: {ratio['ratio']}x N = 1 "
                     f"(goal {ratio['goal']}x)")
    return lines


def soak_run(args, plan: dict, endpoint: str, runs: str, tmp: Path, trainings) -> dict:
    path = args.out / "app_load-soak.json"
    stats = () if args.fast_memory_stats else ("--server.enableExpensiveMemoryStats", "true")
    out = {**machine(), "goals": GOALS, "settings": {
        **plan, "soak_minutes": args.soak_minutes, "soak_sessions": args.soak_sessions,
        "fresh_images": args.soak_fresh_images, "release_wait_s": args.release_wait,
        "memory_stats": "fast" if args.fast_memory_stats else "expensive"}, "loops": []}
    server = Server(runs, tmp / "server-soak.log", stats)
    t_start = time.time()
    try:
        out["rss_source"] = server.sampler.source
        out["server_rss_at_start_mb"] = round(server.sampler.sample() / MB, 1)
        out["streamlit_metrics_at_start"] = streamlit_metrics(server.base)
        loop = 0
        while time.time() - t_start < 60 * args.soak_minutes or loop < 2:
            loop += 1
            r = tours(endpoint, server, plan, args.soak_sessions, loop if args.soak_fresh_images else 0)
            r["loop"], r["t_end_s"] = loop, round(time.time() - t_start, 1)
            r["streamlit_metrics"] = streamlit_metrics(server.base)
            out["loops"].append(r)
            show(f"soak loop {loop} (t = {r['t_end_s']} s)", r)
            soak_figures(out, server)
            write(path, out)
            draw_rss(path.with_suffix(".png"), out)
        out["release"] = release(server, args.release_wait, t_start)
        soak_figures(out, server)
        write(path, out)
        draw_rss(path.with_suffix(".png"), out)
    finally:
        server.close()
    g = out["rss_growth"]
    print(f"soak: {len(out['loops'])} loops, RSS {g['first_mb']} -> {g['last_mb']} MB after the first "
          f"loop ({g['growth']:+.1%}, goal under {GOALS['soak_rss_growth']:.0%}: "
          f"{'met' if g['met'] else 'MISSED'}); released: {out['release']['summary']}", flush=True)
    print(f"wrote {path} and {path.with_suffix('.png')}", flush=True)
    return out


def soak_figures(out: dict, server: Server) -> None:
    loops = out["loops"]
    first, last = loops[0]["server_rss_mb"]["end"], loops[-1]["server_rss_mb"]["end"]
    growth = (last - first) / first if first else 0.0
    peak = max(r["server_rss_mb"]["end"] for r in loops)
    out["rss_growth"] = {"first_mb": first, "last_mb": last, "max_after_loop_mb": peak,
                         "growth": round(growth, 4), "max_growth": round((peak - first) / first, 4) if first else 0.0,
                         "loops": len(loops), "goal": GOALS["soak_rss_growth"],
                         "met": len(loops) >= 2 and growth < GOALS["soak_rss_growth"]}
    out["errors"] = {"count": sum(r["errors"]["count"] for r in loops), "goal": GOALS["errors"]}
    out["errors"]["met"] = out["errors"]["count"] <= GOALS["errors"]
    out["rss_curve"] = server.sampler.curve()
    out["loop_ends_s"] = [r["t_end_s"] for r in loops]
    out["load_avg_end"] = round(os.getloadavg()[0], 2)
    out["over_goal"] = ([] if out["rss_growth"]["met"] else [f"RSS growth {growth:+.1%}"]) + (
        [] if out["errors"]["met"] else [f"{out['errors']['count']} errors"])


def release(server: Server, wait_s: float, t_start: float) -> dict:
    """Every session closed: RSS, active sessions and the media store every 5 s for
    ``wait_s`` seconds (Streamlit drops a closed session's state after its
    server.disconnectedSessionTTL, 120 s by default; its metrics count the session state of
    connected sessions only), and the server's CPU meanwhile (a session's lab left
    playing would show here)."""
    print(f"every session closed: watching the server for {wait_s:g} s", flush=True)
    t0, cpu0, samples = time.time(), cpu_seconds(server.pid), []
    while True:
        m = streamlit_metrics(server.base)
        samples.append({"t_s": round(time.time() - t_start, 1), "rss_mb": round(server.sampler.sample() / MB, 1),
                        "active_sessions": (m or {}).get("sessions", {}).get("active_sessions"),
                        "media_bytes": ((m or {}).get("cache_memory_totals") or {}).get("st_memory_media_file_storage")})
        if time.time() - t0 >= wait_s:
            break
        time.sleep(5.0)
    cpu = cpu_seconds(server.pid) - cpu0
    first, last = samples[0], samples[-1]
    return {"samples": samples, "streamlit_metrics": m,
            "server_cpu_s_per_s": round(cpu / max(time.time() - t0, 1e-9), 3),
            "summary": f"RSS {first['rss_mb']} -> {last['rss_mb']} MB, active sessions "
                       f"{first['active_sessions']} -> {last['active_sessions']} over {wait_s:g} s, "
                       f"server CPU {cpu / max(time.time() - t0, 1e-9):.2f} s/s"}


def draw_rss(path: Path, out: dict) -> None:
    """The RSS curve as a PNG, drawn with Pillow (no plotting library needed): MB against
    minutes, each loop's end a vertical line, the release wait shaded."""
    from PIL import Image, ImageDraw, ImageFont

    curve = out["rss_curve"]
    if len(curve) < 2:
        return
    W, H, L, R, T, B = 1000, 520, 80, 20, 60, 60
    img = Image.new("RGB", (W, H), "white")
    d = ImageDraw.Draw(img)
    font = ImageFont.load_default(size=14)
    ts, ms = [c[0] / 60 for c in curve], [c[1] for c in curve]
    x_hi = max(ts) or 1.0
    lo, hi = min(ms), max(ms)
    pad = max((hi - lo) * 0.1, 10.0)
    lo, hi = max(lo - pad, 0.0), hi + pad

    def xy(t, m):
        return L + (W - L - R) * t / x_hi, H - B - (H - T - B) * (m - lo) / (hi - lo)

    if out.get("release"):
        x0 = xy(out["loop_ends_s"][-1] / 60, lo)[0]
        d.rectangle([x0, T, W - R, H - B], fill=(238, 238, 238))
    for i in range(6):  # grid and tick labels
        m = lo + (hi - lo) * i / 5
        y = xy(0, m)[1]
        d.line([L, y, W - R, y], fill=(225, 225, 225))
        d.text((L - 8, y), f"{m:.0f}", fill="black", font=font, anchor="rm")
        t = x_hi * i / 5
        x = xy(t, lo)[0]
        d.text((x, H - B + 8), f"{t:.1f}", fill="black", font=font, anchor="mt")
    for t in out["loop_ends_s"]:
        x = xy(t / 60, lo)[0]
        d.line([x, T, x, H - B], fill=(200, 200, 255))
    d.line([xy(t, m) for t, m in zip(ts, ms)], fill=(31, 119, 180), width=2)
    d.rectangle([L, T, W - R, H - B], outline="black")
    d.text((W / 2, H - 20), "minutes since the server started", fill="black", font=font, anchor="mm")
    d.text((L - 60, T - 14), "server RSS (MB)", fill="black", font=font, anchor="lm")
    g = out.get("rss_growth", {})
    d.text((W / 2, 18), f"app_load soak: {out['settings']['soak_sessions']} sessions, "
           f"{len(out['loops'])} loops (blue lines: each loop's end; grey: all sessions closed); "
           f"growth after the first loop {g.get('growth', 0):+.1%}", fill="black", font=font, anchor="mm")
    img.save(path)


def sessions_list(text: str) -> list[int]:
    try:
        ns = [int(v) for v in text.split(",") if v.strip()]
    except ValueError:
        ns = []
    if not ns or any(not 1 <= n <= 32 for n in ns):
        raise argparse.ArgumentTypeError(f"{text!r}: give session counts from 1 to 32, comma-separated (1,4,8)")
    return ns


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--sessions", type=sessions_list, default=[1, 4, 8], metavar="N,N,...",
                    help="session counts for the load, in turn on one server (default 1,4,8)")
    ap.add_argument("--soak-minutes", type=float, default=0.0, help="minutes of soak (0: none)")
    ap.add_argument("--soak-sessions", type=int, default=2, choices=range(1, 33), metavar="N",
                    help="sessions on each soak loop (1-32, default 2)")
    ap.add_argument("--soak-only", action="store_true", help="the soak alone, no load run")
    ap.add_argument("--soak-fresh-images", action="store_true",
                    help="new posterior images each soak loop (default: the same tour every loop)")
    ap.add_argument("--release-wait", type=float, default=150.0,
                    help="seconds to watch the server after the soak's last sessions closed (default 150)")
    ap.add_argument("--fast-memory-stats", action="store_true",
                    help="the soak's server without server.enableExpensiveMemoryStats")
    ap.add_argument("--lab-seconds", type=float, default=20.0, help="seconds the 2-D lab plays (default 20)")
    ap.add_argument("--slider-moves", type=int, default=16,
                    help="slider moves per session (default 16: a p95 of N = 1 from 16 moves)")
    ap.add_argument("--k-changes", type=int, default=2, choices=range(0, 7), metavar="0-6",
                    help="moves of Compare's k, from 10 up (default 2)")
    ap.add_argument("--posterior-picks", type=int, default=2, choices=range(0, 20), metavar="0-19",
                    help="test images typed in on the True posterior per session (default 2)")
    ap.add_argument("--latent-runs", default="vae-2d-mnist",
                    help="runs for the Latent explorer's sliders, comma-separated, session i takes "
                         "the i-th (default vae-2d-mnist)")
    ap.add_argument("--posterior-run", default="vae-2d-mnist", help="the True posterior's run")
    ap.add_argument("--train-limit", type=int, default=5000, help="training images an epoch (default 5000)")
    ap.add_argument("--no-trainings", action="store_true", help="no trainings beside the server")
    ap.add_argument("--no-warmup", action="store_true", help="no one-session tour before the first N")
    ap.add_argument("--resume", action="store_true", help="keep the Ns already in app_load.json")
    ap.add_argument("--keep-tmp", action="store_true",
                    help="keep the temporary folder (the trainings' run folders, the servers' logs)")
    ap.add_argument("--out", type=Path, default=REPO / "benchmarks" / "results",
                    help="folder for app_load.json, app_load-soak.json and .png (default benchmarks/results)")
    args = ap.parse_args(argv)
    if args.slider_moves < 1 or args.lab_seconds < 0 or args.train_limit < 100:
        ap.error("--slider-moves must be at least 1, --lab-seconds at least 0, --train-limit at least 100")
    if args.soak_only and args.soak_minutes <= 0:
        ap.error("--soak-only needs --soak-minutes above 0")
    if not Path(CHROMIUM).exists():
        ap.error(f"{CHROMIUM} not found (apt-get install chromium)")
    plan = {"latent_runs": [r.strip() for r in args.latent_runs.split(",") if r.strip()],
            "posterior_run": args.posterior_run, "slider_moves": args.slider_moves,
            "k_changes": args.k_changes, "posterior_picks": args.posterior_picks,
            "lab_seconds": args.lab_seconds}
    missing = [r for r in {*plan["latent_runs"], plan["posterior_run"]}
               if not (REPO / "checkpoints" / r / "config.json").exists()]
    if missing:
        ap.error(f"no shipped run {', '.join(missing)} in checkpoints/ (the tour's runs are shipped ones)")

    from playwright.sync_api import sync_playwright

    tmp = Path(tempfile.mkdtemp(prefix="genlab-app-load-"))
    PLACES[str(tmp)] = "<tmp>"
    (tmp / "runs").mkdir()
    runs = f"{tmp / 'runs'},{REPO / 'checkpoints'}"
    trainings = None
    t0 = time.time()
    try:
        if not args.no_trainings:
            try:
                trainings = Trainings(tmp / "runs", args.train_limit)
            except ValueError as e:
                raise SystemExit(f"the trainings cannot start: {first_line(e)}") from None
            trainings.start()
        with sync_playwright() as p:
            port = ab.free_port()
            browser = p.chromium.launch(executable_path=CHROMIUM,
                                        args=[*CHROMIUM_ARGS, f"--remote-debugging-port={port}"])
            endpoint = f"http://localhost:{port}"
            try:
                if not args.soak_only:
                    load_run(args, plan, endpoint, runs, tmp, trainings)
                if args.soak_minutes > 0:
                    soak_run(args, plan, endpoint, runs, tmp, trainings)
            finally:
                browser.close()
    finally:
        if trainings:
            report = trainings.report()
            trainings.stop()
            print("trainings:", json.dumps(report), flush=True)
        if args.keep_tmp:
            print(f"kept {tmp} (run folders, server logs)", flush=True)
        else:
            shutil.rmtree(tmp, ignore_errors=True)
    print(f"done in {(time.time() - t0) / 60:.1f} min", flush=True)


if __name__ == "__main__":
    main()
