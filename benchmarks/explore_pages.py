"""Server time of every page of the app (AppTest, no browser) on shipped runs.

    GENLAB_DATA=../shared/datasets OMP_NUM_THREADS=2 .venv/bin/python benchmarks/explore_pages.py \
        checkpoints/vae-2d-mnist checkpoints/vae-20d-mnist checkpoints/ae-gmm-mnist \
        checkpoints/realnvp-mnist checkpoints/gan-mnist

The run folders' parents are the app's run folders (GENLAB_RUNS), so Home, Train and
Compare see every run there (the 22 shipped ones for checkpoints/). In this one process:

- "site": Home, Train and Compare with the first run selected (as Home's links do):
  the first render of each (cold: empty caches; the Python imports app.py needs are
  done before and reported apart as imports_s) and a second render in a new session
  (cached). Home's cold render reads and plots every run's files; Compare's loads the
  two runs' models, reconstructs ten test images and computes the bound for k = 1, 10.
- "runs": for each run, the same for the Latent explorer, Clusters and Interpolation
  (cold: model load, the checkpoint's stored projections, or encoding 2,000 test images
  and PCA where it has none, mixture fit), then 10 moves of the first latent slider (z1,
  or a flow's PC 1) on the Latent explorer on the server path, reporting the page
  fragment's own server time (what the page shows as "server time") and the whole
  AppTest round trip. UMAP is never on a page's first render (issue 13): the shipped
  runs carry theirs, others get it in the background on request.

Writes benchmarks/results/explore_pages.json.
"""
from __future__ import annotations

import importlib

import json
import os
import platform
import statistics
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
PAGES = ("pages/latent.py", "pages/clusters.py", "pages/interpolate.py")
SITE = ("pages/train.py", "pages/compare.py")  # and Home, app.py's default page


def _navigation_only() -> None:
    """As in tests/app/conftest.py: a running server never emulates the pages/ folder."""
    from streamlit.runtime.pages_manager import PagesManager

    init = PagesManager.__init__

    def navigation_init(self, *args, **kwargs):
        init(self, *args, **kwargs)
        PagesManager.uses_pages_directory = False

    PagesManager.__init__ = navigation_init


def render(run: str, page: str):
    from streamlit.testing.v1 import AppTest

    at = AppTest.from_file(str(REPO / "app.py"), default_timeout=600).run()
    at.session_state["run"] = run
    t = time.perf_counter()
    at.switch_page(page).run()
    seconds = time.perf_counter() - t
    if at.exception:
        raise RuntimeError(f"{run} {page}: {at.exception[0].value}")
    return at, seconds


def site_pages(run: str) -> dict:
    """Home (the first script run of a session), then Train and Compare: cold, then cached."""
    from streamlit.testing.v1 import AppTest

    t = time.perf_counter()
    for name in ("plotly.graph_objects", "sklearn.mixture", "streamlit",  # what app.py and the
                 "genlab.evaluation.explore", "genlab.figures.curves",  # pages import, untimed below
                 "genlab.figures.tables", "genlab.runs.jobs"):
        importlib.import_module(name)
    out = {"imports_s": round(time.perf_counter() - t, 3)}
    home = []
    for _ in range(2):
        t = time.perf_counter()
        at = AppTest.from_file(str(REPO / "app.py"), default_timeout=600).run()
        home.append(round(time.perf_counter() - t, 3))
        if at.exception:
            raise RuntimeError(f"home: {at.exception[0].value}")
    out["pages/home.py"] = {"cold_s": home[0], "cached_s": home[1]}
    for page in SITE:
        out[page] = {"cold_s": round(render(run, page)[1], 3),
                     "cached_s": round(render(run, page)[1], 3)}
    return out


def slider_moves(run: str, n: int = 10) -> tuple[list[float], list[float]]:
    at, _ = render(run, "pages/latent.py")
    live = [t for t in at.toggle if t.key == "live_decoder"]  # issue 15's browser decoder: off
    if live:
        at = live[0].set_value(False).run()
    fragment, round_trip = [], []
    for i in range(n):
        slider = next(s for s in at.slider if s.label.startswith(("z", "PC ")))
        t = time.perf_counter()
        slider.set_value(min(slider.max, max(slider.min, slider.value + (0.2 if i % 2 == 0 else -0.2)))).run()
        round_trip.append(1e3 * (time.perf_counter() - t))
        fragment.append(at.session_state["latent_decode_ms"])
    return fragment, round_trip


def main(run_dirs: list[str]) -> dict:
    import torch

    torch.set_num_threads(2)
    os.chdir(REPO)
    os.environ["GENLAB_RUNS"] = ",".join(str(Path(r).resolve().parent) for r in run_dirs)
    _navigation_only()
    results = {"machine": platform.processor() or platform.machine(), "cpus": os.cpu_count(),
               "load_avg": os.getloadavg()[0], "torch_threads": torch.get_num_threads(),
               "n_runs_in_folders": sum(1 for r in {Path(d).resolve().parent for d in run_dirs}
                                        for _ in r.glob("*/config.json")),
               "site_run": Path(run_dirs[0]).name, "site": {}, "runs": {}}
    results["site"] = site_pages(str(Path(run_dirs[0]).resolve()))
    print("site", json.dumps(results["site"]), flush=True)
    for run in map(lambda r: str(Path(r).resolve()), run_dirs):
        row = {}
        for page in PAGES:
            row[page] = {"cold_s": round(render(run, page)[1], 3),
                         "cached_s": round(render(run, page)[1], 3)}
        frag, trip = slider_moves(run)
        row["slider_fragment_ms"] = {"median": round(statistics.median(frag), 1), "max": round(max(frag), 1)}
        row["slider_apptest_round_trip_ms"] = {"median": round(statistics.median(trip), 1)}
        results["runs"][Path(run).name] = row
        print(Path(run).name, json.dumps(row), flush=True)
    out = REPO / "benchmarks" / "results" / "explore_pages.json"
    out.parent.mkdir(exist_ok=True)
    results["load_avg_end"] = os.getloadavg()[0]
    out.write_text(json.dumps(results, indent=1) + "\n")
    return results


if __name__ == "__main__":
    main(sys.argv[1:] or [str(REPO / "checkpoints" / "vae-2d-mnist")])
