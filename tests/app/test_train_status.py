"""What the Train page says about a run's process (issue 13, items 9 and 10): a process
that has written its last state reads that state while it exits (not "starting"), a
resumed run's time left counts only its own steps, and continuing a shipped run trains
a copy under runs/ without touching the shipped files (the app and the CLI)."""
from __future__ import annotations

import os
import shutil
import time
from pathlib import Path

import pytest

from genlab import cli
from genlab.runs import jobs, store, status
from genlab.training.loop import TrainState
from genlab.training.train import _status_callback
from runs_fixture import GOOD


def _job(started: float) -> status.Job:
    return status.Job("resume", os.getpid(), Path("."), alive=True, started=started)


def test_a_process_that_wrote_its_last_state_is_not_starting(tmp_path):
    t = time.time()
    before = {"state": "stopped", "updated": t - 50}  # from the last run, before this job
    assert status.run_state(tmp_path, status.RunStatus.from_json(before), _job(t - 1))[0] == "starting"
    after = {"state": "stopped", "updated": t, "message": "stopped at epoch 3"}  # after Stop
    state, msg = status.run_state(tmp_path, status.RunStatus.from_json(after), _job(t - 1))
    assert state == "stopped" and "exiting" in msg and "starting" not in msg
    done = {"state": "done", "updated": t}  # a finished resume, its process not gone yet
    assert status.run_state(tmp_path, status.RunStatus.from_json(done), _job(t - 1))[0] == "done"


def test_a_resumed_runs_time_left_counts_its_own_steps(tmp_path):
    """Resumed at step 920 of 1000: after 8 of its own 80 steps in 4 s, 36 s are left (the
    old rule read the whole run's 92.8 % as done by this process: 'about 0 s left')."""
    store.atomic_write_json(tmp_path / store.STATUS, {})
    cb = _status_callback(tmp_path, time.time() - 4.0, start_step=920)
    cb("log", TrainState(epoch=11, step=928, total_steps=1000, steps_per_epoch=100))
    eta = store.read_json(tmp_path / store.STATUS)["eta_s"]
    assert 30 < eta < 42, eta


def _shipped(tmp_path: Path, runs_root: Path) -> Path:
    src = Path(shutil.copytree(runs_root / GOOD, tmp_path / "checkpoints" / GOOD))
    store.atomic_write_json(src / store.STATUS, {**store.read_json(src / store.STATUS), "shipped_from": GOOD})
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
    copy = job.run_dir
    assert copy.parent == (tmp_path / "runs").resolve() and copy.name == f"{GOOD}-continued"
    assert jobs.wait(copy, 120), status.log_tail(copy)
    assert store.read_json(copy / store.STATUS)["state"] == "done", status.log_tail(copy)
    assert store.read_json(copy / store.STATUS)["continued_from"] == str(src.resolve())
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
    assert store.read_json(copy / store.STATUS)["state"] == "done"
    assert _files(src) == before


def _budget_limited(tmp_path: Path, runs_root: Path) -> Path:
    """A shipped-like run as the recipe trains them: a 3-CPU-minute budget ends it, its
    100000 epochs only a cap."""
    src = _shipped(tmp_path, runs_root)
    cfg = store.read_json(src / store.CONFIG)
    cfg["train"].update(epochs=100000, max_minutes=3.0, budget_clock="cpu")
    store.atomic_write_json(src / store.CONFIG, cfg)
    store.atomic_write_json(src / store.STATUS, {**store.read_json(src / store.STATUS), "total_epochs": 100000})
    return src


def test_a_budget_limited_run_reads_as_one_and_continues_for_a_budget_or_more_epochs(
        tmp_path, runs_root, monkeypatch):
    """Issue 24, item 8: no "Train until epoch 100000"; the run reads "2 epochs in a
    3-CPU-minute budget", and continuing it offers another budget (its own, 3 CPU minutes, by
    default) or a few more epochs with no time limit, which the resume command carries."""
    from runs_fixture import REPO, run_page, texts

    src = _budget_limited(tmp_path, runs_root)
    monkeypatch.setenv("GENLAB_RUNS", f"{tmp_path / 'runs'},{src.parent}")
    monkeypatch.chdir(REPO)
    launched = []
    monkeypatch.setattr(jobs, "_launch", lambda run_dir, kind, argv, *a, **k: launched.append(argv) or
                        status.Job(kind, 1, run_dir, tuple(argv)))
    at = run_page("pages/train.py")
    at = at.get_by_key("train-watch").set_value(str(src)).run()
    assert not at.exception, [e.value for e in at.exception]
    assert "2 epochs in a 3-CPU-minute budget" in texts(at)
    table = next(t.value for t in at.table if "run" in t.value.columns)
    assert table.set_index("run").loc[src.name, "epoch"] == "2 epochs in a 3-CPU-minute budget"
    assert not [w for w in at.number_input if w.key == f"until-{src}"]
    assert at.get_by_key(f"how-{src}").options == ["a time budget", "more epochs"]
    assert at.get_by_key(f"budget-{src}").value == 3.0 and at.get_by_key(f"budget-{src}").label == "Budget (CPU minutes)"
    at = at.get_by_key(f"resume-{src}").click().run()
    assert not at.exception, [e.value for e in at.exception]
    argv = launched[-1]
    assert argv[argv.index("--max-minutes") + 1] == "3" and "--epochs" not in argv
    assert argv[argv.index("resume") + 1] == str((tmp_path / "runs" / f"{GOOD}-continued").resolve())

    at = at.get_by_key("train-watch").set_value(str(src)).run()
    at = at.get_by_key(f"how-{src}").set_value("more epochs").run()
    assert at.get_by_key(f"more-{src}").value == 5
    at = at.get_by_key(f"resume-{src}").click().run()
    assert not at.exception, [e.value for e in at.exception]
    argv = launched[-1]
    assert argv[argv.index("--epochs") + 1] == "7" and argv[argv.index("--max-minutes") + 1] == "0"
    with pytest.raises(jobs.JobError, match="max_minutes must be a number >= 0"):
        jobs.start_resume(src, max_minutes=-1.0)
