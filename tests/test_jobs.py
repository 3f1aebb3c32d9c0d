"""genlab.runs.jobs: the launch form mirrors the config metadata, the launched command is
exactly the validated configs, and real subprocess runs start, stop on SIGTERM with a
checkpoint, resume to the end, and report a failure in their run directory."""
from __future__ import annotations

import dataclasses
import errno
import hashlib
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from genlab import cli
from genlab.models import MODELS
from genlab.models.vae import VAEConfig
from genlab.runs import jobs, store, status
from genlab.training.train import TrainConfig

CHILD_ENV = {"OMP_NUM_THREADS": "1"}  # two cores, shared: keep child processes small
TINY = ({"latent_dim": 2, "hidden": "32"},
        {"limit": 1000, "batch_size": 100, "log_every": 1, "n_samples": 4, "device": "cpu"})


def _wait_for(pred, timeout: float, what: str):
    deadline = time.time() + timeout
    while time.time() < deadline:
        value = pred()
        if value:
            return value
        time.sleep(0.2)
    raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what}")


def _epoch_records(run_dir) -> list[tuple[int, str]]:
    records, bad = store.read_metrics(run_dir / store.METRICS)
    assert bad == 0
    return [(r["epoch"], r["split"]) for r in records if r["event"] == "epoch"]


def test_field_specs_mirror_the_config_metadata():
    specs = {s.name: s for s in jobs.field_specs(VAEConfig)}
    assert "image_shape" not in specs  # cli=False: set from the dataset
    assert list(specs) == [f.name for f in dataclasses.fields(VAEConfig) if f.name != "image_shape"]
    assert (specs["latent_dim"].kind, specs["latent_dim"].lo, specs["latent_dim"].hi) == ("int", 1, 1024)
    assert specs["hidden"].kind == "ints" and specs["hidden"].default == (512, 512)
    assert specs["arch"].kind == "choice" and specs["arch"].choices == ("mlp", "conv")
    assert "Allowed: >= 1 and <= 1024; default 20." in specs["latent_dim"].help
    lr = {s.name: s for s in jobs.field_specs(TrainConfig)}["lr"]
    assert lr.kind == "float" and lr.lo == 0.0 and lr.lo_open and lr.hi == 1.0
    assert "dataset" not in {s.name for s in jobs.field_specs(TrainConfig, skip=("dataset",))}


@pytest.mark.parametrize("model", list(MODELS))
def test_launch_command_is_the_validated_config(model, data_root, tmp_path):
    """What the page validated is what the process trains: the config.json the app writes
    reads back as equal model and training configs, for every model's defaults, and is
    the file the CLI writes for the same options; the command names only the run folder."""
    model_cfg, train_cfg = jobs.check_train(model, "mnist", {}, {"epochs": 3, "lr": 2.5e-4},
                                            root=data_root, build=False)
    run = jobs.create_run(tmp_path / "app", "x", model, model_cfg, train_cfg)
    rc = store.read_config(run)
    assert (rc.model, rc.model_config, rc.train) == (model, model_cfg, train_cfg)
    assert rc.model_config.image_shape == (1, 28, 28) and rc.train.lr == 2.5e-4
    ns = cli.build_parser().parse_args(["train", "--model", model, "--epochs", "3", "--lr", "2.5e-4"])
    assert cli.parse_train(ns) == rc
    assert jobs.train_argv(run)[1:] == ["-m", "genlab", "train", "--run-dir", str(run), "--quiet"]


@pytest.mark.parametrize("model_values,train_values,needle", [
    ({"hidden": "64,abc"}, {}, "hidden must be comma-separated whole numbers"),
    ({"latent_dim": 0}, {}, "--latent-dim must be >= 1 and <= 1024 (got 0)"),
    ({"arch": "transformer"}, {}, "arch must be one of mlp, conv"),
    ({}, {"lr": 0.0}, "lr must be > 0 and <= 1 (got 0)"),
    ({}, {"epochs": 0}, "epochs must be >= 1"),
    ({"depth": 3}, {}, "--depth does not apply to model vae"),
])
def test_bad_values_are_explained_in_one_line(model_values, train_values, needle, data_root):
    with pytest.raises(ValueError) as e:
        jobs.check_train("vae", "mnist", model_values, train_values, root=data_root)
    assert needle in str(e.value) and "\n" not in str(e.value)


SEVERAL_BAD = ({"latent_dim": 0, "hidden": "64,abc", "depth": 3}, {"lr": 5.0, "epochs": 0})
SEVERAL_SAID = ("--depth does not apply to model vae", "--latent-dim must be >= 1 and <= 1024 (got 0)",
                "--hidden must be comma-separated whole numbers (got '64,abc')",
                "--lr must be > 0 and <= 1 (got 5)", "--epochs must be >= 1 and <= 100000 (got 0)")


