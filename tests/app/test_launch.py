"""pages/ui/launch.py: `python app.py` warms the heavy imports in the server's process."""
from __future__ import annotations

import importlib.util
import subprocess
import sys
from pathlib import Path

from pages.ui.launch import WARM

REPO = Path(__file__).resolve().parents[2]


def test_every_warmed_module_exists():
    assert [m for m in WARM if importlib.util.find_spec(m) is None] == []


def test_the_warm_up_imports_once_in_the_thread_that_asks():
    """No thread of its own (issue 24, item 3: a warm-up thread's torchvision beside a page's
    torchvision.transforms.v2 left a half-initialised module); a missing module does not
    stop the others; a second call does nothing."""
    code = ("import sys, threading; from pages.ui.launch import warm_up; "
            "first = warm_up(('genlab.flows', 'no_such_module_here')); "
            "print('genlab.flows' in sys.modules, 'torch' in sys.modules, threading.active_count(), "
            "first, warm_up(('genlab.flows',)))")
    assert _run(code) == ["True", "True", "1", "True", "False"]


SLOW_MODULE = """import pathlib, time
pathlib.Path(__file__).with_suffix('.started').touch()
time.sleep(1.0)
done = True
"""


def test_a_script_run_waits_while_another_session_warms(tmp_path):
    """app.py's wait_for_warm_up: a second script thread that starts while the first is
    importing goes on only once every module is fully imported."""
    (tmp_path / "slow_warm_module.py").write_text(SLOW_MODULE)
    code = ("import pathlib, sys, threading, time; sys.path.insert(0, sys.argv[1]); "
            "from pages.ui.launch import warm_up, wait_for_warm_up; "
            "t = threading.Thread(target=warm_up, args=(('slow_warm_module',),)); t.start(); "
            "started = pathlib.Path(sys.argv[1], 'slow_warm_module.started'); "
            "[time.sleep(0.01) for _ in iter(lambda: started.exists(), True)]; "
            "wait_for_warm_up(); m = sys.modules['slow_warm_module']; "
            "print(getattr(m, 'done', False)); t.join()")
    assert _run(code, args=[str(tmp_path)]) == ["True"]


def test_the_warm_up_leaves_what_it_imported_out_of_every_collection():
    """Streamlit's full collection after each script run walked the ~480,000 objects of
    the imports with the GIL held (0.35 s in which the server answered nothing); frozen
    (gc.freeze), no collection walks them, and what is created later is still collected."""
    code = ("import gc; from pages.ui.launch import warm_up; "
            "warm_up(('genlab.flows',)); import torch; "
            "later = [[]]; tracked = {id(o) for o in gc.get_objects()}; "
            "print(gc.get_freeze_count() > 10000, id(torch.nn.Module) in tracked, "
            "id(vars(torch)) in tracked, id(later) in tracked)")
    assert _run(code) == ["True", "False", "False", "True"]


def _run(code: str, args: list[str] = (), **env) -> list[str]:
    import os

    environ = {k: v for k, v in os.environ.items() if k != "OMP_NUM_THREADS"} | env
    return subprocess.run([sys.executable, "-c", code, *args], cwd=REPO, capture_output=True,
                          text=True, check=True, timeout=180, env=environ).stdout.split()


def test_the_server_leaves_the_browser_half_the_cores_unless_told():
    code = ("import os, torch; from pages.ui.launch import share_cores; before = torch.get_num_threads(); "
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
            "'genlab.evaluation.explore' in sys.modules, ' '.join(sys.argv[1:])) or 0; "
            "from pages.ui.launch import serve; raise SystemExit(serve('app.py', ['--server.port', '1']))")
    out = _run(code, OMP_NUM_THREADS="1")
    assert out[-7:] == ["False", "1", "True", "run", "app.py", "--server.port", "1"]



SERVED = """
import asyncio, os
from pages.ui.launch import pin_base_url
pin_base_url()
from starlette.responses import FileResponse
from streamlit import file_util
from streamlit.web.server.starlette import starlette_static_routes as routes
static = file_util.get_static_dir()
files = routes.create_streamlit_static_handler(static, "/lab/")
index = os.path.join(static, "index.html")
etag = FileResponse(index, stat_result=os.stat(index)).headers["etag"]

def get(path, url, headers=()):
    scope = {"type": "http", "method": "GET", "path": url, "root_path": "/lab", "headers": list(headers)}
    return asyncio.run(files.get_response(path, scope))

def pinned(resp):
    body = getattr(resp, "body", b"")  # a FileResponse (Streamlit's own file) has none
    return resp.status_code == 200 and b'BACKEND_BASE_URL: location.origin + "/lab"' in body

print(pinned(get(".", "/lab/")), pinned(get("clusters", "/lab/clusters")),
      pinned(get(".", "/lab/", [(b"if-none-match", etag.encode())])),
      get("favicon.png", "/lab/favicon.png").media_type)
"""


def test_the_served_page_says_where_the_server_is():
    """Issue 24, item 10: told nothing, Streamlit's page at /clusters first asked
    /clusters/_stcore/health and /clusters/_stcore/host-config (two 404s, two console
    errors). Every index.html the server sends (at the root, at a page's URL, to a browser
    holding an older copy) names the server's base URL; other files are Streamlit's own
    (tests/app/test_app_browser.py checks the console of every page)."""
    assert _run(SERVED) == ["True", "True", "True", "image/png"]


def test_the_warm_up_builds_every_trace_type_the_figures_use():
    """warm_plotly builds one figure of each trace type genlab's figures and the pages
    construct (go.<Type>(...) in their sources), so no page's first chart pays for plotly
    building that type's classes and validators."""
    import re
    import sys
    from pathlib import Path

    from pages.ui.launch import WARM_TRACES, warm_plotly

    root = Path(__file__).resolve().parents[2]
    used = {m for f in [*root.glob("genlab/**/*.py"), *root.glob("pages/**/*.py")]
            for m in re.findall(r"\bgo\.([A-Z][A-Za-z]+)\(", f.read_text(encoding="utf-8"))} - {"Figure"}
    assert used and used <= set(WARM_TRACES), sorted(used - set(WARM_TRACES))
    assert warm_plotly() > 0
    for kind in WARM_TRACES:  # built, so plotly's module for each trace type is loaded
        assert f"plotly.graph_objs._{kind.lower()}" in sys.modules
