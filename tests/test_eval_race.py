"""Two app sessions pressing Evaluate on one run at once (issue 30, item 5): one eval
starts, the other press gets one line saying an eval is running, and the eval.json that
comes out is whole. Pressed by threads (two sessions of one server) and by processes
(two servers on one run folder); a session killed while it was starting a job does not
lock the run for the next one. Real `python -m genlab eval` processes on a copy of a
tiny trained VAE."""
from __future__ import annotations

import json
import multiprocessing
import os
import shutil
import signal
import subprocess
import sys
import threading
from pathlib import Path

import pytest
import torch

from genlab.config import TrainConfig
from genlab.data import load_split
from genlab.models import build_model
from genlab.runs import jobs, status, store
from genlab.training.loop import fit

REPO = Path(__file__).resolve().parents[1]
CHILD_ENV = {"OMP_NUM_THREADS": "1"}
EVAL = dict(k=1, limit=100, device="cpu", exact_n=5, env=CHILD_ENV)  # a few seconds
PRESSES = 4
BUSY = "an eval process (pid {pid}) is still running; wait for it to finish"

pytestmark = [pytest.mark.usefixtures("one_thread"),
              pytest.mark.skipif(not Path("/proc/self").is_dir(), reason="reads /proc")]


@pytest.fixture(scope="module")
def trained(data_root, tmp_path_factory) -> Path:
    """One epoch of a tiny VAE on 200 images, never evaluated (copied by each test)."""
    torch.manual_seed(0)
    path = tmp_path_factory.mktemp("trained") / "run"
    path.mkdir()
    model = build_model("vae", {"latent_dim": 2, "hidden": [16]})
    tc = TrainConfig(epochs=1, batch_size=50, limit=200, log_every=1, n_samples=4,
                     data_root=str(data_root), device="cpu")
    store.write_config(path, "vae", model.cfg, tc)
    fit(model, load_split("mnist", "train", data_root, download=False, limit=200), None, tc,
        run_dir=path)
    return path


@pytest.fixture
def run(trained, tmp_path) -> Path:
    return Path(shutil.copytree(trained, tmp_path / "run")).resolve()


def evals_running(run: Path) -> list[int]:
    """Every live `genlab eval` process on ``run``, found in /proc (not through job.json)."""
    found = []
    for d in Path("/proc").iterdir():
        try:
            argv = (d / "cmdline").read_bytes().rstrip(b"\0").split(b"\0")
            state = (d / "stat").read_text().rsplit(")", 1)[1].split()[0]
        except (OSError, IndexError):
            continue
        words = [w.decode(errors="replace") for w in argv]
        if state != "Z" and words[1:5] == ["-m", "genlab", "eval", str(run)]:
            found.append(int(d.name))
    return found


def check_outcome(run: Path, outcomes: list) -> None:
    """Exactly one press started the eval, every other one got the one line; one eval
    process ran; after it, eval.json is complete and nothing of the lock is left."""
    started = [o for o in outcomes if isinstance(o, dict)]
    refused = [o for o in outcomes if isinstance(o, str)]
    assert len(started) == 1 and len(refused) == PRESSES - 1, outcomes
    pid = started[0]["pid"]
    for line in refused:
        assert line == f"{run.name}: {BUSY.format(pid=pid)}", line
    running = evals_running(run)
    try:
        assert running in ([pid], []), f"eval processes {running}, job.json says {pid}"
        assert jobs.wait(run, 240), status.log_tail(run, status.EVAL_LOG)
    finally:
        for other in evals_running(run):
            os.kill(other, signal.SIGKILL)
    ev = json.loads((run / store.EVAL).read_text())  # whole JSON, or this raises
    assert ev["n_images"] == EVAL["limit"] and ev["split"] == "test" and ev["k"] == 1
    assert ev["nll_exact_n_images"] == EVAL["exact_n"] and "fid" in ev  # its last figures
    assert "nll_nats" in ev and ev["command"].startswith(f"python -m genlab eval {run}")
    assert status.read_job(run).pid == pid
    leftovers = [p.name for p in run.iterdir() if p.name.startswith(".")]
    assert leftovers == [], leftovers  # the lock file goes once the job is started


def _press(run: Path) -> dict | str:
    """What one press of Evaluate gives: the job started ({"pid": ...}) or its one line."""
    try:
        return {"pid": jobs.start_eval(run, **EVAL).pid}
    except jobs.JobError as e:
        return str(e)


def test_sessions_pressing_evaluate_at_once_start_one_eval(run):
    barrier, outcomes = threading.Barrier(PRESSES), []

    def press():
        barrier.wait()
        outcomes.append(_press(run))

    threads = [threading.Thread(target=press) for _ in range(PRESSES)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    check_outcome(run, outcomes)
    print(outcomes)


def _press_in_process(args) -> dict | str:
    run, barrier = args
    barrier.wait()
    return _press(Path(run))


def test_servers_pressing_evaluate_at_once_start_one_eval(run):
    """Processes, as two servers reading one run folder would: the lock is the file
    system's, not a lock in memory. The eval outlives the process that started it."""
    ctx = multiprocessing.get_context("fork")
    with ctx.Manager() as manager:
        barrier = manager.Barrier(PRESSES)
        with ctx.Pool(PRESSES) as pool:
            outcomes = pool.map(_press_in_process, [(str(run), barrier)] * PRESSES)
    check_outcome(run, outcomes)


HOLD = """
import sys, time
from pathlib import Path
from genlab.runs import jobs
fd = jobs._lock(Path(sys.argv[1]) / jobs.LOCK)  # a session caught mid-start
print("held" if fd is not None else "no lock", flush=True)
time.sleep(120)
"""


def test_a_session_killed_while_starting_a_job_leaves_the_run_free(run, monkeypatch):
    """The lock is an flock: while a live process holds it a press waits, then says so
    in one line; once that process is SIGKILLed (its lock file still there) the next
    press starts the eval."""
    holder = subprocess.Popen([sys.executable, "-c", HOLD, str(run)], cwd=REPO, text=True,
                              env={**os.environ, "PYTHONPATH": str(REPO)}, stdout=subprocess.PIPE)
    try:
        assert holder.stdout.readline().strip() == "held"
        monkeypatch.setattr(jobs, "CLAIM_WAIT_S", 0.5)
        with pytest.raises(jobs.JobError) as e:
            jobs.start_eval(run, **EVAL)
        assert str(e.value) == (f"{run.name}: another session has been starting a job in this "
                                "run for 0.5 s; try again")
        assert evals_running(run) == [] and not (run / status.JOB).exists()
    finally:
        holder.kill()
        holder.wait()
    assert (run / jobs.LOCK).exists()  # left by the killed holder, no longer locked
    job = jobs.start_eval(run, **EVAL)
    assert evals_running(run) == [job.pid] and not (run / jobs.LOCK).exists()
    assert jobs.wait(run, 240) and json.loads((run / store.EVAL).read_text())["n_images"] == 100