def test_every_bad_value_is_reported_one_line_each(data_root, capsys):
    """Issue 24, item 10: of several bad values, each is one line saying what was wrong and
    what is allowed (the Train page's check and the CLI share the parse); not only the first."""
    with pytest.raises(ValueError) as e:
        jobs.check_train("vae", "mnist", *SEVERAL_BAD, root=data_root)
    lines = str(e.value).splitlines()
    assert len(lines) == len(SEVERAL_SAID), lines
    for said in SEVERAL_SAID:
        assert sum(said in line for line in lines) == 1, (said, lines)
    # the CLI, through the same parse: one error line per bad option, nothing trained
    argv = ["train", "--model", "vae", "--latent-dim", "0", "--hidden", "64,abc", "--lr", "5",
            "--epochs", "0", "--data-root", str(data_root)]
    assert cli.main(argv) == cli.EXIT_USAGE
    err = [line for line in capsys.readouterr().err.splitlines() if line.strip()]
    assert len(err) == 4 and all(line.startswith("genlab train: error: --") for line in err), err
    for said in SEVERAL_SAID[1:]:
        assert sum(said in line for line in err) == 1, (said, err)


def test_missing_dataset_unknown_device_and_bad_names(tmp_path, data_root):
    with pytest.raises(ValueError, match=r"mnist is not in .*MNIST/raw \(expected train-images"):
        jobs.check_train("vae", "mnist", {}, {}, root=tmp_path)
    if not torch.cuda.is_available():
        with pytest.raises(ValueError, match="no CUDA GPU"):
            jobs.check_train("vae", "mnist", {}, {"device": "cuda"}, root=data_root)
    with pytest.raises(ValueError, match="unknown model"):
        jobs.check_train("no-such-model", "mnist", {}, {}, root=data_root)
    for bad in ("", "../up", "a/b", "-x", "name with space", "x" * 101):
        with pytest.raises(ValueError, match="letters, digits"):
            jobs.check_name(bad)
    assert jobs.check_name("vae-mnist_2.b") == "vae-mnist_2.b"


def test_start_stop_resume_a_real_run(tmp_path, data_root):
    """SIGTERM to the job's process group -> the trainer saves a checkpoint at the last
    whole epoch and writes "stopped"; resume then trains to the end with every epoch's
    metrics exactly once."""
    model_cfg, train_cfg = jobs.check_train("vae", "mnist", TINY[0], {**TINY[1], "epochs": 200},
                                            root=data_root)
    run = jobs.start_train(tmp_path, "tiny", "vae", model_cfg, train_cfg, root=data_root, env=CHILD_ENV)
    assert run == tmp_path.resolve() / "tiny" and status.read_job(run).alive
    _wait_for(lambda: (store.read_json(run / store.STATUS) or {}).get("epoch", 0) >= 2, 90,
              "the second epoch to begin")  # status "epoch": the one in progress
    with pytest.raises(jobs.JobError, match="still running"):
        jobs.start_resume(run)
    assert jobs.stop(run) and jobs.wait(run, 60)
    st = store.read_json(run / store.STATUS)
    assert st["state"] == "stopped" and "resume" in st["message"]
    done = st["epoch"]
    ckpt = store.load_checkpoint(run / store.CHECKPOINT)
    assert ckpt["epoch"] == done >= 1 and not status.read_job(run).alive and not jobs.stop(run)
    jobs.start_resume(run, epochs=done + 1, root=data_root, env=CHILD_ENV)
    assert jobs.wait(run, 90)
    st = store.read_json(run / store.STATUS)
    assert (st["state"], st["epoch"]) == ("done", done + 1), status.log_tail(run)
    assert _epoch_records(run) == [(e, s) for e in range(1, done + 2) for s in ("train", "val")]
    log = (run / status.TRAIN_LOG).read_text()
    assert "$ -m genlab train --run-dir" in log and f"$ -m genlab resume {run} --quiet" in log


