"""Faults and bad input (issue 6), each really provoked: damaged, foreign and
code-carrying checkpoints and a config.json that no longer fits, seen through the CLI;
SIGTERM while the data still loads; a torn metrics line reported on resume; NaN/inf in
training seen in status.json; a runs folder that cannot be written and a disk that fills
up mid-run; two trainings asking for the same run directory; a damaged MNIST file;
out-of-range hyperparameters in the CLI.

What tests elsewhere already cover is not repeated here: a SIGKILLed and a SIGTERMed
`python -m genlab train` resumed (test_train.py), the Stop button (test_jobs.py), the
loader's own messages (test_runs.py), the first usage errors (test_cli.py), the app
pages (tests/app/test_page_faults.py)."""
from __future__ import annotations

import errno
import json
import multiprocessing
import os
import pathlib
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
import torch

from genlab.cli import main
from genlab.config import TrainConfig
from genlab.data import DatasetError, load_split
from genlab.models import FAMILIES, build_model
from genlab.models.vae import VAE, VAEConfig
from genlab.runs import store, status
from genlab.training.loop import fit

REPO = Path(__file__).resolve().parents[1]
TINY = ["--model", "vae", "--latent-dim", "2", "--hidden", "16", "--limit", "200",
        "--batch-size", "50", "--log-every", "1", "--n-samples", "4", "--device", "cpu", "--quiet"]


pytestmark = pytest.mark.usefixtures("one_thread")


def run_main(argv: list[str], capsys) -> tuple[int, str, str]:
    try:
        code = main(argv)
    except SystemExit as e:
        code = e.code
    out = capsys.readouterr()
    return code, out.out, out.err


def one_line(err: str, *words) -> str:
    """stderr is exactly one line, no traceback, holding every word."""
    assert err.count("\n") == 1 and "Traceback" not in err, err
    for w in words:
        assert str(w) in err, (w, err)
    return err.strip()


def child_env() -> dict:
    return {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(REPO)}


@pytest.fixture(scope="module")
def base_run(data_root, tmp_path_factory) -> Path:
    """A finished one-epoch run of a tiny VAE (200 images), copied by each test."""
    torch.manual_seed(0)
    path = tmp_path_factory.mktemp("base") / "run"
    path.mkdir()
    model = build_model("vae", {"latent_dim": 2, "hidden": [16]})
    tc = TrainConfig(epochs=1, batch_size=50, limit=200, log_every=1, n_samples=4,
                     data_root=str(data_root), device="cpu")
    store.write_config(path, "vae", model.cfg, tc)
    train = load_split("mnist", "train", data_root, download=False, limit=200)
    fit(model, train, None, tc, run_dir=path)
    return path


@pytest.fixture
def run(base_run, tmp_path) -> Path:
    return Path(shutil.copytree(base_run, tmp_path / "run"))


# -- invalid hyperparameters (test_cli.py has latent 0, lr <= 0, epochs 0, a wrong dataset) ---
BAD_VALUES = [
    (["--model", "vae", "--latent-dim", "-3"], "--latent-dim must be >= 1 and <= 1024 (got -3)"),
    (["--model", "vae", "--hidden", "64,-8"], "--hidden must be >= 1 and <= 8192 (got -8)"),
    (["--model", "vae", "--hidden", "64,0"], "--hidden must be >= 1 and <= 8192 (got 0)"),
    (["--model", "vae", "--batch-size", "0"], "--batch-size must be >= 1"),
    (["--model", "vae", "--lr", "1.5"], "--lr must be > 0 and <= 1 (got 1.5)"),
    (["--model", "vae", "--lr", "nan"], "--lr must be a finite number"),
    (["--model", "vae", "--iwae-k", "0"], "--iwae-k must be >= 1"),
    (["--model", "ae-gmm", "--n-components", "0"], "--n-components must be >= 1 and <= 1000 (got 0)"),
    (["--model", "vae", "--dataset", "MNIST"], "unknown dataset 'MNIST'"),
]


