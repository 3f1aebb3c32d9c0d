"""`python app.py` (what `make run` does): `streamlit run app.py` once the heavy imports are
done, so that no page's first visit waits for them.

A page's first visit after a server start used to wait ~3.8 s for imports alone (torch
2.0 s of CPU, torchvision with torch._dynamo 1.7 s, scikit-learn and scipy 1.2 s, the genlab
modules: benchmarks/app_browser.py's imports_s), whatever the page did. Streamlit runs every
session's script in the server's own process, so whatever that process has imported is
imported for every page.

The imports must never run beside another thread's: two threads importing one package
can see each other's half-initialised modules. Seen (issue 24): in a fresh process, Home
and then the Out-of-distribution page raised "cannot import name 'InterpolationMode' from
partially initialized module 'torchvision.transforms'". A warm-up thread was inside
torchvision/__init__ (it imports torchvision.models, whose alexnet imports
torchvision.transforms._presets); the page's script imported torchvision.transforms.v2.
Python waits for a module another thread is initialising only when that module itself is
asked for, not for the parent package of a submodule: the page found ``torchvision`` in
sys.modules and went on to run torchvision/transforms/__init__ itself. Each thread then
waited for a module lock the other held; importlib found the deadlock (on
torchvision.transforms' lock) and let the warm-up go on with the half-initialised module,
and ``from . import InterpolationMode`` failed, in both threads (reproduced without
Streamlit: one thread importing torchvision, another torchvision.transforms.v2 as soon as
torchvision is in sys.modules). app.py waited for the thread before it drew a page,
but a page's script can run without app.py: while Streamlit emulates its old pages/-folder
mode (AppTest turns it on again for every script run; a server has it until the first
``st.navigation``) it runs the page file by itself, whose imports come before
``pages.via_router`` can rerun it through app.py.

So the warm-up runs in the thread that asks for it, never in a thread of its own: ``serve``
imports before it imports Streamlit's server and starts it, and under ``streamlit run
app.py`` app.py's first script run imports once its page is drawn (``warm_once``); a script
run of another session that starts meanwhile waits for it (``wait_for_warm_up``) before it
draws anything.

Once imported, the modules are frozen out of the garbage collector's reach
(``freeze_imports``): Streamlit runs a full collection after every script run, which walked
the ~480,000 objects of torch, scikit-learn, pandas and the rest in 0.35 s with the GIL
held, so the server answered nothing (no image, no script chunk, no message) for that
long after every first visit, rerun and slider move.

Two more things ``serve`` settles before the first visit: the router (no page runs
without app.py first, see ``pages.via_router``) and the server's share of the cores
(``share_cores``)."""
from __future__ import annotations

import gc
import importlib
import json
import os
import sys
import threading

# what the pages import on a first visit, heaviest first (after these, drawing every page
# through AppTest imported only PIL's image plugins, which PIL loads on first use); a
# module already imported costs nothing
WARM = ("torch", "torchvision", "torchvision.transforms.v2", "torchvision.utils", "sklearn.mixture",
        "sklearn.decomposition", "sklearn.metrics", "contourpy", "pandas", "pyarrow",
        "pyarrow.pandas_compat",
        "PIL.Image", "genlab.models", "genlab.training.train", "genlab.training.loop",
        "genlab.evaluation.explore", "genlab.evaluation.compare", "genlab.figures.curves",
        "genlab.figures.tables", "genlab.evaluation.posterior", "genlab.evaluation.ood",
        "genlab.evaluation.mlp_export")
_lock = threading.Lock()  # held while a thread imports WARM
_warmed = False


def warm_up(modules: tuple[str, ...] = WARM) -> bool:
    """Import ``modules`` in the calling thread, then freeze them (``freeze_imports``), once
    per process; returns whether this call did it. A module that fails is skipped (the
    page that needs it reports the error). A thread that comes while another is at it
    waits for it to end."""
    global _warmed
    with _lock:
        if _warmed:
            return False
        for name in modules:
            try:
                importlib.import_module(name)
            except Exception:  # noqa: BLE001
                pass
        if modules is WARM:
            warm_plotly()
        freeze_imports()
        _warmed = True
        return True


WARM_TRACES = ("Scatter", "Scattergl", "Heatmap", "Contour", "Histogram", "Bar")
"""The plotly trace types genlab's figures use (tests/app/test_launch.py reads the figure
modules to check)."""


def warm_plotly() -> float:
    """Build and serialise one small figure of every kind the pages draw (subplots, lines,
    Scattergl, heatmap, contour, histogram, bars), as ``st.plotly_chart`` does; returns the
    seconds it took. plotly's Python side builds its classes and validators on first use:
    the first figure of a process took 0.81 s, the same figure next 0.10 s (the Train
    page's live curves, one thread, a busy machine), which every chart page's first visit
    after a server start paid. Errors are left for the page to report."""
    import time

    t0 = time.perf_counter()
    try:
        import plotly.graph_objects as go
        import plotly.io as pio

        from genlab.figures.curves import live_figure

        recs = [{"event": "step", "split": "train", "step": s, "epoch": 1, "loss": 1.0 / s}
                for s in (1, 2)] + [{"event": "epoch", "split": "val", "step": 2, "epoch": 1, "loss": 0.4}]
        xs = [0.0, 1.0]
        traces = [getattr(go, kind)(**({"z": [xs, xs]} if kind in ("Heatmap", "Contour") else {"x": xs}))
                  for kind in WARM_TRACES]
        for fig in (live_figure(recs), go.Figure(traces)):
            pio.to_json(fig, validate=False)
    except Exception:  # noqa: BLE001
        pass
    return time.perf_counter() - t0


