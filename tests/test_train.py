"""fit(): learning on real MNIST, callbacks, metrics.jsonl, the NaN guard, and
stopping / killing a `python -m genlab train` process and resuming it (issue 2)."""
from __future__ import annotations

import json
import math
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from genlab.cli import main as cli_main
from genlab.config import TrainConfig, validate
from genlab.evaluation.metrics import evaluate
from genlab.models import MODELS, build_model
from genlab.models.cgan import CGANConfig
from genlab.models.cvae import CVAEConfig
from genlab.models.gan import GANConfig
from genlab.models.vae import VAE, VAEConfig
from genlab.runs import store
from genlab.training.loop import TrainingFailed, _step_context, fit

REPO = Path(__file__).resolve().parents[1]
SMALL_VAE = {"latent_dim": 20, "hidden": [256]}
RECORD_KEYS = {"event", "epoch", "step", "split", "loss", "recon", "kl", "seconds", "cpu_seconds",
               "images_per_s"}


pytestmark = pytest.mark.usefixtures("one_thread")


# -- a short fit on real MNIST, observed through callbacks and metrics.jsonl --------
@pytest.fixture(scope="module")
def short_fit(mnist_small, tmp_path_factory):
    torch.set_num_threads(1)
    train, val = mnist_small
    run_dir = tmp_path_factory.mktemp("fit")
    torch.manual_seed(0)
    model = build_model("vae", SMALL_VAE)
    before = evaluate(model, val)["loss"]
    events: list[tuple[str, int, int]] = []
    cfg = TrainConfig(epochs=4, batch_size=32, lr=1e-3, log_every=20)
    result = fit(model, train, val, cfg, run_dir=run_dir,
                 callbacks=(lambda ev, s: events.append((ev, s.epoch, s.step)),))
    after = evaluate(model, val)["loss"]
    return {"before": before, "after": after, "events": events, "result": result,
            "run_dir": run_dir, "steps_per_epoch": math.ceil(len(train) / 32), "cfg": cfg}


def test_few_hundred_steps_lower_val_loss(short_fit):
    steps = short_fit["result"]["step"]
    assert steps == 4 * short_fit["steps_per_epoch"] == 252
    before, after = short_fit["before"], short_fit["after"]
    # untrained: about 784 ln 2 = 543 nats; 252 Adam steps reach well under 60% of that
    assert 500 < before < 600, before
    assert math.isfinite(after) and after < 0.6 * before, (before, after)


