"""The app's pages, in navigation order: app.py builds ``st.navigation`` from this list and
the app tests run every entry. A new page is one line here plus its file, whose first
statement after the imports is ``via_router()``."""
from __future__ import annotations

from typing import Callable, NamedTuple

from genlab.runs import views


class PageSpec(NamedTuple):
    file: str  # relative to the repository root (where app.py is)
    title: str
    icon: str
    url_path: str  # the page's URL: http://localhost:8501/<url_path> ("" for the default)
    takes_run: bool = False  # reads st.session_state["run"]: Home offers "open in" links
    # the runs it can show: (model class, model_config) -> bool, the same function its run
    # picker lists runs by (genlab.runs.views); None: every run with a readable config
    shows: Callable[[type, dict], bool] | None = None

    def can_show(self, cls: type | None, cfg: dict) -> bool:
        """Home offers this page for a run of model class ``cls`` (None: unreadable config)."""
        return self.takes_run and cls is not None and (self.shows is None or bool(self.shows(cls, cfg)))


PAGES: list[PageSpec] = [
    PageSpec("pages/home.py", "Home", ":material/home:", ""),
    PageSpec("pages/train.py", "Train", ":material/model_training:", "train", True),
    PageSpec("pages/latent.py", "Latent explorer", ":material/scatter_plot:", "latent", True, views.latent_explorer),
    PageSpec("pages/clusters.py", "Clusters", ":material/bubble_chart:", "clusters", True, views.clusters),
    PageSpec("pages/interpolate.py", "Interpolation", ":material/linear_scale:", "interpolate", True, views.interpolation),
    PageSpec("pages/compare.py", "Compare", ":material/compare:", "compare", True),
    PageSpec("pages/posterior.py", "True posterior", ":material/blur_circular:", "posterior", True, views.posterior),
    PageSpec("pages/likelihood.py", "Out-of-distribution", ":material/travel_explore:", "likelihood", True, views.likelihood),
    PageSpec("pages/lab.py", "2-D lab", ":material/science:", "lab"),
]


def via_router() -> None:
    """Make sure this page runs inside app.py (the router and the shared sidebar).

    A folder named ``pages`` next to app.py makes Streamlit emulate its old multipage mode
    until the first ``st.navigation`` call in the server process. So the first visit to a
    fresh server at a page's own URL (``/latent``) ran pages/latent.py alone: no sidebar,
    no wide layout, the folder's files as the menu, and every later visit the same until
    someone opened ``/``. Here the page turns that mode off and reruns the session: the
    rerun goes through app.py, whose ``st.navigation`` finds the same page (the old mode's
    page ids are the file stems, which are the ``url_path``s above). A no-op otherwise.
    The flag is Streamlit's private one (1.67 has no public switch; st.navigation clears
    it the same way): tests/app/test_via_router.py fails when Streamlit changes it."""
    from streamlit.runtime.pages_manager import PagesManager

    if PagesManager.uses_pages_directory:
        import streamlit as st

        PagesManager.uses_pages_directory = False
        st.rerun()
