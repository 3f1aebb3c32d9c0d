"""`python app.py` (what `make run` does): `streamlit run app.py` with the heavy imports
started first, in a background thread of the server process.

A page's first visit after a server start used to wait ~3.8 s for imports alone (torch
1.8 s of CPU, then torchvision, plotly, scikit-learn's mixture, the genlab modules:
benchmarks/app_browser.py's imports_s), whatever the page did. Streamlit runs every
session's script in the server's own process, so whatever a thread of that process has
imported is imported for every page: started before the server binds, the imports run
while Streamlit starts and while the person opens the browser. ``streamlit run app.py``
still works; it warms the same modules after its first page is drawn (app.py)."""
from __future__ import annotations

import importlib
import sys
import threading

# what the pages import, heaviest first (a module already imported costs nothing)
WARM = ("torch", "torchvision", "plotly.graph_objects", "sklearn.mixture", "genlab.models",
        "genlab.train", "genlab.explore", "genlab.compare", "genlab.figures", "genlab.tables",
        "genlab.posterior", "genlab.ood")


def warm_in_background(modules: tuple[str, ...] = WARM) -> threading.Thread:
    """Import ``modules`` in a daemon thread; a page that needs one meanwhile waits on
    Python's import lock for it, never imports it twice."""
    def work() -> None:
        for name in modules:
            try:
                importlib.import_module(name)
            except Exception:  # noqa: BLE001 - the page that needs it reports the error
                pass

    t = threading.Thread(target=work, name="genlab-warm-imports", daemon=True)
    t.start()
    return t


def serve(script: str, args: list[str]) -> int:
    """Start the warm-up, then Streamlit's own `streamlit run SCRIPT ARGS` in this process."""
    from streamlit.web import cli

    warm_in_background()
    sys.argv = ["streamlit", "run", script, *args]
    return cli.main()