def test_callbacks_see_every_step_and_epoch(short_fit):
    events, spe = short_fit["events"], short_fit["steps_per_epoch"]
    step_events = [e for e in events if e[0] in ("step", "log")]
    assert [s for _, _, s in step_events] == list(range(1, 4 * spe + 1))  # each step once, in order
    assert [ep for _, ep, _ in step_events] == [1 + (s - 1) // spe for _, _, s in step_events]
    logs = [s for ev, _, s in events if ev == "log"]
    assert all(s % 20 == 0 or s % spe == 0 for s in logs) and spe * 4 in logs
    for name in ("epoch_train", "epoch_val", "epoch"):
        assert [(ep, s) for ev, ep, s in events if ev == name] == [(e, e * spe) for e in (1, 2, 3, 4)]


def test_metrics_jsonl_is_valid_and_complete(short_fit):
    path = short_fit["run_dir"] / store.METRICS
    lines = path.read_text().splitlines()
    records = [json.loads(line) for line in lines]  # every line is one JSON object
    assert all(isinstance(r, dict) and RECORD_KEYS <= set(r) for r in records)
    for r in records:
        assert all(math.isfinite(r[k]) for k in ("loss", "recon", "kl", "seconds"))
        assert r["images_per_s"] > 0 and r["split"] in ("train", "val")
        assert r["loss"] == pytest.approx(r["recon"] + r["kl"], rel=1e-5)  # beta = 1
    steps = [r for r in records if r["event"] == "step"]
    assert [r["step"] for r in steps] == sorted({r["step"] for r in steps})  # increasing, unique
    epochs = [(r["epoch"], r["split"]) for r in records if r["event"] == "epoch"]
    assert epochs == [(e, s) for e in (1, 2, 3, 4) for s in ("train", "val")]
    seconds = [r["seconds"] for r in records]
    assert seconds == sorted(seconds)
    val = [r["loss"] for r in records if r["event"] == "epoch" and r["split"] == "val"]
    assert val[-1] < val[0]
    assert store.read_metrics(path) == (records, 0)
    run_dir = short_fit["run_dir"]
    assert sorted(p.name for p in (run_dir / "samples").iterdir()) == [
        f"epoch_{e:03d}.png" for e in (1, 2, 3, 4)]
    assert not [p for p in run_dir.rglob("*") if "tmp" in p.name]  # atomic writes left nothing


# -- the NaN guard -------------------------------------------------------------------
class BlowsUpAt(VAE):
    """A VAE whose decoder log-likelihood turns NaN at training step ``bad_step``."""

    def __init__(self, cfg: VAEConfig, bad_step: int):
        super().__init__(cfg)
        self.bad_step, self.calls = bad_step, 0

    def log_likelihood(self, x, z):
        ll = super().log_likelihood(x, z)
        if self.training:
            self.calls += 1
            if self.calls == self.bad_step:
                ll = ll * float("nan")
        return ll


def test_nan_guard_names_step_and_part_and_keeps_checkpoint(mnist_small, tmp_path):
    train, val = mnist_small
    torch.manual_seed(0)
    model = BlowsUpAt(VAEConfig(latent_dim=8, hidden=(64,)), bad_step=40)
    snapshot = {}

    def keep_epoch1(event, s):
        if event == "epoch" and s.epoch == 1:
            ck = tmp_path / store.CHECKPOINT
            snapshot.update(data=ck.read_bytes(), mtime=ck.stat().st_mtime_ns)

    cfg = TrainConfig(epochs=3, batch_size=64, log_every=50)  # 32 steps/epoch: logs at 32, 50
    with pytest.raises(TrainingFailed) as ei:
        fit(model, train, val, cfg, run_dir=tmp_path, callbacks=(keep_epoch1,))
    msg = str(ei.value)
    assert msg.startswith("non-finite ") and "at step 40 " in msg and "checkpoint is kept" in msg
    named = msg.split("stopped")[0]
    assert "recon" in named and "elbo" in named and "kl" not in named, msg  # KL stayed finite
    ck = tmp_path / store.CHECKPOINT
    assert ck.read_bytes() == snapshot["data"] and ck.stat().st_mtime_ns == snapshot["mtime"]
    assert store.load_checkpoint(ck)["epoch"] == 1
    assert not (tmp_path / "samples" / "epoch_002.png").exists()
    records, bad = store.read_metrics(tmp_path / store.METRICS)
    assert bad == 0 and max(r["step"] for r in records) == 32  # no record with a NaN in it
    assert all(math.isfinite(r["loss"]) for r in records)


# -- stopping and killing a real training process ------------------------------------
def _start_train(run_dir: Path, data_root: Path, epochs: int) -> subprocess.Popen:
    cmd = [sys.executable, "-m", "genlab", "train", "--model", "vae", "--run-dir", str(run_dir),
           "--data-root", str(data_root), "--limit", "800", "--epochs", str(epochs),
           "--batch-size", "8", "--log-every", "2", "--hidden", "128", "--latent-dim", "8",
           "--n-samples", "16", "--quiet"]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(REPO)}
    return subprocess.Popen(cmd, cwd=REPO, env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)


def _wait_for(pred, proc: subprocess.Popen, timeout: float = 120.0) -> None:
    t0 = time.monotonic()
    while not pred():
        if proc.poll() is not None:
            raise AssertionError(f"training exited early: {proc.communicate()}")
        if time.monotonic() - t0 > timeout:
            proc.kill()
            raise AssertionError("training did not get there in time")
        time.sleep(0.01)


def _records(run_dir: Path) -> list[dict]:
    return store.read_metrics(run_dir / store.METRICS)[0]


def _assert_clean_metrics(run_dir: Path, epochs: int, spe: int) -> None:
    records, bad = store.read_metrics(run_dir / store.METRICS)
    assert bad == 0
    keys = [(r["event"], r["split"], r["epoch"], r["step"]) for r in records]
    assert len(keys) == len(set(keys)), "duplicate records"
    steps = [r["step"] for r in records if r["event"] == "step"]
    assert steps == sorted(set(steps)) and steps[-1] == epochs * spe
    ends = [(r["epoch"], r["split"], r["step"]) for r in records if r["event"] == "epoch"]
    assert ends == [(e, s, e * spe) for e in range(1, epochs + 1) for s in ("train", "val")]


