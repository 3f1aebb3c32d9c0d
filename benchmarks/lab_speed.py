"""The 2-D lab's speed goals (issue 29), measured, never asserted:

- optimiser steps a second of a 2-D RealNVP of 8 couplings (MLP width 64, batch 256) on one
  CPU thread (goal 300), and of 32 planar layers, with the milliseconds of their log q on the
  page's grid (each redraw inverts every layer at every grid point);
- seconds of training for that RealNVP to fit two moons within 0.05 nats of the target's
  entropy, i.e. exact KL(p || q) < 0.05 on the grid (goal 30 s);
- in headless Chromium against `python app.py`: seconds from opening /lab to its first
  drawn chart (goal 2 s) and redraws a second while it plays (goal 4), with the share of
  the time the page's main thread was busy in long tasks while playing.

The load average is written beside the figures. ``--shots DIR`` instead trains every family
on three targets, and 32 planar flows on U1-U4, and saves their figures as PNGs (Chromium
screenshots of plotly's HTML), with their exact KL(p || q) in DIR/shots.json.

    python benchmarks/lab_speed.py [--out benchmarks/results/lab_speed.json] [--no-browser]
"""
from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from genlab.lab.families import FAMILIES, Options  # noqa: E402
from genlab.lab.targets import Grid, get_target  # noqa: E402
from genlab.lab.train import Experiment  # noqa: E402

CHROMIUM = "/usr/bin/chromium"
FLOW = "realnvp"
# the share of time the page's main thread spends in long tasks (over 50 ms: plotly drawing,
# script chunks): near 1 means the browser, not the server, sets the redraw rate
LONG_TASKS = """window.__busy = 0; new PerformanceObserver(list => {
    for (const e of list.getEntries()) window.__busy += e.duration; }).observe({type: "longtask"});"""


def steps_per_second(n: int = 300) -> float:
    ex = Experiment.start(get_target("moons"), FLOW, Options(couplings=8, hidden=64), lr=1e-3)
    ex.advance(20, batch=256)
    t0 = time.perf_counter()
    ex.advance(n, batch=256)
    return n / (time.perf_counter() - t0)


def time_to_fit(goal: float = 0.05, cap_s: float = 300.0, lr: float = 3e-3, batch: int = 512) -> dict:
    ex = Experiment.start(get_target("moons"), FLOW, Options(couplings=8, hidden=64), lr=lr)
    t_train, kl = 0.0, float("inf")
    while t_train < cap_s:
        t0 = time.perf_counter()
        ex.advance(100, batch=batch, lr=lr if ex.steps < 3000 else lr / 3)
        t_train += time.perf_counter() - t0
        kl = ex.figures().kl
        if kl < goal:
            break
    return {"seconds": round(t_train, 1), "steps": ex.steps, "kl": round(kl, 4), "reached": kl < goal,
            "lr": lr, "batch": batch, "entropy": round(ex.figures().entropy, 4)}


def browser(seconds: float = 10.0) -> dict:
    from playwright.sync_api import sync_playwright

    port = 8765
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.Popen([sys.executable, "app.py", "--server.port", str(port), "--server.headless", "true",
                             "--server.fileWatcherType", "none", "--browser.gatherUsageStats", "false"],
                            cwd=REPO, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        for _ in range(600):
            try:
                urllib.request.urlopen(f"http://localhost:{port}/_stcore/health", timeout=2)
                break
            except OSError:
                time.sleep(0.2)
        with sync_playwright() as p:
            b = p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox", "--disable-gpu",
                                                                  "--disable-background-networking"])
            page = b.new_page(viewport={"width": 1400, "height": 1400})
            page.add_init_script(LONG_TASKS)
            page.goto(f"http://localhost:{port}/")  # the server's first script run (imports) apart
            page.wait_for_selector('[data-testid="stApp"][data-test-script-state="notRunning"]', timeout=180_000)
            t0 = time.time()
            page.goto(f"http://localhost:{port}/lab?families={FLOW}&play=0")
            page.locator('[data-testid="stPlotlyChart"] .main-svg').first.wait_for(timeout=180_000)
            first = time.time() - t0
            page.get_by_role("button", name="Play").click()
            page.wait_for_timeout(2000)
            load = os.getloadavg()[0]
            page.evaluate("window.__busy = 0")
            seen, t1 = set(), time.time()
            while time.time() - t1 < seconds:
                for t in page.locator('[data-testid="stMarkdownContainer"] p').all_inner_texts():
                    if re.match(r"^step \d+", t):
                        seen.add(t)
                page.wait_for_timeout(40)
            busy = page.evaluate("window.__busy") / 1000 / (time.time() - t1)
            b.close()
        return {"first_frame_s": round(first, 2), "redraws_per_s": round(len(seen) / seconds, 2),
                "main_thread_busy_while_playing": round(busy, 2), "load_average_1min_at_play": round(load, 2)}
    finally:
        proc.terminate()
        proc.wait(10)


