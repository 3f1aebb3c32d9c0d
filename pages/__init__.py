"""The app's pages, in navigation order: app.py builds ``st.navigation`` from this list and
the app tests run every entry. A new page is one line here plus its file."""
from __future__ import annotations

from typing import NamedTuple


class PageSpec(NamedTuple):
    file: str  # relative to the repository root (where app.py is)
    title: str
    icon: str
    url_path: str  # the page's URL: http://localhost:8501/<url_path> ("" for the default)
    takes_run: bool = False  # reads st.session_state["run"]: Home offers "open in" links


PAGES: list[PageSpec] = [
    PageSpec("pages/home.py", "Home", ":material/home:", ""),
    PageSpec("pages/train.py", "Train", ":material/model_training:", "train", True),
    PageSpec("pages/latent.py", "Latent explorer", ":material/scatter_plot:", "latent", True),
    PageSpec("pages/clusters.py", "Clusters", ":material/bubble_chart:", "clusters", True),
    PageSpec("pages/interpolate.py", "Interpolation", ":material/linear_scale:", "interpolate", True),
    PageSpec("pages/compare.py", "Compare", ":material/compare:", "compare", True),
]