def test_sigterm_stops_cleanly_and_resume_finishes(data_root, tmp_path, capsys):
    run_dir, spe = tmp_path / "run", 100
    proc = _start_train(run_dir, data_root, epochs=2)
    _wait_for(lambda: any(r["event"] == "step" for r in _records(run_dir)), proc)
    proc.send_signal(signal.SIGTERM)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err
    assert f"run directory: {run_dir}" in out and "stopped" in out
    status = store.read_json(run_dir / store.STATUS)
    assert status["state"] == "stopped" and "resume" in status["message"]
    ckpt = store.load_checkpoint(run_dir / store.CHECKPOINT)
    assert ckpt["epoch"] == status["epoch"] < 2  # epochs done; the steps done are kept
    assert ckpt["step"] == status["step"] > ckpt["epoch"] * spe, "expected a stop mid-epoch"
    assert cli_main(["resume", str(run_dir), "--quiet"]) == 0
    assert "done: epoch 2" in capsys.readouterr().out
    assert store.read_json(run_dir / store.STATUS)["state"] == "done"
    assert store.load_checkpoint(run_dir / store.CHECKPOINT)["epoch"] == 2
    _assert_clean_metrics(run_dir, 2, spe)


def test_sigkill_mid_epoch_then_resume_from_last_epoch(data_root, tmp_path):
    run_dir, spe = tmp_path / "run", 100

    def in_epoch_2() -> bool:
        return any(r["event"] == "step" and r["epoch"] == 2 for r in _records(run_dir))

    proc = _start_train(run_dir, data_root, epochs=2)
    _wait_for(in_epoch_2, proc)
    proc.kill()
    proc.communicate(timeout=30)
    records = _records(run_dir)
    assert not any(r["event"] == "epoch" and r["epoch"] == 2 for r in records), "not mid-epoch"
    assert store.load_checkpoint(run_dir / store.CHECKPOINT)["epoch"] == 1
    with open(run_dir / store.METRICS, "ab") as f:  # as if killed in the middle of a write
        f.write(b'{"event": "step", "split": "train", "epo')
    assert store.read_metrics(run_dir / store.METRICS)[1] == 1  # the torn line is reported
    assert cli_main(["resume", str(run_dir), "--quiet"]) == 0
    assert store.load_checkpoint(run_dir / store.CHECKPOINT)["epoch"] == 2
    _assert_clean_metrics(run_dir, 2, spe)
    first_resumed = next(r for r in _records(run_dir) if r["event"] == "step" and r["epoch"] == 2)
    assert first_resumed["step"] == spe + 2  # epoch 2 restarted from the epoch-1 checkpoint


def test_truncate_metrics_drops_partial_epoch_and_torn_line(tmp_path):
    path = tmp_path / store.METRICS
    recs = [{"event": "step", "epoch": 1, "step": 5}, {"event": "epoch", "epoch": 1, "step": 10},
            {"event": "step", "epoch": 2, "step": 15}]
    path.write_text("".join(json.dumps(r) + "\n" for r in recs) + '{"event": "st')
    assert store.read_metrics(path) == (recs, 1)
    assert store.truncate_metrics(path, 1) == 2
    assert store.read_metrics(path) == (recs[:2], 0)
    assert store.truncate_metrics(path, 1) == 0  # idempotent
    path.write_text("".join(json.dumps(r) + "\n" for r in recs + [{"event": "step", "epoch": 2,
                                                                  "step": 20}]))
    assert store.truncate_metrics(path, 1, step=15) == 1  # stopped at 15: its records kept
    assert store.read_metrics(path) == (recs, 0)


