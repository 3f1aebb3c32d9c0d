"""genlab.runs.jobs: the launch form mirrors the config metadata, the launched command is
exactly the validated configs, and real subprocess runs start, stop on SIGTERM with a
checkpoint, resume to the end, and report a failure in their run directory."""
from __future__ import annotations

import dataclasses
import json
import time

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
