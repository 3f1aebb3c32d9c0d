"""Every page opened first after Home, each in a fresh Python process (issue 24, item 3).

A fresh process is the point: whatever an earlier test imported would hide a race between
the page's own imports and the warm-up (pages/ui/launch.py). Here Home's script run is the
first in its process, as a new user's is, and then the page; the subprocess runs AppTest
as a person would, without this folder's conftest (so Streamlit's pages/-folder emulation
is on, as AppTest has it: the page's file runs alone first, then pages.via_router reruns it
through app.py). Before the fix, the Out-of-distribution page raised "cannot import name
'InterpolationMode' from partially initialized module 'torchvision.transforms'" there,
two tries of two."""
from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from pages import PAGES
from runs_fixture import REPO

HANG_S = 300  # one fresh process: torch, Home, the warm-up, the page (a busy machine)
SCRIPT = """
import json, sys
from streamlit.testing.v1 import AppTest
app, page, timeout = sys.argv[1], sys.argv[2], float(sys.argv[3])
at = AppTest.from_file(app, default_timeout=timeout).run()
home = [e.value for e in at.exception]
at.switch_page(page).run()
print(json.dumps({"home": home, "exceptions": [e.value for e in at.exception],
                  "titles": [t.value for t in at.title],
                  "sidebar": [m.value for m in at.sidebar.markdown]}))
"""


@pytest.mark.parametrize("page", [p for p in PAGES if p.url_path], ids=lambda p: p.url_path)
def test_each_page_first_after_home_in_a_fresh_process(page, runs_root, data_root):
    env = {**os.environ, "GENLAB_RUNS": str(runs_root), "GENLAB_DATA": str(data_root),
           "OMP_NUM_THREADS": "1"}
    proc = subprocess.run([sys.executable, "-c", SCRIPT, str(REPO / "app.py"), page.file,
                           str(HANG_S)], cwd=REPO, env=env, capture_output=True, text=True,
                          timeout=HANG_S + 60)
    assert proc.returncode == 0, proc.stderr[-3000:]
    got = json.loads(proc.stdout.strip().splitlines()[-1])
    assert got["home"] == [], got["home"]
    assert got["exceptions"] == [], got["exceptions"]
    assert got["titles"] == [page.title], got["titles"]  # the page itself was drawn ...
    assert any(m.startswith("**Device**") for m in got["sidebar"]), got["sidebar"]  # ... by app.py