# -- the time budget (--max-minutes) ---------------------------------------------------
def test_time_budget_stops_before_an_epoch_that_would_overrun(mnist_small, tmp_path, monkeypatch):
    """Each epoch takes 40 s on a fake clock; with 1.5 min, epoch 2 ends at 80 s and a
    third would end at 120 s > 90 s: two epochs, then done, checkpoint at epoch 2."""
    import genlab.training.loop

    now = [0.0]
    monkeypatch.setattr(genlab.training.loop, "_clock", lambda: now[0])

    def tick(event, s):
        if event == "epoch":
            now[0] += 40.0

    train, val = mnist_small
    model = build_model("vae", {"latent_dim": 4, "hidden": [32]})
    cfg = TrainConfig(epochs=5, batch_size=500, max_minutes=1.5, n_samples=4)
    result = fit(model, train, val, cfg, run_dir=tmp_path, callbacks=(tick,))
    assert result["state"] == "done" and result["epoch"] == 2 and result["step"] == 8
    assert result["budget_stop"] == pytest.approx(80 / 60, abs=1e-3)
    assert store.load_checkpoint(tmp_path / store.CHECKPOINT)["epoch"] == 2
    ends = [r["epoch"] for r in _records(tmp_path) if r["event"] == "epoch"]
    assert ends == [1, 1, 2, 2]
    now[0] = 0.0  # the budget never cuts the last planned epoch short of cfg.epochs ...
    cfg = TrainConfig(epochs=2, batch_size=500, max_minutes=0.5, n_samples=4)
    assert "budget_stop" not in fit(model, train, None, cfg)  # ... nor stops after it


def test_a_cpu_budget_counts_cpu_time_not_wall_time(mnist_small, tmp_path, monkeypatch):
    """budget_clock="cpu": epochs take 40 s of CPU time but 400 s of wall time (a busy
    machine); a 1.5-minute budget still gives two epochs, as the wall budget does with 40 s
    epochs, and the wall clock with the same epochs stops after one."""
    import genlab.training.loop

    wall, cpu = [0.0], [0.0]
    monkeypatch.setattr(genlab.training.loop, "_clock", lambda: wall[0])
    monkeypatch.setattr(genlab.training.loop, "_cpu_clock", lambda: cpu[0])

    def tick(event, s):
        if event == "epoch":
            wall[0] += 400.0
            cpu[0] += 40.0

    train, val = mnist_small
    model = build_model("vae", {"latent_dim": 4, "hidden": [32]})
    cfg = TrainConfig(epochs=5, batch_size=500, max_minutes=1.5, budget_clock="cpu", n_samples=4)
    result = fit(model, train, val, cfg, run_dir=tmp_path, callbacks=(tick,))
    assert result["state"] == "done" and result["epoch"] == 2
    assert result["budget_stop"] == pytest.approx(80 / 60, abs=1e-3)
    wall[0] = cpu[0] = 0.0
    cfg = TrainConfig(epochs=5, batch_size=500, max_minutes=1.5, n_samples=4)  # wall
    assert fit(model, train, None, cfg, callbacks=(tick,))["epoch"] == 1
    with pytest.raises(ValueError, match="budget_clock must be one of wall, cpu"):
        validate(TrainConfig(budget_clock="gpu"))


def test_max_minutes_cli_ends_done_and_resumes(data_root, tmp_path, capsys):
    run_dir = tmp_path / "run"
    args = ["train", "--model", "vae", "--run-dir", str(run_dir), "--data-root", str(data_root),
            "--limit", "500", "--batch-size", "100", "--hidden", "32", "--latent-dim", "4",
            "--n-samples", "4", "--epochs", "50", "--max-minutes", "0.0001", "--quiet"]
    assert cli_main(args) == 0
    out = capsys.readouterr().out
    assert "done: epoch 1," in out and "stopped by time budget after 1 epoch:" in out, out
    status = store.read_json(run_dir / store.STATUS)
    assert status["state"] == "done" and status["epoch"] == 1 and "time budget" in status["message"]
    assert store.read_config(run_dir).train.max_minutes == 0.0001
    assert cli_main(["resume", str(run_dir), "--quiet"]) == 0  # one more budget: one more epoch
    assert "done: epoch 2," in capsys.readouterr().out
    assert store.load_checkpoint(run_dir / store.CHECKPOINT)["epoch"] == 2
    _assert_clean_metrics(run_dir, 2, 5)
    # resume --max-minutes overrides the budget for this resume only (0: none): to epoch 4
    assert cli_main(["resume", str(run_dir), "--epochs", "4", "--max-minutes", "0", "--quiet"]) == 0
    assert "done: epoch 4," in capsys.readouterr().out
    assert store.read_config(run_dir).train.max_minutes == 0.0001  # config.json unchanged


