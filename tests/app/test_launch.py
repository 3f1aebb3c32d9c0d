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