@pytest.mark.parametrize("argv, says", BAD_VALUES, ids=[" ".join(a[2:]) for a, _ in BAD_VALUES])
def test_invalid_hyperparameters_exit_2_with_one_line(argv, says, tmp_path, capsys):
    code, out, err = run_main(["train", "--runs-dir", str(tmp_path), *argv], capsys)
    assert code == 2 and out == ""
    one_line(err, "genlab train: error:", says)
    assert not any(tmp_path.iterdir()), "a bad command created a run"


@pytest.mark.parametrize("argv, says", [(["eval", "--k", "-1"], "--k must be between 1 and 5000"),
                                        (["eval", "--k", "5001"], "--k must be between 1 and 5000"),
                                        (["resume", "--epochs", "-1"], "--epochs must be >= 1")])
def test_invalid_eval_and_resume_values_exit_2(argv, says, run, capsys):
    code, out, err = run_main([argv[0], str(run), *argv[1:]], capsys)
    assert code == 2 and out == ""
    one_line(err, says)


# -- damaged, foreign and hostile checkpoints; a config that does not fit ------------------
class RunsCode:
    """Unpickling this calls Path(marker).touch(): what a hostile checkpoint would do."""

    def __init__(self, marker: pathlib.Path):
        self.marker = marker

    def __reduce__(self):
        return (pathlib.Path.touch, (self.marker,))