# -- bf16 autocast and torch.compile (flags meant for CUDA; both run on CPU too) ------
def _fit_small(mnist_small, **train):
    torch.manual_seed(0)
    model = build_model("vae", SMALL_VAE)
    train_split, val = mnist_small
    before = evaluate(model, val)["loss"]
    fit(model, train_split, val, TrainConfig(epochs=2, batch_size=64, log_every=1000, **train))
    return model, before, evaluate(model, val)["loss"]


def test_bf16_autocast_runs_the_steps_in_bfloat16_and_still_learns(mnist_small):
    seen = []
    real = VAE.loss

    def spy(self, x):
        out = real(self, x)
        if self.training:  # training steps, not the float32 validation
            seen.append((torch.is_autocast_enabled("cpu"), torch.get_autocast_dtype("cpu"),
                         self.encoder(x).dtype))
        return out

    VAE.loss = spy
    try:
        model, before, after = _fit_small(mnist_small, precision="bf16")
    finally:
        VAE.loss = real
    assert seen and all(s == (True, torch.bfloat16, torch.bfloat16) for s in seen), seen[:3]
    assert all(p.dtype == torch.float32 for p in model.parameters())  # weights stay float32
    assert math.isfinite(after) and after < 0.75 * before, (before, after)
    with pytest.raises(ValueError, match="precision bf16 needs a cuda or cpu device, not mps"):
        _step_context("bf16", torch.device("mps"))


def test_compile_flag_compiles_each_network_and_keeps_checkpoint_keys(mnist_small, monkeypatch):
    compiled = []
    real = torch.nn.Module.compile

    def eager(self, *args, **kwargs):  # dynamo's tracing without the slow C++ code generation
        compiled.append(type(self).__name__)
        return real(self, backend="eager")

    monkeypatch.setattr(torch.nn.Module, "compile", eager)
    model, before, after = _fit_small(mnist_small, compile=True)
    assert len(compiled) == len(list(model.children())) >= 2, compiled
    assert set(model.state_dict()) == set(build_model("vae", SMALL_VAE).state_dict())
    assert math.isfinite(after) and after < 0.75 * before, (before, after)


def test_precision_flag_is_checked(capsys):
    try:
        code = cli_main(["train", "--model", "vae", "--precision", "fp16", "--epochs", "1"])
    except SystemExit as e:
        code = e.code
    assert code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "fp32" in err[0] and "bf16" in err[0], err


# -- lr schedule, weight averaging and KL warm-up in a run (issue 12) ------------------
SCHEDULED = dict(optimizer="adamw", weight_decay=0.01, lr_schedule="cosine", warmup_steps=3,
                 lr_floor=0.1, ema_decay=0.9, kl_warmup_epochs=1.5)


def _scheduled_run(path: Path, data_root: Path, epochs: int) -> Path:
    tc = TrainConfig(epochs=epochs, batch_size=100, limit=500, data_root=str(data_root),
                     n_samples=4, log_every=1, **SCHEDULED)
    path.mkdir()
    store.write_config(path, "vae", VAEConfig(latent_dim=4, hidden=(32,)), tc)
    return path


