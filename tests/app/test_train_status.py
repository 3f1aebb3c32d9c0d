"""What the Train page says about a run's process (issue 13, items 9 and 10): a process
that has written its last state reads that state while it exits (not "starting"), a
resumed run's time left counts only its own steps, and continuing a shipped run trains
a copy under runs/ without touching the shipped files (the app and the CLI)."""
from __future__ import annotations

import os
import shutil
import time
from pathlib import Path

from genlab import cli, jobs, runs, status
from genlab.loop import TrainState
from genlab.train import _status_callback
from runs_fixture import GOOD


def _job(started: float) -> dict:
    return {"kind": "resume", "pid": os.getpid(), "alive": True, "started": started}


def test_a_process_that_wrote_its_last_state_is_not_starting(tmp_path):
    t = time.time()
    before = {"state": "stopped", "updated": t - 50}  # from the last run, before this job
    assert status.run_state(tmp_path, before, _job(t - 1))[0] == "starting"
    after = {"state": "stopped", "updated": t, "message": "stopped at epoch 3"}  # after Stop
    state, msg = status.run_state(tmp_path, after, _job(t - 1))
    assert state == "stopped" and "exiting" in msg and "starting" not in msg
    done = {"state": "done", "updated": t}  # a finished resume, its process not gone yet
    assert status.run_state(tmp_path, done, _job(t - 1))[0] == "done"


def test_a_resumed_runs_time_left_counts_its_own_steps(tmp_path):
    """Resumed at step 920 of 1000: after 8 of its own 80 steps in 4 s, 36 s are left (the
    old rule read the whole run's 92.8 % as done by this process: 'about 0 s left')."""
    runs.atomic_write_json(tmp_path / runs.STATUS, {})
    cb = _status_callback(tmp_path, time.time() - 4.0, start_step=920)
    cb("log", TrainState(epoch=11, step=928, total_steps=1000, steps_per_epoch=100))
    eta = runs.read_json(tmp_path / runs.STATUS)["eta_s"]
    assert 30 < eta < 42, eta


def _shipped(tmp_path: Path, runs_root: Path) -> Path:
    src = Path(shutil.copytree(runs_root / GOOD, tmp_path / "checkpoints" / GOOD))
    runs.atomic_write_json(src / runs.STATUS, {**runs.read_json(src / runs.STATUS), "shipped_from": GOOD})
    return src


def _files(run: Path) -> dict:
    return {p.relative_to(run): (p.stat().st_mtime_ns, p.read_bytes()) for p in run.rglob("*") if p.is_file()}


def test_continuing_a_shipped_run_trains_a_copy(tmp_path, runs_root, data_root, monkeypatch):
    src = _shipped(tmp_path, runs_root)
    assert status.read_only(src) and not status.read_only(runs_root / GOOD)
    monkeypatch.setenv("GENLAB_RUNS", str(src.parent))  # the shipped folder is never the copy's
    assert status.continue_root(src) == Path("runs")
    before = _files(src)
    monkeypatch.setenv("GENLAB_DATA", str(data_root))
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    job = jobs.start_resume(src, epochs=3, copy_to=tmp_path / "runs")
    copy = Path(job["run_dir"])
    assert copy.parent == (tmp_path / "runs").resolve() and copy.name == f"{GOOD}-continued"
    assert jobs.wait(copy, 120), status.log_tail(copy)
    assert runs.read_json(copy / runs.STATUS)["state"] == "done", status.log_tail(copy)
    assert runs.read_json(copy / runs.STATUS)["continued_from"] == str(src.resolve())
    assert _files(src) == before  # not one byte or time of the shipped run changed


def test_the_cli_resumes_a_shipped_run_in_a_copy(tmp_path, runs_root, data_root, monkeypatch, capsys):
    src = _shipped(tmp_path, runs_root)
    before = _files(src)
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("GENLAB_RUNS", raising=False)  # the default: runs, then checkpoints
    monkeypatch.setenv("GENLAB_DATA", str(data_root))
    assert cli.main(["resume", str(src), "--epochs", "3", "--quiet"]) == 0
    assert "continuing in a copy" in capsys.readouterr().out
    copy = tmp_path / "runs" / f"{GOOD}-continued"
    assert runs.read_json(copy / runs.STATUS)["state"] == "done"
    assert _files(src) == before
