"""pages.via_router writes Streamlit's private ``PagesManager.uses_pages_directory``: the
flag a ``pages/`` folder next to app.py sets, under which Streamlit runs a page's file
alone (its legacy multipage mode) until the first ``st.navigation`` call clears it.
Streamlit 1.67 has no public way to clear it sooner: ``st.navigation`` is documented to
make the app ignore ``pages/`` once any session has called it, and the ``client.*``
options only hide the sidebar's menu. These tests fail when Streamlit changes the flag, so
that via_router is revisited then (tests/app/test_first_visit.py runs the real thing)."""
from __future__ import annotations

import inspect

import pytest
import streamlit.commands.navigation as navigation
import streamlit.runtime.scriptrunner.script_runner as script_runner
from streamlit.runtime.pages_manager import PagesManager

import pages

FLAG = "PagesManager.uses_pages_directory"


def test_the_flag_is_a_class_attribute_streamlit_decides_once():
    assert "uses_pages_directory" in vars(PagesManager)
    assert vars(PagesManager)["uses_pages_directory"] in (None, True, False)


def test_st_navigation_clears_the_flag_as_via_router_does():
    assert f"{FLAG} = False" in inspect.getsource(navigation.navigation)
    assert f"{FLAG} = False" in inspect.getsource(pages.via_router)


def test_the_script_runner_reads_the_flag_to_run_a_page_file_alone():
    src = inspect.getsource(script_runner)
    assert f"if {FLAG}:" in src and "_mpa_v1(" in src


def test_via_router_is_a_no_op_once_the_flag_is_off(monkeypatch):
    """Inside app.py (the flag off) via_router neither reruns nor changes the flag."""
    import streamlit as st

    def rerun():
        raise AssertionError("via_router reran a page that runs inside app.py")

    monkeypatch.setattr(PagesManager, "uses_pages_directory", False)
    monkeypatch.setattr(st, "rerun", rerun)
    pages.via_router()
    assert PagesManager.uses_pages_directory is False


def test_via_router_clears_the_flag_and_reruns_a_page_run_alone(monkeypatch):
    import streamlit as st

    class Rerun(Exception):
        pass

    def rerun():
        raise Rerun

    monkeypatch.setattr(PagesManager, "uses_pages_directory", True)
    monkeypatch.setattr(st, "rerun", rerun)
    with pytest.raises(Rerun):
        pages.via_router()
    assert PagesManager.uses_pages_directory is False