def test_a_scheduled_averaged_warmed_up_run_resumes_as_if_never_stopped(data_root, tmp_path,
                                                                       monkeypatch):
    """Stopped (SIGTERM after epoch 1) and resumed equals never stopped: weights, averaged
    weights, optimiser and schedule state, and every metrics record (lr, kl_weight too)."""
    import genlab.training.train
    from genlab.training.train import train_run

    straight = _scheduled_run(tmp_path / "straight", data_root, epochs=2)
    assert train_run(straight)["state"] == "done"
    split = _scheduled_run(tmp_path / "split", data_root, epochs=2)
    real = genlab.training.train._status_callback

    def stop_after_epoch_1(*args, **kw):
        cb = real(*args, **kw)

        def wrapped(event, s):
            cb(event, s)
            if event == "epoch" and s.epoch == 1:
                os.kill(os.getpid(), signal.SIGTERM)  # caught by train_run's StopRequested
        return wrapped

    monkeypatch.setattr(genlab.training.train, "_status_callback", stop_after_epoch_1)
    assert train_run(split)["state"] == "stopped"
    assert store.load_checkpoint(split / store.CHECKPOINT)["epoch"] == 1
    monkeypatch.setattr(genlab.training.train, "_status_callback", real)
    assert train_run(split, resume=True)["state"] == "done"
    a = store.load_checkpoint(straight / store.CHECKPOINT)
    b = store.load_checkpoint(split / store.CHECKPOINT)
    assert a["step"] == b["step"] == 10
    for key in ("model", "live_model"):  # averaged and live weights, bit for bit
        assert set(a[key]) == set(b[key])
        for k, v in a[key].items():
            assert torch.equal(v, b[key][k]), (key, k)
    sa, sb = a["schedule"], b["schedule"]
    assert sa["steps"] == sb["steps"] == 10 and sa["ema"]["num_updates"] == sb["ema"]["num_updates"] == 10
    assert sa["schedulers"] == sb["schedulers"]
    assert b["optimizers"][0]["state"][0]["step"] == 10
    drop = ("seconds", "cpu_seconds", "images_per_s")
    rec_a, rec_b = (store.read_metrics(r / store.METRICS)[0] for r in (straight, split))
    assert [{k: v for k, v in r.items() if k not in drop} for r in rec_a] == \
           [{k: v for k, v in r.items() if k not in drop} for r in rec_b]
    # the schedule really ran: warm-up, then cosine; the KL weight rose to 1 over 1.5 epochs
    steps = [r for r in rec_a if r["event"] == "step"]
    lr = [r["lr"] for r in steps]
    assert lr[:3] == pytest.approx([1e-3 / 3, 2e-3 / 3, 1e-3]) and lr[-1] < lr[3]
    kl_w = [r["kl_weight"] for r in steps]
    assert kl_w == pytest.approx([min(1.0, s / 5 / 1.5) for s in range(10)])
    for r in steps:  # the objective at the step's KL weight, the ELBO at weight 1 beside it
        assert r["loss"] == pytest.approx(r["recon"] + r["kl_weight"] * r["kl"], rel=1e-5)
        assert r["elbo"] == pytest.approx(-(r["recon"] + r["kl"]), rel=1e-5)


def _sigterm_at_step(monkeypatch, step: int):
    """train_run's callbacks send SIGTERM (the Stop button's signal) right after ``step``;
    returns the real status callback, to put back."""
    import genlab.training.train

    real = genlab.training.train._status_callback

    def stopping(*args, **kw):
        cb = real(*args, **kw)

        def wrapped(event, s):
            cb(event, s)
            if event in ("step", "log") and s.step == step:
                os.kill(os.getpid(), signal.SIGTERM)  # caught by train_run's StopRequested
        return wrapped

    monkeypatch.setattr(genlab.training.train, "_status_callback", stopping)
    return real


MID_EPOCH_RUNS = {  # model, its config, options: each with an lr schedule and weight averaging
    "vae": ("vae", VAEConfig(latent_dim=4, hidden=(32,)), SCHEDULED),  # KL warm-up over 15 steps
    "gan": ("gan", GANConfig(latent_dim=4, hidden=(32,), d_hidden=(32,)),  # its own train_step,
            dict(lr_schedule="cosine", warmup_steps=3, lr_floor=0.1, ema_decay=0.9)),  # dropout
    # class-conditional: the labels of each step, and p(y) (a buffer set after each epoch)
    "cvae": ("cvae", CVAEConfig(latent_dim=4, hidden=(32,)), SCHEDULED),
    "cgan": ("cgan", CGANConfig(latent_dim=4, hidden=(32,), d_hidden=(32,), label_dim=4),
             dict(lr_schedule="cosine", warmup_steps=3, lr_floor=0.1, ema_decay=0.9)),
}