def test_a_failing_run_reports_its_error(tmp_path, data_root):
    """The configs were valid where the page looked, but the process finds no data: its
    status says failed with the one-line reason, and the log holds it too."""
    model_cfg, train_cfg = jobs.check_train("vae", "mnist", *TINY, root=data_root)
    empty = tmp_path / "no-data"
    empty.mkdir()
    run = jobs.start_train(tmp_path / "runs", "doomed", "vae", model_cfg, train_cfg, root=empty,
                           env=CHILD_ENV)
    assert jobs.wait(run, 90)
    st = store.read_json(run / store.STATUS)
    assert st["state"] == "failed" and "mnist" in st["message"] and str(empty) in st["message"]
    assert "genlab: error:" in status.log_tail(run, lines=3)
    with pytest.raises(jobs.JobError, match="no checkpoint"):
        jobs.start_resume(run)
    with pytest.raises(jobs.JobError, match="no checkpoint"):
        jobs.start_eval(run)


def test_a_dead_or_foreign_pid_is_not_alive(tmp_path):
    import subprocess
    import sys

    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    store.atomic_write_json(tmp_path / status.JOB, {"kind": "train", "pid": dead.pid})
    assert status.read_job(tmp_path).alive is False and not jobs.stop(tmp_path)
    sleeper = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
    try:  # alive, but not a genlab process for this run: never signalled
        store.atomic_write_json(tmp_path / status.JOB, {"kind": "train", "pid": sleeper.pid})
        assert status.read_job(tmp_path).alive is False and not jobs.stop(tmp_path)
        assert sleeper.poll() is None
    finally:
        sleeper.kill()
        sleeper.wait()


def test_log_tail_and_eval_progress(tmp_path):
    (tmp_path / status.EVAL_LOG).write_text(
        "$ -m genlab eval run --k 10\n"
        "log p(x), k=10:   0%|          | 0/500 [00:00<?, ?img/s]\r"
        "log p(x), k=10:  40%|####      | 200/500 [00:01<00:01, 180img/s]\r"
        "log p(x), k=10:  60%|######    | 300/500 [00:01<00:01, 180img/s]")
    frac, what = jobs.eval_progress(tmp_path)
    assert frac == pytest.approx(0.6) and what == "log p(x): 300/500 images"
    assert status.log_tail(tmp_path, status.EVAL_LOG, lines=1).startswith("log p(x), k=10:  60%")
    assert jobs.eval_progress(tmp_path / "nowhere") == (None, "starting")
    (tmp_path / status.TRAIN_LOG).write_text("".join(f"line {i}\n" for i in range(30)))
    assert status.log_tail(tmp_path, lines=2) == "line 28\nline 29"


def test_job_dirs_lists_runs_and_jobs_that_died_early(tmp_path):
    (tmp_path / "a").mkdir()
    (tmp_path / "a" / store.CONFIG).write_text("{}")
    (tmp_path / "b").mkdir()
    (tmp_path / "b" / status.JOB).write_text(json.dumps({"kind": "train", "pid": 1}))
    (tmp_path / "c").mkdir()  # neither: not listed
    assert sorted(p.name for p in jobs.job_dirs(tmp_path, tmp_path / "missing")) == ["a", "b"]


# -- a restarted server, a reused pid, a full disk (issue 30, items 3 and 5) ----------------
@pytest.mark.skipif(not Path("/proc/self").is_dir(), reason="reads command lines in /proc")
def test_a_reused_pid_is_not_the_job_even_naming_genlab_and_the_run(tmp_path):
    """job.json alone finds the job (a restarted server has no Popen of it): its pid must
    run the very command job.json recorded. A process that took the pid and whose command
    line names genlab and the run folder is neither shown alive nor signalled."""
    run = tmp_path / "run"
    run.mkdir()
    argv = [sys.executable, "-c", "import time; time.sleep(60)", "genlab", str(run)]
    other = subprocess.Popen(argv, start_new_session=True)  # a group leader, as a job is
    try:
        _wait_for(lambda: (Path(f"/proc/{other.pid}/cmdline").read_bytes()
                           .startswith(sys.executable.encode())), 30, "the process to start")
        recorded = jobs.train_argv(run)  # what the app started with this pid
        store.atomic_write_json(run / status.JOB, {"kind": "train", "pid": other.pid,
                                                   "argv": recorded})
        assert status.read_job(run).alive is False and not jobs.stop(run)
        assert other.poll() is None, "a process that is not the job was signalled"
        store.atomic_write_json(run / status.JOB, {"kind": "train", "pid": other.pid, "argv": argv})
        assert status.read_job(run).alive is True  # the recorded command: the job itself
        assert jobs.stop(run) and other.wait(30) == -signal.SIGTERM
    finally:
        other.kill()
        other.wait()


