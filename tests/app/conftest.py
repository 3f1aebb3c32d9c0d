"""Fixtures for the app tests: a folder of tiny real runs (see runs_fixture.py), an
empty one, and the app pointed at either through GENLAB_RUNS (read by app.py)."""
from __future__ import annotations

from pathlib import Path

import pytest

from runs_fixture import REPO, make_runs


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
    root = tmp_path / "runs"
    monkeypatch.setenv("GENLAB_RUNS", str(root))
    monkeypatch.setenv("GENLAB_DATA", str(data_root))
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    monkeypatch.chdir(REPO)
    return root


@pytest.fixture
def empty_runs(tmp_path, monkeypatch) -> Path:
    monkeypatch.setenv("GENLAB_RUNS", str(tmp_path))
    monkeypatch.chdir(REPO)
    return tmp_path


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