def warm_once() -> None:
    """The warm-up, unless this process has done it (app.py, after its page is drawn)."""
    warm_up()


def wait_for_warm_up() -> None:
    """Block while another thread of this process is in the warm-up (app.py, before a page)."""
    with _lock:
        pass


def freeze_imports() -> int:
    """Move every object alive now (after the imports: modules, classes, functions) into the
    collector's permanent generation, which no collection walks (``gc.freeze``); returns
    how many are frozen.

    Streamlit ends every script run with ``gc.collect(2)`` (its ``runner.postScriptGC``,
    against memory building up between runs). With the warm-up's imports that walk held the
    GIL for 0.35 s (median of 3, this 2-core machine); frozen, under a millisecond. These
    objects live as long as the process anyway; what pages create later (models, caches,
    sessions) is still collected."""
    gc.freeze()
    return gc.get_freeze_count()


def share_cores(environ=os.environ) -> int:
    """Torch's intra-op threads in the server: half the cores (at least one) unless
    OMP_NUM_THREADS is set; returns the count.

    The server computes pages (codes, quadratures, bounds) beside the browser that draws
    them, and often beside a training run. With torch's default of a thread per core, each
    op of a pool waits until every one of its threads has a core: the True posterior's
    quadrature took 2.2 s on two threads while Chromium parsed plotly.js beside it, 0.8 s on
    one (0.4 s alone). Training runs are processes of their own and keep their threads."""
    import torch

    if not environ.get("OMP_NUM_THREADS"):
        torch.set_num_threads(max(1, (os.cpu_count() or 1) // 2))
    return torch.get_num_threads()


def pin_base_url() -> None:
    """Tell Streamlit's page where its server is, so that a first visit at a page's own URL
    asks no sub-page for it (issue 24, item 10; Streamlit's own issue #7074).

    Not told, Streamlit's JavaScript guesses the server's base path from the address: at
    /clusters it first asks /clusters/_stcore/health and /clusters/_stcore/host-config,
    gets two 404s (two console errors a visit) and then finds the server at /. The page's
    host may say where it is (``window.__streamlit.BACKEND_BASE_URL``, read once when the
    script loads); the index.html this server sends says it in its <head>: this origin and
    the configured server.baseUrlPath. ``serve`` does this; under `streamlit run app.py`
    Streamlit still guesses."""
    from starlette.responses import HTMLResponse
    from starlette.staticfiles import NotModifiedResponse
    from streamlit.web.server.starlette import starlette_static_routes as routes

    make = routes.create_streamlit_static_handler

    def handler(directory: str, base_url: str | None):
        files, index = make(directory, base_url), os.path.join(directory, "index.html")
        with open(index, encoding="utf-8") as f:
            html = f.read().replace("<head>", "<head>\n    <script>window.__streamlit = {BACKEND_BASE_URL: "
                                    f"location.origin + {json.dumps('/' + (base_url or '').strip('/'))}}};"
                                    "</script>", 1)
        get_response = files.get_response

        async def response(path: str, scope):
            got = await get_response(path, scope)
            served = getattr(got, "path", None)
            if (served and os.path.basename(served) == "index.html" and os.path.samefile(served, index)) or (
                    isinstance(got, NotModifiedResponse) and os.path.normpath(path) in (".", "index.html")):
                return HTMLResponse(html, headers={"Cache-Control": "no-cache"})
            return got

        files.get_response = response
        return files

    routes.create_streamlit_static_handler = handler


def serve(script: str, args: list[str]) -> int:
    """`streamlit run SCRIPT ARGS` in this process once the warm-up is done (then Streamlit's
    own imports, not beside it): the server answers when every page can draw without importing.

    Streamlit guesses the old multipage mode from the ``pages`` folder until app.py's first
    ``st.navigation``; under ``streamlit run`` a first visit at a page's own URL therefore
    runs that page alone, and ``pages.via_router`` reruns it through app.py (a wasted run,
    ~0.3 s). Here the server is told at once that app.py's navigation decides."""
    print("genlab: importing torch and the models before serving (a few seconds) ...", flush=True)
    warm_up()  # first, alone: nothing imports beside it
    from streamlit.runtime.pages_manager import PagesManager
    from streamlit.web import cli

    PagesManager.uses_pages_directory = False
    pin_base_url()
    freeze_imports()  # again: Streamlit's own imports came after the warm-up
    share_cores()
    sys.argv = ["streamlit", "run", script, *args]
    return cli.main()
