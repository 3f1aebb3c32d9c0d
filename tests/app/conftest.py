"""Fixtures for the app tests: a folder of tiny real runs (see runs_fixture.py), an
empty one, the Latent explorer's runs (explore_fixture.py), the app pointed at them
through GENLAB_RUNS (read by app.py), and the app served on a free port for the browser
tests (test_app_browser.py's helpers)."""
from __future__ import annotations

import os
from pathlib import Path

import pytest

from explore_fixture import AE_GMM, CORRUPT, FLOW, GAN, make_explore_runs
from runs_fixture import GOOD, REPO, make_runs, point_app_at, served_app


@pytest.fixture(scope="session")
def runs_root(tmp_path_factory, data_root) -> Path:
    return make_runs(tmp_path_factory.mktemp("app-runs"), data_root)


@pytest.fixture
def app_runs(runs_root, monkeypatch) -> Path:
    """The app, run in this process by AppTest, reads the fixture runs."""
    monkeypatch.setenv("GENLAB_RUNS", str(runs_root))
    monkeypatch.chdir(REPO)
    return runs_root


@pytest.fixture
def train_env(tmp_path, data_root, monkeypatch) -> Path:
    """An empty run folder (not created yet), the real data root, small child processes."""
    return point_app_at(tmp_path / "runs", data_root, monkeypatch)


@pytest.fixture
def empty_runs(tmp_path, monkeypatch) -> Path:
    monkeypatch.setenv("GENLAB_RUNS", str(tmp_path))
    monkeypatch.chdir(REPO)
    return tmp_path


@pytest.fixture(scope="session")
def explore_root(tmp_path_factory, data_root) -> Path:
    return make_explore_runs(tmp_path_factory.mktemp("explore-runs"), data_root)


@pytest.fixture
def explore_runs(explore_root, runs_root, data_root, monkeypatch) -> dict[str, str]:
    """The app reads both run folders and the MNIST data root; name -> run path."""
    monkeypatch.setenv("GENLAB_RUNS", f"{explore_root},{runs_root}")
    monkeypatch.setenv("GENLAB_DATA", str(data_root))
    monkeypatch.chdir(REPO)
    names = (AE_GMM, GAN, FLOW, CORRUPT)
    return {**{n: str(explore_root / n) for n in names}, GOOD: str(runs_root / GOOD)}


@pytest.fixture
def server(data_root, tmp_path):
    """The app served from the repository on a free port, reading the shipped runs."""
    from test_app_browser import SHIPPED

    if not any(SHIPPED.glob("*/checkpoint.pt")):
        pytest.fail(f"no shipped runs under {SHIPPED} (see checkpoints/recipe.sh)")
    # relative to the repository, as `make run` has them: no folder of this machine is on
    # the screenshots the README shows
    env = {**os.environ, "GENLAB_RUNS": SHIPPED.name, "GENLAB_DATA": os.path.relpath(data_root, REPO),
           "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS", "2")}
    with served_app(env, tmp_path / "streamlit.log") as url:
        yield url


@pytest.fixture(autouse=True)
def _navigation_only(monkeypatch):
    """Model a running server, where the first st.navigation call turns Streamlit's
    pages/-folder emulation off for the whole process. AppTest builds a fresh
    PagesManager per run, which sees pages/ and turns it back on: switch_page would then
    run the page file alone, without app.py (no sidebar, no shared state)."""
    from streamlit.runtime.pages_manager import PagesManager

    init = PagesManager.__init__

    def navigation_init(self, *args, **kwargs):
        init(self, *args, **kwargs)
        PagesManager.uses_pages_directory = False

    monkeypatch.setattr(PagesManager, "__init__", navigation_init)
