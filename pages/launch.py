"""`python app.py` (what `make run` does): `streamlit run app.py` once the heavy imports are
done, so that no page's first visit waits for them.

A page's first visit after a server start used to wait ~3.8 s for imports alone (torch
2.0 s of CPU, torchvision with torch._dynamo 1.7 s, scikit-learn and scipy 1.2 s, the genlab
modules: benchmarks/app_browser.py's imports_s), whatever the page did. Streamlit runs every
session's script in the server's own process, so whatever that process has imported is
imported for every page.

The imports must not run beside a page's script: two threads importing one package (the
warm-up's torchvision and a page's torchvision.transforms.v2) can see each other's
half-initialised modules ("cannot import name 'InterpolationMode' from partially
initialized module", seen). So ``serve`` imports in a thread beside Streamlit's own imports
and starts the server only when that thread is done, and under ``streamlit run app.py``
app.py starts the warm-up after its first page is drawn and every later script run waits
for it to end (``wait_for_warm_up``) before it draws anything.

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
import os
import sys
import threading

# what the pages import on a first visit, heaviest first (after these, drawing every page
# through AppTest imported only PIL's image plugins, which PIL loads on first use); a
# module already imported costs nothing
WARM = ("torch", "torchvision", "torchvision.transforms.v2", "torchvision.utils", "sklearn.mixture",
        "sklearn.decomposition", "sklearn.metrics", "contourpy", "pandas", "pyarrow",
        "pyarrow.pandas_compat",
        "PIL.Image", "genlab.models", "genlab.train", "genlab.loop", "genlab.explore",
        "genlab.compare", "genlab.figures", "genlab.tables", "genlab.posterior", "genlab.ood",
        "genlab.mlp_export")
_warm: threading.Thread | None = None


def warm_in_background(modules: tuple[str, ...] = WARM) -> threading.Thread:
    """Import ``modules`` in a daemon thread (a module that fails is skipped: the page that
    needs it reports the error)."""
    def work() -> None:
        for name in modules:
            try:
                importlib.import_module(name)
            except Exception:  # noqa: BLE001
                pass
        freeze_imports()

    t = threading.Thread(target=work, name="genlab-warm-imports", daemon=True)
    t.start()
    return t


def warm_once() -> None:
    """Start the warm-up unless this process has started it (app.py, after a page)."""
    global _warm
    if _warm is None:
        _warm = warm_in_background()


def wait_for_warm_up() -> None:
    """Block until a warm-up this process started has ended (app.py, before a page)."""
    if _warm is not None:
        _warm.join()


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


def serve(script: str, args: list[str]) -> int:
    """`streamlit run SCRIPT ARGS` in this process once the warm-up is done (Streamlit's own
    imports run beside it): the server answers when every page can draw without importing.

    Streamlit guesses the old multipage mode from the ``pages`` folder until app.py's first
    ``st.navigation``; under ``streamlit run`` a first visit at a page's own URL therefore
    runs that page alone, and ``pages.via_router`` reruns it through app.py (a wasted run,
    ~0.3 s). Here the server is told at once that app.py's navigation decides."""
    warm_once()
    print("genlab: importing torch and the models before serving (a few seconds) ...", flush=True)
    from streamlit.runtime.pages_manager import PagesManager
    from streamlit.web import cli

    PagesManager.uses_pages_directory = False
    wait_for_warm_up()
    freeze_imports()  # again: Streamlit's own imports ran beside the warm-up
    share_cores()
    sys.argv = ["streamlit", "run", script, *args]
    return cli.main()