@pytest.mark.parametrize("name", MID_EPOCH_RUNS)
def test_a_run_stopped_mid_epoch_resumes_as_if_never_stopped(name, data_root, tmp_path,
                                                             monkeypatch):
    """Stopped by SIGTERM at step 14, in the middle of epoch 2 (10 steps an epoch, a record
    every 3: the window of steps 13-14 is open), then resumed: the same weights, averaged
    and live, optimiser and schedule state, and the same records step by step (loss, lr,
    kl_weight) as a run that never stopped, each step logged once."""
    import genlab.training.train
    from genlab.training.train import train_run

    kind, mcfg, options = MID_EPOCH_RUNS[name]
    tc = TrainConfig(epochs=3, batch_size=50, limit=500, data_root=str(data_root), n_samples=4,
                     log_every=3, **options)
    straight, split = tmp_path / "straight", tmp_path / "split"
    for path in (straight, split):
        path.mkdir()
        store.write_config(path, kind, mcfg, tc)
    assert train_run(straight)["state"] == "done"
    real = _sigterm_at_step(monkeypatch, 14)
    stopped = train_run(split)
    assert stopped["state"] == "stopped" and stopped["step"] == 14, stopped
    assert store.load_checkpoint(split / store.CHECKPOINT)["step"] == 14  # no step thrown away
    monkeypatch.setattr(genlab.training.train, "_status_callback", real)
    real_load = genlab.training.train.load_split

    def load_then_stop(*args, **kw):  # Stop again while the resume loads its data
        os.kill(os.getpid(), signal.SIGTERM)
        return real_load(*args, **kw)

    monkeypatch.setattr(genlab.training.train, "load_split", load_then_stop)
    assert train_run(split, resume=True)["state"] == "stopped"  # saved where it stood, again
    monkeypatch.setattr(genlab.training.train, "load_split", real_load)
    assert train_run(split, resume=True)["state"] == "done"

    a = store.load_checkpoint(straight / store.CHECKPOINT)
    b = store.load_checkpoint(split / store.CHECKPOINT)
    assert a["step"] == b["step"] == 30 and a["epoch"] == b["epoch"] == 3
    for key in ("model", "live_model"):
        assert set(a[key]) == set(b[key])
        for k, v in a[key].items():
            assert torch.equal(v, b[key][k]), (key, k)
    assert a["schedule"]["steps"] == b["schedule"]["steps"] == 30
    assert a["schedule"]["ema"]["num_updates"] == b["schedule"]["ema"]["num_updates"] == 30
    assert a["schedule"]["schedulers"] == b["schedule"]["schedulers"]
    for oa, ob in zip(a["optimizers"], b["optimizers"]):
        for p, s in oa["state"].items():
            assert all(torch.equal(v, ob["state"][p][k]) for k, v in s.items()), p
    drop = ("seconds", "cpu_seconds", "images_per_s")
    rec_a, rec_b = ([{k: v for k, v in r.items() if k not in drop}
                     for r in store.read_metrics(r / store.METRICS)[0]] for r in (straight, split))
    assert [r["step"] for r in rec_b if r["event"] == "step"] == [3, 6, 9, 10, 12, 15, 18, 20,
                                                                 21, 24, 27, 30]
    assert rec_a == rec_b
    if MODELS[kind][0].caps.kl_warmup:  # the warm-up really ran through the stop: s / 15 at step s
        kl_w = {r["step"]: r["kl_weight"] for r in rec_b if r["event"] == "step"}
        assert kl_w[12] == pytest.approx(11 / 15) and kl_w[15] == pytest.approx(14 / 15)


def test_the_averaged_weights_are_validated_sampled_and_saved(data_root, tmp_path, monkeypatch):
    import genlab.training.loop
    from genlab.training.loop import save_sample_grid
    from genlab.training.train import train_run

    validated = []
    real = genlab.training.loop.evaluate

    def spy(model, data, **kw):
        validated.append({k: v.clone() for k, v in model.state_dict().items()})
        return real(model, data, **kw)

    monkeypatch.setattr(genlab.training.loop, "evaluate", spy)
    run = _scheduled_run(tmp_path / "run", data_root, epochs=2)
    assert train_run(run)["state"] == "done"
    ckpt = store.load_checkpoint(run / store.CHECKPOINT)
    assert len(validated) == 2 and set(validated[-1]) == set(ckpt["model"]) == set(ckpt["live_model"])
    differ = [k for k in ckpt["model"] if not torch.equal(ckpt["model"][k], ckpt["live_model"][k])]
    assert differ, "averaged and live weights should differ after 10 steps at decay 0.9"
    for k, v in ckpt["model"].items():  # what was validated is what was saved as "model"
        assert torch.equal(validated[-1][k], v), k
    model, _, rc = store.load_model(run)  # what eval and the app read: the averaged weights
    for k, v in model.state_dict().items():
        assert torch.equal(v, ckpt["model"][k]), k
    save_sample_grid(model, tmp_path / "again.png", 4, rc.train.seed)  # the grid was drawn from them
    assert (tmp_path / "again.png").read_bytes() == (run / "samples" / "epoch_002.png").read_bytes()
    shipped = store.ship_run(run, tmp_path / "shipped")  # ships the averaged weights only
    s = store.load_checkpoint(shipped / store.CHECKPOINT)
    assert not {"live_model", "schedule"} & set(s)
    assert all(torch.equal(s["model"][k].float(), ckpt["model"][k].float()) for k in differ
               if s["model"][k].dtype == torch.float32)