FAULTS = '''
import errno, hashlib, os, signal
LOG, FULL = os.environ["GENLAB_FAULT_LOG"], [os.environ.get("GENLAB_FAULT_FULL") == "1"]
_signal, _fsync, _replace = signal.signal, os.fsync, os.replace
def note(line):
    with open(LOG, "a") as f:
        f.write(line + "\\n")
def signal_(sig, handler):  # the disk fills the moment Stop is pressed
    if sig == signal.SIGTERM and callable(handler):
        inner = handler
        def handler(*args):
            FULL[0] = True
            return inner(*args)
    return _signal(sig, handler)
def fsync(fd):  # a full disk, as delayed allocation reports it
    if FULL[0] and os.path.basename(os.readlink(f"/proc/self/fd/{fd}")).startswith(".checkpoint.pt."):
        note("refused")
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
    return _fsync(fd)
def replace(src, dst, **kwargs):  # each checkpoint that was written whole
    _replace(src, dst, **kwargs)
    if str(dst).endswith("checkpoint.pt"):
        with open(dst, "rb") as f:
            note("saved " + hashlib.sha256(f.read()).hexdigest())
signal.signal, os.fsync, os.replace = signal_, fsync, replace
'''


def _faulty_env(tmp_path, *, full_now: bool) -> tuple[dict, Path]:
    """A child environment whose Python runs FAULTS first (a sitecustomize on its path):
    checkpoint writes fail with ENOSPC from the start (``full_now``) or from SIGTERM on;
    it notes every checkpoint written and every write refused in the returned log."""
    hook, log = tmp_path / "hook", tmp_path / "faults.log"
    hook.mkdir(exist_ok=True)
    (hook / "sitecustomize.py").write_text(FAULTS)
    return {**CHILD_ENV, "PYTHONPATH": str(hook), "GENLAB_FAULT_LOG": str(log),
            "GENLAB_FAULT_FULL": "1" if full_now else "0"}, log