def planar_steps_per_second(n: int = 200, k: int = 32) -> dict:
    """Optimiser steps a second of K planar layers on U1 (batch 256), and the milliseconds of
    one redraw's log q on the page's 128 x 128 grid (an inverse of every layer per point)."""
    ex = Experiment.start(get_target("u1"), "planar", Options(k=k), lr=1e-2)
    ex.advance(20, batch=256)
    t0 = time.perf_counter()
    ex.advance(n, batch=256)
    sps = n / (time.perf_counter() - t0)
    t0 = time.perf_counter()
    ex.log_q()
    return {"steps_per_s": round(sps, 1), "grid_log_q_ms": round(1000 * (time.perf_counter() - t0))}


def shots(out: Path, steps: int = 600, planar_steps: int = 2000) -> None:
    """Every family on three targets (the lab's default sizes, but 6 couplings), and K = 32
    planar flows on U1-U4 at the family's defaults (its suggested lr and annealing), as PNGs;
    their exact KL(p || q) and the seconds of training in DIR/shots.json."""
    from playwright.sync_api import sync_playwright

    from genlab.lab import figures

    out = out.resolve()
    out.mkdir(parents=True, exist_ok=True)
    pages, record = {}, {}
    for target in ("moons", "8gaussians", "u1"):
        figs = []
        for name in FAMILIES:
            lr = FAMILIES[name].suggested_lr
            ex = Experiment.start(get_target(target), name, Options(couplings=6, hidden=64), lr=lr, grid=Grid(96))
            ex.advance(steps, batch=256, lr=lr)
            fig = figures.model_density_figure(ex, ex.log_q())
            f = ex.figures()
            fig.update_layout(title=f"{ex.family.label} on {target}, {ex.steps} steps"
                              + (f", KL {f.kl:.3f}" if f else ""), width=360, height=360)
            record[f"{name} on {target}"] = {"steps": ex.steps, "seconds": round(ex.seconds, 1),
                                             "kl": None if f is None else round(f.kl, 4)}
            figs.append(fig)
            view = figures.view_figure(ex, ex.target.sample(1000))
            if view is not None:
                view.update_layout(width=720 if ex.family.view in ("layers", "latent") else 360)
                figs.append(view)
        pages[f"lab-{target}"] = figs
    figs = []
    planar = FAMILIES["planar"]
    for target in ("u1", "u2", "u3", "u4"):
        ex = Experiment.start(get_target(target), "planar", Options(k=32), lr=planar.suggested_lr, grid=Grid(96))
        ex.advance(planar_steps, batch=256)
        kl, rev = ex.figures().kl, ex.history[-1]["reverse_kl"]
        record[f"planar32 on {target}"] = {"steps": ex.steps, "seconds": round(ex.seconds, 1), "kl": round(kl, 4),
                                          "reverse_kl_last_step": round(rev, 4), "anneal": ex.family.opts.anneal,
                                          "lr": planar.suggested_lr}
        fig = figures.model_density_figure(ex, ex.log_q())
        fig.update_layout(title=f"{target.upper()}: 32 planar, KL(p‖q) {kl:.3f}, rev KL {rev:.3f}",
                          width=360, height=360)
        target_fig = figures.density_figure(ex.target_density(), ex.grid, f"{target.upper()} target")
        target_fig.update_layout(width=360, height=360)
        figs += [target_fig, fig]
    pages["lab-planar32"] = figs
    (out / "shots.json").write_text(json.dumps(record, indent=2) + "\n")
    print(json.dumps(record, indent=2))
    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox", "--disable-gpu"])
        page = b.new_page(viewport={"width": 1500, "height": 1000})
        for name, figs in pages.items():
            html = "".join(f.to_html(full_html=False, include_plotlyjs=(i == 0)) for i, f in enumerate(figs))
            path = out / f"{name}.html"
            path.write_text(f"<html><body style='display:flex;flex-wrap:wrap'>{html}</body></html>")
            page.goto(path.as_uri())
            page.wait_for_timeout(1500)
            page.screenshot(path=str(out / f"{name}.png"), full_page=True)
        b.close()


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default=str(REPO / "benchmarks/results/lab_speed.json"))
    ap.add_argument("--no-browser", action="store_true")
    ap.add_argument("--shots", default=None, help="a folder: save the figures' PNGs there instead")
    a = ap.parse_args(argv)
    torch.set_num_threads(1)
    if a.shots:
        shots(Path(a.shots))
        return 0
    res = {"load_average_1min_before": round(os.getloadavg()[0], 2), "cpus": os.cpu_count(),
           "realnvp8_steps_per_s_1_thread": round(steps_per_second(), 1),
           "fit_two_moons_within_0.05_nats": time_to_fit(),
           "planar32_1_thread": planar_steps_per_second()}
    if not a.no_browser:
        res["browser"] = browser()
    res["load_average_1min_after"] = round(os.getloadavg()[0], 2)
    res["goals"] = {"steps_per_s": 300, "fit_s": 30, "first_frame_s": 2, "redraws_per_s": 4}
    Path(a.out).write_text(json.dumps(res, indent=2) + "\n")
    print(json.dumps(res, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
