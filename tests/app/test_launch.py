"""pages/launch.py: `python app.py` warms the heavy imports in the server's process."""
from __future__ import annotations

import importlib.util
import subprocess
import sys
from pathlib import Path

from pages.launch import WARM, warm_in_background

REPO = Path(__file__).resolve().parents[2]


def test_every_warmed_module_exists():
    assert [m for m in WARM if importlib.util.find_spec(m) is None] == []


def test_the_warm_up_imports_in_the_background_of_this_process():
    code = ("import sys; from pages.launch import warm_in_background; "
            "t = warm_in_background(('genlab.flows', 'no_such_module_here')); t.join(120); "
            "print('genlab.flows' in sys.modules, 'torch' in sys.modules, t.daemon)")
    out = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True,
                         check=True, timeout=180).stdout.split()
    assert out == ["True", "True", "True"]  # a missing module does not stop the others
    assert warm_in_background(()).daemon


def test_the_warm_up_leaves_what_it_imported_out_of_every_collection():
    """Streamlit's full collection after each script run walked the ~480,000 objects of
    the imports with the GIL held (0.35 s in which the server answered nothing); frozen
    (gc.freeze), no collection walks them, and what is created later is still collected."""
    code = ("import gc; from pages.launch import warm_in_background; "
            "warm_in_background(('genlab.flows',)).join(120); import torch; "
            "later = [[]]; tracked = {id(o) for o in gc.get_objects()}; "
            "print(gc.get_freeze_count() > 10000, id(torch.nn.Module) in tracked, "
            "id(vars(torch)) in tracked, id(later) in tracked)")
    assert _run(code) == ["True", "False", "False", "True"]


def _run(code: str, **env) -> list[str]:
    import os

    environ = {k: v for k, v in os.environ.items() if k != "OMP_NUM_THREADS"} | env
    return subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True,
                          check=True, timeout=180, env=environ).stdout.split()


def test_the_server_leaves_the_browser_half_the_cores_unless_told():
    code = ("import os, torch; from pages.launch import share_cores; before = torch.get_num_threads(); "
            "print(before, share_cores(), os.cpu_count())")
    _, got, cpus = map(int, _run(code))
    assert got == max(1, cpus // 2)
    before, got, _ = map(int, _run(code, OMP_NUM_THREADS="2"))
    assert got == before  # the user's choice stands


def test_serve_starts_streamlit_with_the_router_in_charge_and_the_imports_done():
    """What `python app.py` hands to Streamlit: no page runs without app.py's navigation
    (so no first visit pays pages.via_router's rerun), torch on half the cores, the warm
    imports done, and the command line passed on."""
    code = ("import sys, torch; import streamlit.web.cli as cli; "
            "from streamlit.runtime.pages_manager import PagesManager; "
            "cli.main = lambda: print(PagesManager.uses_pages_directory, torch.get_num_threads(), "
            "'genlab.explore' in sys.modules, ' '.join(sys.argv[1:])) or 0; "
            "from pages.launch import serve; raise SystemExit(serve('app.py', ['--server.port', '1']))")
    out = _run(code, OMP_NUM_THREADS="1")
    assert out[-7:] == ["False", "1", "True", "run", "app.py", "--server.port", "1"]
