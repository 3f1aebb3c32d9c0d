"""examples/quickstart.ipynb runs (issue 27, item 3): executed by nbclient in a fresh kernel
from the repository root on the test data, every cell without an error, each of its four
parts showing what it says (plotly figures, a sample grid, a trained run, eval's figure),
and nothing written into checkpoints/."""
from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
NOTEBOOK = REPO / "examples" / "quickstart.ipynb"
PLOTLY = "application/vnd.plotly.v1+json"


def _listing(root: Path) -> dict[str, float]:
    return {str(p.relative_to(root)): p.stat().st_mtime for p in root.rglob("*") if p.is_file()}


def test_the_quickstart_notebook_runs(data_root, monkeypatch):
    nbformat = pytest.importorskip("nbformat")
    nbclient = pytest.importorskip("nbclient")
    pytest.importorskip("ipykernel")
    from jupyter_client.kernelspec import KernelSpecManager, NoSuchKernel

    nb = nbformat.read(NOTEBOOK, as_version=4)
    assert all(not c.get("outputs") for c in nb.cells if c.cell_type == "code")  # stored clean
    monkeypatch.setenv("GENLAB_DATA", str(data_root))
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    try:  # this interpreter's kernel (ipykernel's own spec points at sys.executable)
        KernelSpecManager().get_kernel_spec("python3")
    except NoSuchKernel:
        pytest.fail("no python3 kernel: pip install -r requirements-dev.txt")
    before = _listing(REPO / "checkpoints")
    t0 = time.perf_counter()
    client = nbclient.NotebookClient(nb, timeout=600, kernel_name="python3",
                                     resources={"metadata": {"path": str(REPO)}})
    client.execute()
    print(f"quickstart.ipynb ran in {time.perf_counter() - t0:.1f} s ({sys.executable})")
    outputs = [c.get("outputs", []) for c in nb.cells if c.cell_type == "code"]
    errors = [o for out in outputs for o in out if o.get("output_type") == "error"]
    assert not errors, errors
    shown = [set(o.get("data", {})) for out in outputs for o in out]
    figures = [json.loads(json.dumps(o["data"][PLOTLY])) for out in outputs for o in out
               if PLOTLY in o.get("data", {})]
    assert len(figures) == 2 and all(f["data"] for f in figures)  # the curves, the two runs overlaid
    names = {t.get("name", "") for t in figures[1]["data"]}
    assert any(n.startswith("vae-quick") for n in names) and any(n.startswith("vae-20d-mnist") for n in names)
    assert any("image/png" in s for s in shown)  # the shipped run's samples
    text = "".join(o.get("text", "") for out in outputs for o in out if o.get("output_type") == "stream")
    assert "trained: vae-quick" in text
    assert "-log p(x), IW k=10 on 500 test images:" in text
    assert _listing(REPO / "checkpoints") == before  # the shipped runs are read, never written
    assert os.environ["GENLAB_DATA"] == str(data_root)
