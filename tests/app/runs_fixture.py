"""Tiny run folders for the app tests (one real trained and evaluated VAE run, one
failed run with a torn metrics line, one run whose config.json is cut short), and the
helpers every app test uses: run a page through the router, read what it wrote."""
from __future__ import annotations

import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING

from streamlit.testing.v1 import AppTest

from genlab.models.vae import VAEConfig
from genlab.runs import store
from genlab.training.train import TrainConfig, train_run

if TYPE_CHECKING:
    import pandas

REPO = Path(__file__).resolve().parents[2]
GOOD, FAILED, BROKEN = "vae-mnist-tiny", "vae-mnist-failed", "broken-config"
FAIL_MSG = "non-finite loss (nan) at step 3: stopped; the last good checkpoint is kept"
NO_RUNS = "No runs yet"
TIMEOUT = 120  # seconds for one script run (the first imports torch, sklearn, umap)


def point_app_at(root: Path, data_root: Path, monkeypatch) -> Path:
    """The app, run in this process by AppTest, reads runs from ``root`` and data from
    ``data_root``, with small child processes, from the repository (as `make run` does)."""
    monkeypatch.setenv("GENLAB_RUNS", str(root))
    monkeypatch.setenv("GENLAB_DATA", str(data_root))
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    monkeypatch.chdir(REPO)
    return root


def run_page(file: str, run: str | None = None) -> AppTest:
    """Run the app (st.navigation registers the pages on the first run), then ``file``,
    with ``run`` selected (st.session_state["run"]) as Home's links do."""
    at = AppTest.from_file(str(REPO / "app.py"), default_timeout=TIMEOUT).run()
    if run is not None:
        at.session_state["run"] = run
    return at.switch_page(file).run()


def texts(at: AppTest) -> str:
    """Everything the page wrote as text, one string (markdown, captions, alerts, ...)."""
    parts = []
    for kind in ("title", "header", "subheader", "markdown", "caption", "info", "warning",
                 "error", "success"):
        parts += [str(e.value) for e in getattr(at, kind)]
    return "\n".join(parts)


def shown(table) -> pandas.DataFrame:
    """What a table (``at.table[i]``) shows, cell by cell, as strings (its ``.value`` is the
    data behind it)."""
    from streamlit import dataframe_util

    return dataframe_util.convert_arrow_bytes_to_pandas_df(table.proto.arrow_data.styler.display_values)


def train_tiny(root: Path, data_root: Path) -> Path:
    """A real 2-epoch VAE run on 500 MNIST images, evaluated on 200 test images."""
    from genlab.evaluation.metrics import evaluate_run

    run = store.new_run_dir(root, GOOD)
    model_cfg = VAEConfig(latent_dim=2, hidden=(64,))
    train_cfg = TrainConfig(dataset="mnist", epochs=2, batch_size=100, limit=500, log_every=1,
                            n_samples=16, data_root=str(data_root), device="cpu")
    store.write_config(run, "vae", model_cfg, train_cfg)
    train_run(run)
    evaluate_run(run, k=5, limit=200, device="cpu")
    return run


def fake_failed(root: Path, good: Path) -> Path:
    """A run that failed after three steps; its metrics file ends in a torn line and its
    only sample grid is not a PNG."""
    run = root / FAILED
    run.mkdir()
    shutil.copy(good / store.CONFIG, run / store.CONFIG)
    lines = (good / store.METRICS).read_text().splitlines()[:3]
    (run / store.METRICS).write_text("\n".join(lines) + '\n{"loss": 12')
    store.atomic_write_json(run / store.STATUS, {"state": "failed", "message": FAIL_MSG})
    (run / "samples").mkdir()
    (run / "samples" / "epoch_001.png").write_bytes(b"\x89PNG\r\n\x1a\n cut short")
    return run


def fake_broken(root: Path) -> Path:
    run = root / BROKEN
    run.mkdir()
    (run / store.CONFIG).write_text('{"model": "vae", "model_config": ')  # cut short
    return run


def make_runs(root: Path, data_root: Path) -> Path:
    good = train_tiny(root, data_root)
    fake_failed(root, good)
    fake_broken(root)
    return root


START_TIMEOUT_S = 120  # python app.py imports torch and the models before it answers: a hang, not a speed


@contextmanager
def served_app(env: dict, log_path: Path) -> Iterator[str]:
    """`python app.py` from the repository on a free localhost port with ``env``, its output
    in ``log_path``; yields its URL once /_stcore/health answers (the log's tail in the
    failure if it never does), and stops it afterwards."""
    import socket
    import subprocess
    import sys
    import time
    import urllib.request

    import pytest

    with socket.socket() as s:
        s.bind(("localhost", 0))
        port = s.getsockname()[1]
    log = open(log_path, "w+")
    proc = subprocess.Popen(
        [sys.executable, "app.py", "--server.port", str(port), "--server.address", "localhost",
         "--server.headless", "true", "--server.fileWatcherType", "none",
         "--browser.gatherUsageStats", "false"], cwd=REPO, env=env, stdout=log, stderr=log)
    url = f"http://localhost:{port}"
    try:
        deadline = time.time() + START_TIMEOUT_S
        while True:
            try:
                with urllib.request.urlopen(f"{url}/_stcore/health", timeout=2) as r:
                    if r.read() == b"ok":
                        break
            except OSError:
                pass
            if proc.poll() is not None or time.time() > deadline:
                log.seek(0)
                pytest.fail(f"streamlit did not start on {url}:\n{log.read()[-3000:]}")
            time.sleep(0.3)
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        log.close()