def test_flows_write_grids_at_temperature_1_and_their_default(mnist_small, tmp_path):
    train, _ = mnist_small
    torch.manual_seed(0)
    model = build_model("nice", {"couplings": 2, "hidden": [16]})
    assert model.caps.temperature == 0.7
    fit(model, train, None, TrainConfig(epochs=1, batch_size=250, n_samples=4), run_dir=tmp_path)
    assert (tmp_path / "samples" / "epoch_001.png").exists()
    assert (tmp_path / "samples" / "t0.7" / "epoch_001.png").exists()
    assert store.sample_grid(tmp_path, 1, 0.7) == tmp_path / "samples" / "t0.7" / "epoch_001.png"
    assert store.latest_sample(tmp_path).name == "epoch_001.png"  # the T = 1 grid, as before


def test_a_checkpoint_from_before_the_schedule_resumes(data_root, tmp_path):
    """A checkpoint written before issue 12 (no "schedule", Adam's for-loop step in its
    optimiser state) and a config.json without the new fields resume as they trained."""
    import json as _json

    from genlab.training.train import train_run

    run = tmp_path / "old"
    run.mkdir()
    tc = TrainConfig(epochs=1, batch_size=100, limit=500, data_root=str(data_root), n_samples=4)
    store.write_config(run, "vae", VAEConfig(latent_dim=4, hidden=(32,)), tc)
    assert train_run(run)["state"] == "done"
    cfg = _json.loads((run / store.CONFIG).read_text())  # as an old genlab wrote it
    for name in ("optimizer", "betas", "eps", "weight_decay", "lr_schedule", "warmup_steps",
                 "lr_floor", "lr_gamma", "ema_decay", "ema_warmup", "kl_warmup_epochs"):
        del cfg["train"][name]
    (run / store.CONFIG).write_text(_json.dumps(cfg))
    ckpt = store.load_checkpoint(run / store.CHECKPOINT)
    del ckpt["schedule"]
    for group in ckpt["optimizers"][0]["param_groups"]:
        group.update(fused=None, foreach=None)
    store.save_checkpoint(run / store.CHECKPOINT, ckpt)
    assert train_run(run, resume=True, epochs=2)["state"] == "done"
    records = store.read_metrics(run / store.METRICS)[0]
    assert {r["lr"] for r in records if r["event"] == "step"} == {1e-3}  # constant, as before
    after = store.load_checkpoint(run / store.CHECKPOINT)
    assert after["step"] == 10 and after["schedule"]["steps"] == 10 and "live_model" not in after


@pytest.mark.parametrize("channels", [1, 3])
def test_sample_grids_keep_save_images_pixels_in_fewer_bytes(tmp_path, channels):
    """save_sample_grid writes a 1-channel model's grid as greyscale PNG, an RGB model's as
    RGB, with exactly the pixels torchvision's save_image writes (three equal channels for
    grey), and the grey file is smaller."""
    from PIL import Image
    from torchvision.utils import save_image

    from genlab.training.loop import save_sample_grid

    cfg = VAEConfig(image_shape=(channels, 28, 28) if channels == 1 else (3, 32, 32), latent_dim=2,
                    hidden=(16,), preprocess="dynamic" if channels == 1 else "dequantize")
    model = VAE(cfg)
    save_sample_grid(model, tmp_path / "mine.png", 8, seed=3)
    imgs, nrow = model.sample_grid(8, 1.0, seed=3)
    save_image(imgs.float(), tmp_path / "tv.png", nrow=nrow, padding=2, pad_value=1.0)
    mine, tv = Image.open(tmp_path / "mine.png"), Image.open(tmp_path / "tv.png")
    assert mine.mode == ("L" if channels == 1 else "RGB") and tv.mode == "RGB"
    assert mine.convert("RGB").tobytes() == tv.tobytes()
    if channels == 1:
        assert (tmp_path / "mine.png").stat().st_size < (tmp_path / "tv.png").stat().st_size