def _sha(path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _one_failure_line(run, *words) -> str:
    """status.json says failed in one line holding ``words``; the Train page says the
    same; train.log ends with it as the CLI's error."""
    st = store.read_json(run / store.STATUS)
    msg = st["message"]
    assert st["state"] == "failed" and "\n" not in msg and "Traceback" not in msg, st
    for w in words:
        assert str(w) in msg, (w, msg)
    assert (jobs.run_info(run).state, jobs.run_info(run).message) == ("failed", msg)
    assert status.log_tail(run, lines=1) == f"genlab: error: {msg}"
    assert "Traceback" not in (run / status.TRAIN_LOG).read_text()
    return msg


@pytest.mark.skipif(not Path("/proc/self/fd").is_dir(), reason="needs /proc to name an fd")
def test_a_stop_on_a_full_disk_keeps_the_last_checkpoint(tmp_path, data_root):
    """Stop (SIGTERM) makes the trainer save a checkpoint; that write fails (ENOSPC): the
    checkpoint written before it is there, whole and byte for byte, the run says why in
    one line, and Resume continues from it."""
    env, log = _faulty_env(tmp_path, full_now=False)
    model_cfg, train_cfg = jobs.check_train("vae", "mnist", TINY[0], {
        **TINY[1], "limit": 5000, "batch_size": 50, "epochs": 200}, root=data_root)
    run = jobs.start_train(tmp_path / "runs", "full", "vae", model_cfg, train_cfg, root=data_root,
                           env=env)
    _wait_for(lambda: (store.read_json(run / store.STATUS) or {}).get("epoch", 0) >= 2, 120,
              "the first checkpoint")
    assert jobs.stop(run) and jobs.wait(run, 120)
    notes = log.read_text().splitlines()
    assert "refused" in notes and "saved" not in " ".join(notes[notes.index("refused"):]), notes
    last_good = [n.split()[1] for n in notes if n.startswith("saved")][-1]
    assert _sha(run / store.CHECKPOINT) == last_good  # the one written before the stop
    done = store.load_checkpoint(run / store.CHECKPOINT)["epoch"]
    assert done >= 1
    msg = _one_failure_line(run, f"cannot write {run / store.CHECKPOINT}: No space left on device",
                            "the last checkpoint, which is kept", "then resume")
    assert [p.name for p in run.iterdir() if p.name.startswith(".")] == []  # no temporary file
    jobs.start_resume(run, epochs=done + 1, root=data_root, env=CHILD_ENV)  # space again
    assert jobs.wait(run, 120)
    st = store.read_json(run / store.STATUS)
    assert (st["state"], st["epoch"]) == ("done", done + 1), status.log_tail(run)
    assert _epoch_records(run) == [(e, s) for e in range(1, done + 2) for s in ("train", "val")]
    print(msg)


@pytest.fixture
def trained(data_root, tmp_path) -> Path:
    """A finished one-epoch run of a tiny VAE (200 images)."""
    from genlab.data import load_split
    from genlab.models import build_model
    from genlab.training.loop import fit

    run = (tmp_path / "trained").resolve()
    run.mkdir()
    model = build_model("vae", {"latent_dim": 2, "hidden": [16]})
    tc = TrainConfig(epochs=1, batch_size=50, limit=200, log_every=1, n_samples=4,
                     data_root=str(data_root), device="cpu")
    store.write_config(run, "vae", model.cfg, tc)
    fit(model, load_split("mnist", "train", data_root, download=False, limit=200), None, tc,
        run_dir=run)
    return run


@pytest.mark.skipif(not Path("/proc/self/fd").is_dir(), reason="needs /proc to name an fd")
def test_a_resume_on_a_full_disk_keeps_the_checkpoint(trained, tmp_path, data_root):
    before = _sha(trained / store.CHECKPOINT)
    env, log = _faulty_env(tmp_path, full_now=True)
    jobs.start_resume(trained, epochs=2, root=data_root, env=env)
    assert jobs.wait(trained, 120)
    assert "refused" in log.read_text().split()
    assert _sha(trained / store.CHECKPOINT) == before  # never replaced
    assert store.load_checkpoint(trained / store.CHECKPOINT)["epoch"] == 1
    print(_one_failure_line(trained, f"cannot write {trained / store.CHECKPOINT}: "
                                     "No space left on device"))


def _tree(path) -> dict:
    return {str(p.relative_to(path)): _sha(p) for p in sorted(path.rglob("*")) if p.is_file()}


@pytest.mark.skipif(not Path("/proc/self/fd").is_dir(), reason="needs /proc to name an fd")
def test_continuing_a_shipped_run_on_a_full_disk_copies_nothing(trained, tmp_path, monkeypatch):
    """Continue in a copy of a read-only run: the disk fills while checkpoint.pt is being
    copied (after its first 4 KiB). One line (JobError) naming the file; the original is
    untouched and no half copy (a truncated checkpoint the lists would show) is left."""
    store.write_status(trained, shipped_from="trained")  # read-only: continued in a copy
    before, dest = _tree(trained), tmp_path / "continued"
    real = os.sendfile  # what shutil.copyfile copies with on Linux

    def sendfile(out_fd, in_fd, offset, count):
        if os.readlink(f"/proc/self/fd/{out_fd}").endswith(store.CHECKPOINT):
            if offset:
                raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
            count = min(count, 4096)
        return real(out_fd, in_fd, offset, count)

    monkeypatch.setattr(shutil, "_USE_CP_SENDFILE", True)
    monkeypatch.setattr(os, "sendfile", sendfile)
    with pytest.raises(jobs.JobError) as e:
        jobs.start_resume(trained, epochs=2, copy_to=dest)
    copy = dest.resolve() / "trained-continued"
    assert str(e.value) == (f"cannot continue trained in a copy: cannot write {copy / store.CHECKPOINT}: "
                            "No space left on device; nothing was kept of the copy and trained is "
                            "unchanged")
    assert _tree(trained) == before and list(dest.iterdir()) == []
    monkeypatch.setattr(os, "sendfile", real)  # space again: the copy is whole
    made = store.copy_for_resume(trained, dest)
    assert made == copy and copy.stat().st_mode == dest.stat().st_mode
    assert {k: v for k, v in _tree(copy).items() if k != store.STATUS} == {
        k: v for k, v in before.items() if k != store.STATUS}
    assert store.read_json(copy / store.STATUS)["continued_from"] == str(trained)


def test_a_job_json_that_cannot_be_written_starts_nothing(trained, monkeypatch):
    """The process is started, then its job.json cannot be written (a full disk): without
    it no page could see or stop the job, so it is killed and the press gets one line."""
    real, started = store.atomic_write_json, []

    def atomic_write_json(path, obj):
        if Path(path).name == status.JOB:
            started.append(obj["pid"])
            raise store._write_error(Path(path), OSError(errno.ENOSPC, os.strerror(errno.ENOSPC)))
        return real(path, obj)

    monkeypatch.setattr(store, "atomic_write_json", atomic_write_json)
    run = trained.resolve()
    with pytest.raises(jobs.JobError) as e:
        jobs.start_eval(run, k=1, limit=10, device="cpu", env=CHILD_ENV)
    assert str(e.value) == (f"{run.name}: eval not started: cannot write {run / status.JOB}: "
                            "No space left on device")
    assert len(started) == 1 and not status.pid_alive(started[0])  # killed, and collected
    assert not (run / status.JOB).exists() and not (run / jobs.LOCK).exists()
