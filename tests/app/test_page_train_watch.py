"""AppTest of the Train page's Start, Resume and "Continue training in a copy" while other
runs are listed, as they always are beside the shipped runs (issue 24, item 1): none
raises (the watched-run selectbox was set after it was drawn:
StreamlitWidgetAlreadyInstantiatedError), the page watches the new run and shows its
first live point. Real tiny training processes (a few hundred images, one epoch)."""
from __future__ import annotations

import json
import shutil
import time
from pathlib import Path

import pytest

from genlab.runs import jobs, store, status
from pages.ui.train_ui import WATCH
from runs_fixture import BROKEN, FAILED, GOOD, run_page, texts

PAGE = "pages/train.py"
RUN_TIMEOUT_S = 180  # start a process (imports torch), train, validate, save: a busy machine
SHIPPED = f"{GOOD}-shipped"


@pytest.fixture
def listed(tmp_path, runs_root, data_root, monkeypatch) -> Path:
    """A run folder holding the fixture's runs (done, failed, broken) and a shipped-like
    folder beside it with a read-only copy of the done run; the app reads both."""
    mine, shipped = tmp_path / "runs", tmp_path / "checkpoints"
    for name in (GOOD, FAILED, BROKEN):
        shutil.copytree(runs_root / name, mine / name)
    src = Path(shutil.copytree(runs_root / GOOD, shipped / SHIPPED))
    store.atomic_write_json(src / store.STATUS, {**store.read_json(src / store.STATUS), "shipped_from": GOOD})
    monkeypatch.setenv("GENLAB_RUNS", f"{mine},{shipped}")
    monkeypatch.setenv("GENLAB_DATA", str(data_root))
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    monkeypatch.chdir(Path(__file__).resolve().parents[2])
    return tmp_path


def _ok(at):
    assert not at.exception, [e.value for e in at.exception]
    assert "Traceback" not in texts(at)
    return at


def _live_points(at, run: Path) -> int:
    """Points in the watched run's live loss chart (0 when it is not drawn yet)."""
    for chart in at.get("plotly_chart"):
        if chart.proto.id.endswith(f"-live-{run}"):
            spec = json.loads(chart.proto.spec)
            return sum(len(t.get("x") or []) for t in spec.get("data", []))
    return 0


def _watch_until_live(at, run: Path, more_than: int = 0):
    """Rerun the page (what its polling fragment does) until ``run``'s live chart holds
    more than ``more_than`` points; then wait for its process to exit."""
    deadline = time.time() + RUN_TIMEOUT_S
    while _live_points(at, run) <= more_than:
        assert time.time() < deadline, status.log_tail(run)
        time.sleep(1.0)
        at = _ok(at.run())
        assert at.session_state[WATCH] == str(run)  # still watched across the reruns
    assert jobs.wait(run, RUN_TIMEOUT_S), status.log_tail(run)
    return _ok(at.run())


def test_start_resume_and_continue_while_runs_are_listed(listed):
    at = _ok(run_page(PAGE))
    assert len(at.get_by_key(WATCH).options) == 4  # the page lists the runs before any click
    # Start
    for key, v in {"m-vae-latent_dim": 2, "m-vae-hidden": "32", "t-epochs": 1, "t-limit": 300,
                   "t-batch_size": 100, "t-log_every": 1, "t-n_samples": 4, "t-device": "cpu",
                   "train-name": "new-run"}.items():
        at.get_by_key(key).set_value(v)
    at = _ok(at.form_submit_button[0].click().run())
    new = (listed / "runs" / "new-run").resolve()
    assert at.session_state[WATCH] == str(new)
    assert [s.value for s in at.subheader][0].endswith("new-run")
    assert "Started" in "\n".join(s.value for s in at.success)
    at = _watch_until_live(at, new)
    assert store.read_json(new / store.STATUS)["state"] == "done", status.log_tail(new)

    # Resume another run (a done one: train one epoch further)
    good = str(listed / "runs" / GOOD)
    at = _ok(at.get_by_key(WATCH).set_value(good).run())
    before = _live_points(at, Path(good))
    assert before > 0
    at = _ok(at.get_by_key(f"resume-{good}").click().run())
    assert at.session_state[WATCH] == good
    assert "Resumed" in "\n".join(s.value for s in at.success)
    at = _watch_until_live(at, Path(good), more_than=before)
    assert store.read_json(Path(good) / store.STATUS)["epoch"] == 3, status.log_tail(good)

    # Continue the shipped run in a copy: the copy is watched
    shipped = str(listed / "checkpoints" / SHIPPED)
    at = _ok(at.get_by_key(WATCH).set_value(shipped).run())
    at = _ok(at.get_by_key(f"resume-{shipped}").click().run())
    copy = (listed / "runs" / f"{SHIPPED}-continued").resolve()
    assert at.session_state[WATCH] == str(copy)
    assert "in a copy" in "\n".join(s.value for s in at.success)
    at = _watch_until_live(at, copy, more_than=before)
    assert at.query_params.get("watch") in ([copy.name], copy.name)
