"""app.py has the browser load the Streamlit modules a page's first view needs (plotly's
chart module, the table's) while the page's script runs, not when the first chart
arrives (pages.ui.widgets.preload_modules; the timings are benchmarks/app_browser.py's).
These tests fail when a Streamlit upgrade renames a module, so the preload never asks
for a file that is not there, nor for one Streamlit's own lazy import would not use."""
from __future__ import annotations

from pathlib import Path

import pytest
import streamlit

from pages import PAGES
from pages.ui.widgets import lazy_modules
from runs_fixture import run_page

JS = Path(streamlit.__file__).parent / "static" / "static" / "js"


def preload_html(at) -> str:
    return "\n".join(e.proto.body for e in at.sidebar.get("html"))


@pytest.mark.parametrize("page", PAGES, ids=lambda p: p.url_path or "home")
def test_every_page_preloads_exactly_the_modules_it_names(app_runs, page):
    files = lazy_modules(page.preload)
    assert len(files) == len(page.preload), f"{page.preload} are not all Streamlit modules: {files}"
    html = preload_html(run_page(page.file))
    for f in files:
        assert f in html and "import(" in html
    if not files:
        assert "import(" not in html
    others = {f.name for f in JS.glob("*.js")} - set(files)
    assert not any(f in html for f in others if f.split(".")[0] in ("PlotlyChart", "Table"))


def test_the_modules_are_the_ones_streamlits_own_lazy_import_loads():
    """Streamlit's index script imports each by that file name, relative to itself: the
    URL the preload builds from the index script's, so the browser runs each module once."""
    index = next(JS.glob("index.*.js")).read_text(encoding="utf-8")
    for name in ("PlotlyChart", "Table"):
        (f,) = lazy_modules((name,))
        assert f"import(`./{f}`)" in index


def test_pages_that_draw_charts_ask_for_plotly_and_home_does_not():
    by_path = {p.url_path: p for p in PAGES}
    assert "PlotlyChart" not in by_path[""].preload  # Home: a chart only on request
    for path in ("train", "latent", "compare", "posterior", "likelihood", "lab"):
        assert "PlotlyChart" in by_path[path].preload
