"""AppTest of the Train page's process count (issue 14): offered only where more than one
GPU is visible (torch.cuda.device_count() is patched, no GPU is needed), and a run started
with N processes is launched through torchrun; jobs.start_train refuses more processes
than GPUs. Nothing is trained: genlab.runs.jobs._launch is replaced by a recorder."""
from __future__ import annotations

import pytest
import torch

from genlab.runs import jobs, store
from runs_fixture import run_page

PAGE = "pages/train.py"


@pytest.fixture
def launched(monkeypatch) -> list:
    calls = []
    monkeypatch.setattr(jobs, "_launch", lambda run_dir, kind, argv, *a, **k: calls.append(argv))
    return calls


def test_one_gpu_or_none_offers_no_process_count(train_env, monkeypatch):
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 1)
    at = run_page(PAGE)
    assert not at.exception, [e.value for e in at.exception]
    assert not [w for w in at.number_input if w.key == "train-procs"]


def test_several_gpus_start_training_through_torchrun(train_env, monkeypatch, launched):
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 4)
    at = run_page(PAGE)
    assert not at.exception, [e.value for e in at.exception]
    procs = at.get_by_key("train-procs")
    assert procs.value == 1 and "4 GPUs here" in procs.help and "global batch" in procs.help
    for key, v in {"m-vae-latent_dim": 2, "m-vae-hidden": "32", "t-epochs": 1,
                   "t-device": "cpu", "train-name": "four", "train-procs": 3}.items():
        at.get_by_key(key).set_value(v)
    at = at.form_submit_button[0].click().run()
    assert not at.exception, [e.value for e in at.exception]
    assert len(launched) == 1, [e.value for e in at.error]
    argv = launched[0]
    run = train_env.resolve() / "four"
    assert argv[1:] == ["-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "3",
                        "-m", "genlab", "train", "--run-dir", str(run), "--quiet"]
    assert (run / store.CONFIG).exists()


def test_more_processes_than_gpus_is_refused_before_anything_is_written(tmp_path, monkeypatch,
                                                                       launched):
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    rc = store.new_config("vae", "mnist", {}, {"device": "cuda"})
    with pytest.raises(jobs.JobError, match="3 processes but 2 GPUs visible"):
        jobs.start_train(tmp_path, "x", "vae", rc.model_config, rc.train, processes=3)
    with pytest.raises(jobs.JobError, match="processes must be between 1 and 64"):
        jobs.start_train(tmp_path, "x", "vae", rc.model_config, rc.train, processes=0)
    assert not launched and not list(tmp_path.iterdir())
    assert jobs.train_argv(tmp_path, 1)[1:4] == ["-m", "genlab", "train"]  # one process: as before