def damage(run: Path, how: str, marker: Path) -> tuple[Path, str]:
    """Damage the run as ``how`` says; returns the file the error must name and a phrase."""
    ck, cfg_path = run / store.CHECKPOINT, run / store.CONFIG
    good = store.load_checkpoint(ck)
    cfg = json.loads(cfg_path.read_text())
    if how == "truncated":
        ck.write_bytes(ck.read_bytes()[: ck.stat().st_size // 2])
        return ck, "truncated or corrupt"
    if how == "empty":
        ck.write_bytes(b"")
        return ck, "checkpoint file is empty"
    if how == "garbage":
        ck.write_bytes(b"PK\x03\x04" + bytes(range(256)) * 8)
        return ck, "truncated or corrupt"
    if how == "other-kind":
        gan = build_model("gan", {"latent_dim": 2, "hidden": [16]})
        torch.save({**good, "kind": "gan", "model": gan.state_dict()}, ck)
        return ck, "holds a 'gan' model but config.json says 'vae'"
    if how == "other-sizes":
        other = build_model("vae", {"latent_dim": 5, "hidden": [16]})
        torch.save({**good, "model": other.state_dict()}, ck)
        return ck, "weights do not fit the model in config.json"
    if how == "no-epoch":
        torch.save({k: v for k, v in good.items() if k not in ("epoch", "step")}, ck)
        return ck, "epoch/step counters do not fit"
    if how == "code":
        torch.save({**good, "model": {**good["model"], "x": RunsCode(marker)}}, ck)
        return ck, "refused to load"
    if how == "latent-edited":
        cfg["model_config"]["latent_dim"] = 3
    elif how == "latent-zero":
        cfg["model_config"]["latent_dim"] = 0
    elif how == "unknown-field":
        cfg["model_config"]["depth"] = 4
    elif how == "train-not-object":
        cfg["train"] = [1, 2]
    elif how == "config-cut":
        cfg_path.write_text(cfg_path.read_text()[:40])
        return cfg_path, "not valid JSON"
    cfg_path.write_text(json.dumps(cfg))
    says = {"latent-edited": "weights do not fit the model in config.json",
            "latent-zero": "latent_dim must be >= 1", "unknown-field": "does not know: depth",
            "train-not-object": "train must be a JSON object"}[how]
    return (ck if how == "latent-edited" else cfg_path), says


FAULTS = ["truncated", "empty", "garbage", "other-kind", "other-sizes", "no-epoch", "code",
          "latent-edited", "latent-zero", "unknown-field", "train-not-object", "config-cut"]


@pytest.mark.parametrize("how", FAULTS)
def test_a_bad_checkpoint_or_config_is_one_line_in_the_cli(run, how, tmp_path, capsys):
    marker = tmp_path / "payload-ran"
    path, says = damage(run, how, marker)
    commands = [["resume", str(run), "--epochs", "2", "--quiet"]]
    if how != "no-epoch":  # eval needs no counters
        commands.append(["eval", str(run), "--limit", "50", "--fid-n", "0", "--quiet"])
    for argv in commands:
        code, out, err = run_main(argv, capsys)
        assert code == 1, (argv, out, err)
        one_line(err, "error:", path, says)
    assert not marker.exists(), "unpickling the checkpoint ran code"
    if how not in ("config-cut", "train-not-object"):  # these stop before status.json
        status = store.read_json(run / store.STATUS)
        assert status["state"] == "failed" and says in status["message"]


def test_a_code_carrying_checkpoint_is_refused_by_the_real_command(run, tmp_path):
    marker = tmp_path / "payload-ran"
    damage(run, "code", marker)
    proc = subprocess.run([sys.executable, "-m", "genlab", "eval", str(run), "--fid-n", "0",
                           "--limit", "10", "--quiet"], cwd=REPO, env=child_env(),
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 1 and proc.stdout == ""
    msg = one_line(proc.stderr, run / store.CHECKPOINT, "refused to load", "Unsupported global")
    assert not marker.exists(), "the payload ran"
    print(msg)


# -- signals and torn metrics ----------------------------------------------------------------
SLOW_LOAD = """
import pathlib, signal, sys, time
from genlab import cli
from genlab.training import train
ready, real = pathlib.Path(sys.argv[1]), train.load_split
def slow_load(*args, **kwargs):  # a slow disk: the load goes on until SIGTERM has come
    ready.touch()
    stop = signal.getsignal(signal.SIGTERM).__self__  # train_run's StopRequested
    t0 = time.monotonic()
    while not stop.flag and time.monotonic() - t0 < 60:
        time.sleep(0.01)
    return real(*args, **kwargs)
train.load_split = slow_load  # as the run loads it
sys.exit(cli.main(sys.argv[2:]))
"""


def test_sigterm_while_the_data_loads_stops_with_a_checkpoint(data_root, tmp_path, capsys):
    run, ready = tmp_path / "run", tmp_path / "loading"
    proc = subprocess.Popen([sys.executable, "-c", SLOW_LOAD, str(ready), "train", "--run-dir",
                             str(run), "--data-root", str(data_root), "--epochs", "1", *TINY],
                            cwd=REPO, env=child_env(), stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    t0 = time.monotonic()
    while not ready.exists():
        assert proc.poll() is None, proc.communicate()
        assert time.monotonic() - t0 < 120, "the data load never began"
        time.sleep(0.01)
    assert store.read_json(run / store.STATUS)["state"] == "starting"
    proc.send_signal(signal.SIGTERM)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err
    assert "stopped: epoch 0" in out and "resume" in out, out
    status = store.read_json(run / store.STATUS)
    assert status["state"] == "stopped" and status["epoch"] == 0 and "resume" in status["message"]
    assert store.load_checkpoint(run / store.CHECKPOINT)["epoch"] == 0  # the untrained weights
    assert store.read_metrics(run / store.METRICS) == ([], 0)
    code, out, err = run_main(["resume", str(run), "--quiet"], capsys)
    assert code == 0 and "done: epoch 1" in out, err
    assert store.load_checkpoint(run / store.CHECKPOINT)["epoch"] == 1


def test_a_torn_metrics_line_is_reported_then_dropped_on_resume(run, capsys):
    """What a SIGKILL mid-epoch 2 leaves: epoch-1 checkpoint, some epoch-2 step records
    and half a line. read_metrics counts the torn line, resume says what it dropped."""
    path = run / store.METRICS
    with open(path, "a") as f:
        for step in (5, 6):
            f.write(json.dumps({"event": "step", "split": "train", "epoch": 2, "step": step,
                                "loss": 500.0}) + "\n")
        f.write('{"event": "step", "split": "train", "epo')
    records, bad = store.read_metrics(path)
    assert bad == 1 and [r["step"] for r in records][-2:] == [5, 6]
    assert status.summarize(run).bad_metric_lines == 1  # what Home and Train show
    code, out, err = run_main(["resume", str(run), "--epochs", "2", "--quiet"], capsys)
    assert code == 0 and "done: epoch 2" in out, err
    assert f"genlab: warning: {path}: dropped 1 unreadable (torn) line(s) and 2 record(s) " \
           "of the unfinished epoch 2" in err
    records, bad = store.read_metrics(path)
    assert bad == 0 and all(r.get("loss") != 500.0 for r in records)
    steps = [r["step"] for r in records if r["event"] == "step"]
    assert steps == list(range(1, 9))  # every step once: 4 per epoch


# -- NaN / inf in training ---------------------------------------------------------------------
class BlowsUp(VAE):
    """A VAE whose reconstruction term turns non-finite at training step ``BAD_STEP``."""
    BAD_STEP, VALUE = 6, float("nan")

    def __init__(self, cfg):
        super().__init__(cfg)
        self.calls = 0

    def log_likelihood(self, x, z):
        ll = super().log_likelihood(x, z)
        if self.training:
            self.calls += 1
            if self.calls == self.BAD_STEP:
                ll = torch.full_like(ll, self.VALUE)
        return ll


@pytest.mark.parametrize("value", [float("nan"), float("-inf")], ids=["nan", "inf"])
def test_non_finite_loss_fails_the_run_naming_step_and_part(value, data_root, tmp_path,
                                                            capsys, monkeypatch):
    from dataclasses import replace

    monkeypatch.setattr(BlowsUp, "VALUE", value)
    monkeypatch.setitem(FAMILIES, "vae", replace(FAMILIES["vae"], model_cls=BlowsUp))  # what runs build
    run = tmp_path / "run"
    code, out, err = run_main(["train", "--run-dir", str(run), "--data-root", str(data_root),
                               "--epochs", "3", *TINY], capsys)
    assert code == 1
    # 4 steps per epoch: step 6 is in epoch 2; -log p(x|z) = +inf shows as recon inf
    msg = one_line(err, "genlab: error: non-finite recon", "at step 6", "checkpoint is kept")
    status = store.read_json(run / store.STATUS)
    assert status["state"] == "failed" and status["message"] == msg.split("error: ", 1)[1]
    model, ckpt, _ = store.load_model(run)  # the last good checkpoint: epoch 1, finite
    assert ckpt["epoch"] == 1 and all(torch.isfinite(v).all() for v in ckpt["model"].values())
    assert torch.isfinite(model.decode(torch.zeros(1, 2))).all()
    print(msg)


# -- a runs folder that cannot be written, a disk that fills up ------------------------------------
def test_an_unwritable_runs_folder_is_one_line_and_creates_nothing(tmp_path, capsys, monkeypatch):
    plain = tmp_path / "a-file"
    plain.write_text("not a folder")
    code, out, err = run_main(["train", "--runs-dir", str(plain / "runs"), *TINY], capsys)
    assert code == 1 and out == ""
    seen = [one_line(err, "genlab train: error: cannot create the run", plain / "runs")]

    ro = tmp_path / "read-only"
    ro.mkdir()
    ro.chmod(0o500)
    if os.geteuid() == 0:  # root writes anyway: refuse as the kernel would for others
        real_mkdir = os.mkdir

        def mkdir(path, *args, **kwargs):
            if Path(path).parent == ro:
                raise PermissionError(errno.EACCES, "Permission denied", str(path))
            return real_mkdir(path, *args, **kwargs)

        monkeypatch.setattr(os, "mkdir", mkdir)
    try:
        for where in (["--runs-dir", str(ro)], ["--run-dir", str(ro / "mine")]):
            code, out, err = run_main(["train", *where, *TINY], capsys)
            assert code == 1 and out == ""
            seen.append(one_line(err, "genlab train: error: cannot create the run",
                                 "Permission denied", ro))
        assert list(ro.iterdir()) == []
    finally:
        ro.chmod(0o700)
    print("\n".join(seen))


def _fail_checkpoint_writes(monkeypatch, how: str, after: int) -> None:
    """Let ``after`` checkpoint writes through, then fail the next ones as a full disk
    (ENOSPC from fsync, where delayed allocation reports it) or a folder made read-only
    (EACCES creating the temporary file)."""
    seen = {"n": 0}
    if how == "disk-full":
        real = os.fsync

        def fsync(fd):
            name = os.path.basename(os.readlink(f"/proc/self/fd/{fd}"))
            if name.startswith(f".{store.CHECKPOINT}."):
                seen["n"] += 1
                if seen["n"] > after:
                    raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
            return real(fd)

        monkeypatch.setattr(os, "fsync", fsync)
    else:
        import tempfile

        real = tempfile.mkstemp

        def mkstemp(*args, prefix="", **kwargs):
            if prefix.startswith(f".{store.CHECKPOINT}."):
                seen["n"] += 1
                if seen["n"] > after:
                    raise PermissionError(errno.EACCES, "Permission denied", kwargs.get("dir"))
            return real(*args, prefix=prefix, **kwargs)

        monkeypatch.setattr(tempfile, "mkstemp", mkstemp)


@pytest.mark.skipif(not Path("/proc/self/fd").is_dir(), reason="needs /proc to name an fd")
@pytest.mark.parametrize("how, says", [("disk-full", "No space left on device"),
                                       ("read-only", "Permission denied")])
def test_a_failed_checkpoint_write_keeps_the_last_one_and_leaves_no_temp_files(
        how, says, data_root, tmp_path, capsys, monkeypatch):
    run = tmp_path / "run"
    _fail_checkpoint_writes(monkeypatch, how, after=1)
    code, out, err = run_main(["train", "--run-dir", str(run), "--data-root", str(data_root),
                               "--epochs", "3", *TINY], capsys)
    assert code == 1
    msg = one_line(err, f"genlab: error: cannot write {run / store.CHECKPOINT}: {says}")
    status = store.read_json(run / store.STATUS)
    assert status["state"] == "failed" and status["message"] == msg.split("error: ", 1)[1]
    assert store.load_model(run)[1]["epoch"] == 1  # the epoch-1 checkpoint, whole
    leftovers = [p.name for p in run.rglob("*") if p.name.startswith(".") or "tmp" in p.name]
    assert leftovers == [], leftovers
    assert sorted(p.name for p in (run / "samples").iterdir()) == ["epoch_001.png"]
    print(msg)


# -- two trainings at once -------------------------------------------------------------------------
def test_trainings_given_the_same_run_dir_at_once_get_it_once(tmp_path):
    """Worst case: every claimant passes claim_run_dir (the folder is empty) before any
    writes config.json. The exclusive write lets exactly one have it."""
    target, n = tmp_path / "same", 12
    barrier, results, refused = threading.Barrier(n), [], []

    def claim(i: int):
        store.claim_run_dir(target)
        barrier.wait()  # all claimed the empty folder
        try:
            store.write_config(target, "vae", VAEConfig(latent_dim=i + 1, hidden=(16,)),
                              TrainConfig(), exclusive=True)
            results.append(i)
        except store.RunError as e:
            refused.append(str(e))

    threads = [threading.Thread(target=claim, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(results) == 1 and len(refused) == n - 1
    assert all("already holds a run" in e and str(target) in e for e in refused), refused[0]
    assert store.read_config(target).model_config.latent_dim == results[0] + 1  # not overwritten
    assert sorted(p.name for p in target.iterdir()) == [store.CONFIG]  # no temporary files left
    with pytest.raises(store.RunError, match="already holds a run"):
        store.claim_run_dir(target)


def _new_dir(args) -> str:
    root, barrier = args
    barrier.wait()
    return str(store.new_run_dir(root, "race"))


def test_processes_asking_for_the_same_name_get_distinct_dirs(tmp_path):
    ctx = multiprocessing.get_context("fork")
    n = 8
    with ctx.Manager() as manager:
        barrier = manager.Barrier(n)
        with ctx.Pool(n) as pool:
            got = pool.map(_new_dir, [(tmp_path, barrier)] * n)
    assert len(set(got)) == n and all(Path(p).is_dir() for p in got)
    assert sorted(Path(p).name for p in got) == ["race"] + [f"race-{i}" for i in range(1, n)]


# -- a damaged dataset ---------------------------------------------------------------------------
@pytest.fixture
def mnist_copy(data_root, tmp_path) -> Path:
    """A dataset folder whose MNIST files link to the real ones (each test replaces one)."""
    raw = tmp_path / "data" / "MNIST" / "raw"
    raw.mkdir(parents=True)
    for f in (data_root / "MNIST" / "raw").iterdir():
        (raw / f.name).symlink_to(f)
    return tmp_path / "data"


def _replace(raw: Path, name: str, data: bytes) -> Path:
    path = raw / name
    path.unlink()
    path.write_bytes(data)
    return path


@pytest.mark.parametrize("name, edit, says", [
    ("t10k-images-idx3-ubyte", lambda b: b[:100_000], "truncated"),
    ("t10k-images-idx3-ubyte", lambda b: b + b"\0" * 784, "extra bytes at the end"),
    ("t10k-labels-idx1-ubyte", lambda b: b"\0\0\x08\x03" + b[4:], "not an idx1 file"),
    ("t10k-labels-idx1-ubyte", lambda b: b[:6], "too short for an idx header"),
    ("t10k-labels-idx1-ubyte", lambda b: b[:4] + (9999).to_bytes(4, "big") + b[8:9999 + 8],
     "9999 labels for 10000 images"),
])
def test_a_damaged_mnist_file_is_named(mnist_copy, name, edit, says, capsys, run, monkeypatch):
    from genlab import data as gdata

    raw = mnist_copy / "MNIST" / "raw"
    path = _replace(raw, name, edit((raw / name).read_bytes()))
    parsed, parse = [], gdata._torchvision_split
    monkeypatch.setattr(gdata, "_torchvision_split", lambda info, root, train, download:
                        parsed.append(train) or parse(info, root, train, download))
    with pytest.raises(DatasetError) as ei:
        load_split("mnist", "test", mnist_copy, download=False)
    assert parsed == []  # found from the header: torchvision never read the files
    msg = str(ei.value)
    assert "\n" not in msg and "'mnist'" in msg and "damaged" in msg and says in msg, msg
    assert f"file {path} is damaged" in msg, msg
    assert len(load_split("mnist", "val", mnist_copy, download=False)) == 5000  # train files fine
    code, _, err = run_main(["eval", str(run), "--data-root", str(mnist_copy), "--fid-n", "0",
                             "--quiet"], capsys)
    assert code == 1
    print(one_line(err, "genlab eval: error: dataset 'mnist': file", raw, says))


def test_a_damaged_training_file_fails_train_with_one_line(mnist_copy, tmp_path, capsys):
    raw = mnist_copy / "MNIST" / "raw"
    victim = _replace(raw, "train-images-idx3-ubyte",
                      (raw / "train-images-idx3-ubyte").read_bytes()[:1_000_016])
    run = tmp_path / "run"
    code, _, err = run_main(["train", "--run-dir", str(run), "--data-root", str(mnist_copy),
                             *TINY], capsys)
    assert code == 1
    msg = one_line(err, "genlab: error: dataset 'mnist': file", victim, "truncated")
    assert store.read_json(run / store.STATUS)["state"] == "failed"
    print(msg)
