"""A server killed while its runs train (issue 30, item 3): nothing ties a job to the
process that started it, so after a SIGKILL of that process its runs go on and finish,
with every metrics line the trainer wrote meanwhile, and a process that never started
them (a new interpreter, no Popen of theirs: a restarted server) finds a running one by
its job.json alone, sees it alive and stops it, with a checkpoint.

The "server" is a Python process that starts three tiny trainings through
jobs.start_train, as the Train page does, and then waits (tests/app/test_reconnect_browser.py
does the same with `python app.py` and a browser). A reused pid is tested in
test_jobs.py."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from genlab.runs import jobs, status, store

REPO = Path(__file__).resolve().parents[1]
SHORT_EPOCHS, LONG_EPOCHS = 20, 100_000  # a few seconds of training; the long one is stopped
STEPS_PER_EPOCH = 10  # limit 1000, batch 100
SERVER = """
import json, sys, time
from genlab.runs import jobs
root, data = sys.argv[1], sys.argv[2]
for name, epochs in json.loads(sys.argv[3]).items():
    model_cfg, train_cfg = jobs.check_train(
        "vae", "mnist", {"latent_dim": 2, "hidden": "32"},
        {"limit": 1000, "batch_size": 100, "log_every": 1, "n_samples": 4, "device": "cpu",
         "epochs": epochs}, root=data)
    run = jobs.start_train(root, name, "vae", model_cfg, train_cfg, root=data,
                           env={"OMP_NUM_THREADS": "1"})
    print(run, flush=True)
time.sleep(600)  # serving, until killed
"""
FRESH = """
import json, sys
from pathlib import Path
from genlab.runs import jobs, status
run = Path(sys.argv[1])
job, info = status.read_job(run), jobs.run_info(run)
out = {"alive": job.alive, "pid": job.pid, "state": info.state, "tracked": len(status._CHILDREN)}
out["stopped"] = jobs.stop(run)
out["waited"] = jobs.wait(run, 120)
print(json.dumps(out))
"""

pytestmark = pytest.mark.skipif(not Path("/proc/self").is_dir(), reason="reads /proc")


def env() -> dict:
    return {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(REPO)}


def _wait_for(pred, timeout: float, what: str):
    deadline = time.time() + timeout
    while time.time() < deadline:
        value = pred()
        if value:
            return value
        time.sleep(0.1)
    raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what}")


def lines(run: Path) -> list[dict]:
    """metrics.jsonl, every line whole JSON (a torn or bad line fails here)."""
    text = (run / store.METRICS).read_text()
    assert text.endswith("\n"), "a torn last line"
    return [json.loads(line) for line in text.splitlines()]


def check_complete(records: list[dict], epochs: int) -> None:
    """Each step and each epoch's train and val record, once, in order."""
    steps = [r["step"] for r in records if r["event"] == "step"]
    assert steps == list(range(1, epochs * STEPS_PER_EPOCH + 1)), steps
    assert [(r["epoch"], r["split"]) for r in records if r["event"] == "epoch"] == [
        (e, s) for e in range(1, epochs + 1) for s in ("train", "val")]


def test_runs_outlive_a_killed_server_and_a_new_process_stops_one(tmp_path, data_root):
    root = tmp_path / "runs"
    plan = {"long": LONG_EPOCHS, "short-a": SHORT_EPOCHS, "short-b": SHORT_EPOCHS}
    server = subprocess.Popen([sys.executable, "-c", SERVER, str(root), str(data_root),
                               json.dumps(plan)], cwd=REPO, env=env(), text=True,
                              stdout=subprocess.PIPE)
    runs = {}
    try:
        for name in plan:
            run = Path(server.stdout.readline().strip())
            assert run.name == name, run
            runs[name] = run
        for run in runs.values():  # all three at work before the kill
            _wait_for(lambda: (store.read_json(run / store.STATUS) or {}).get("state") == "running",
                      120, f"{run.name} to run")
        jobs_before = {n: status.read_job(r) for n, r in runs.items()}
        server.send_signal(signal.SIGKILL)
        assert server.wait(10) == -signal.SIGKILL
        at_kill = {n: len(lines(r)) for n, r in runs.items()}
        assert all(j.alive for j in jobs_before.values())
        assert {n: status.read_job(r).alive for n, r in runs.items()} == dict.fromkeys(plan, True)
        assert all(store.read_json(r / store.STATUS)["state"] == "running" for r in runs.values())

        for name in ("short-a", "short-b"):  # they go on and finish
            run = runs[name]
            assert jobs.wait(run, 180), status.log_tail(run)
            st = store.read_json(run / store.STATUS)
            assert (st["state"], st["epoch"]) == ("done", SHORT_EPOCHS), status.log_tail(run)
            records = lines(run)
            assert len(records) > at_kill[name]  # written while the server was gone
            check_complete(records, SHORT_EPOCHS)
            assert store.load_checkpoint(run / store.CHECKPOINT)["epoch"] == SHORT_EPOCHS
            assert jobs.run_info(run).state == "done"

        long = runs["long"]
        _wait_for(lambda: len(lines(long)) > at_kill["long"] + 20, 60, "the long run to go on")
        fresh = subprocess.run([sys.executable, "-c", FRESH, str(long)], cwd=REPO, env=env(),
                               capture_output=True, text=True, timeout=180)
        assert fresh.returncode == 0, fresh.stderr
        seen = json.loads(fresh.stdout)
        assert seen == {"alive": True, "pid": jobs_before["long"].pid, "state": "running",
                        "tracked": 0, "stopped": True, "waited": True}, seen
        st = store.read_json(long / store.STATUS)
        assert st["state"] == "stopped" and "resume" in st["message"], st
        ckpt = store.load_checkpoint(long / store.CHECKPOINT)
        records = lines(long)
        assert len(records) > at_kill["long"] + 20  # lines written after the kill are all there
        assert ckpt["step"] == st["step"], (ckpt["step"], st)
        assert [r["step"] for r in records if r["event"] == "step"] == list(range(1, st["step"] + 1))
        assert not status.read_job(long).alive and jobs.run_info(long).state == "stopped"
        print(f"metrics lines at the kill {at_kill}; the long run stopped at step {st['step']}")
    finally:
        if server.poll() is None:
            server.kill()
            server.wait()
        for run in runs.values():
            if jobs.stop(run):
                jobs.wait(run, 60)
