"""One training loop for every model: :func:`fit`.

Data stay resident (on the training device when they fit) as uint8 and batches are
sliced from them; each step calls ``model.train_step`` (one optimiser by default,
two for GANs). After every epoch: validation metrics, a checkpoint (atomic), a
sample grid. Metrics go to metrics.jsonl as they are made. Non-finite losses stop
the run with the step and the part that went bad; the last good checkpoint stays.
"""
from __future__ import annotations

import math
import os
import signal
import sys
import time
from contextlib import nullcontext
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import torch
from torchvision.utils import save_image

from . import runs
from .config import opt
from .data import DATASETS, ImageData, batches, prepare, preprocess
from .models import GenerativeModel


@dataclass
class TrainConfig:
    dataset: str = opt("mnist", "dataset", choices=tuple(DATASETS))
    epochs: int = opt(20, "number of epochs", lo=1, hi=100000)
    batch_size: int = opt(128, "images per step", lo=1, hi=65536)
    lr: float = opt(1e-3, "Adam learning rate", lo=0.0, lo_open=True, hi=1.0)
    seed: int = opt(0, "random seed (weights, batches, noise)", lo=0)
    device: str = opt("auto", "training device: auto picks cuda > mps > cpu",
                      choices=("auto", "cpu", "cuda", "mps"))
    clip_grad: float = opt(0.0, "clip the gradient norm to this value (0 = off)", lo=0.0)
    limit: int = opt(0, "use only the first N training images (0 = all)", lo=0)
    log_every: int = opt(50, "steps between training-metric records", lo=1)
    n_samples: int = opt(64, "images in each epoch's sample grid", lo=1, hi=1024)
    max_minutes: float = opt(0.0, "time budget in minutes: stop before an epoch that, going by "
                             "the last epoch's duration, would end past it; the run ends done "
                             "and resumable (0 = no limit)", lo=0.0)
    data_root: str = opt("", "dataset folder (default: $GENLAB_DATA, else ./data)")
    precision: str = opt("fp32", "arithmetic of the training steps: bf16 runs each under "
                         "torch.autocast (bfloat16 matrix products, for CUDA; CPU works too); "
                         "weights, optimiser state, validation and eval stay float32",
                         choices=("fp32", "bf16"))
    compile: bool = opt(False, "torch.compile each of the model's networks (Module.compile; "
                        "the first steps wait for the compiler, which needs a C compiler)")


_clock = time.perf_counter  # the time budget's clock (tests replace it)


class TrainingFailed(RuntimeError):
    """Training stopped on a fault (non-finite loss); the message says where."""


def pick_device(name: str = "auto") -> torch.device:
    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if getattr(torch.backends, "mps", None) and torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise ValueError("device cuda requested but no CUDA GPU is available; use auto or cpu")
    if name == "mps" and not torch.backends.mps.is_available():
        raise ValueError("device mps requested but MPS is not available; use auto or cpu")
    return torch.device(name)


def device_name(device: torch.device) -> str:
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    return device.type


@dataclass
class TrainState:
    """What callbacks see."""
    epoch: int  # the epoch in progress (1-based)
    step: int  # optimisation steps done so far, over the whole run
    total_steps: int
    steps_per_epoch: int
    record: dict | None = None  # the metrics record just written, if any


Callback = Callable[[str, TrainState], None]  # (event: "step" | "log" | "epoch", state)


class StopRequested:
    """Turns SIGTERM (and SIGINT) into a flag the loop checks between steps."""

    def __init__(self):
        self.flag = False
        self.old = {}

    def __enter__(self):
        for sig in (signal.SIGTERM, signal.SIGINT):
            try:
                self.old[sig] = signal.signal(sig, self._handle)
            except ValueError:  # not the main thread (e.g. inside a test runner thread)
                pass
        return self

    def _handle(self, *_):
        self.flag = True

    def __exit__(self, *exc):
        for sig, handler in self.old.items():
            signal.signal(sig, handler)


def _mean_record(sums: dict[str, torch.Tensor], n: int) -> dict[str, float]:
    return {k: float(v) / n for k, v in sums.items()}


def _check_finite(record: dict[str, float], step: int, window: list[dict] = ()) -> None:
    """Raise TrainingFailed if a part of ``record`` is not finite. ``window`` holds the
    step outputs the record averages (ending at ``step``), to name the first bad step."""
    bad = [k for k, v in record.items() if not math.isfinite(v)]
    if not bad:
        return
    value = record[bad[0]]
    for i, out in enumerate(window):  # only looked at once something went wrong
        parts = [k for k, v in out.items() if not torch.isfinite(v).all()]
        if parts:
            step, bad, value = step - len(window) + 1 + i, parts, float(out[parts[0]].float().sum())
            break
    sums = ("elbo", "loss")  # made of the other parts: name the cause first
    bad = [k for k in bad if k not in sums] + [k for k in sums if k in bad]
    also = f" (also {', '.join(bad[1:])})" if bad[1:] else ""
    raise TrainingFailed(f"non-finite {bad[0]} ({value}) at step {step}{also}: stopped; "
                         "the last good checkpoint is kept. Try a lower --lr or --clip-grad")


@torch.no_grad()
def evaluate(model: GenerativeModel, data: ImageData, *, batch_size: int = 500,
             seed: int = 0) -> dict[str, float]:
    """Mean of ``model.eval_metrics`` over a split, with seeded preprocessing noise."""
    model.eval()
    data = prepare(data, model.preprocess)
    g = torch.Generator(device=data.x.device).manual_seed(seed)
    sums: dict[str, torch.Tensor] = {}
    for idx in batches(len(data), batch_size, shuffle=False, device=data.x.device):
        x = preprocess(data.x[idx], model.preprocess, generator=g).to(model.device)
        for k, v in model.eval_metrics(x).items():
            sums[k] = sums.get(k, 0.0) + v.double() * len(idx)
    return _mean_record(sums, len(data))


def _save_samples(model: GenerativeModel, path: Path, n: int, seed: int) -> None:
    model.eval()
    with torch.random.fork_rng(devices=[model.device] if model.device.type == "cuda" else []):
        torch.manual_seed(seed)
        imgs = model.sample(n)
    path.parent.mkdir(exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp.png")
    try:
        save_image(imgs.float().cpu(), tmp, nrow=int(math.ceil(math.sqrt(n))), padding=2, pad_value=1.0)
        tmp.replace(path)
    except BaseException:
        tmp.unlink(missing_ok=True)  # a full disk leaves no half-written grid
        raise


def _step_context(precision: str, device: torch.device):
    """What each training step runs under: nothing for fp32, bfloat16 autocast for bf16."""
    if precision == "fp32":
        return nullcontext
    if device.type not in ("cuda", "cpu"):
        raise ValueError(f"precision {precision} needs a cuda or cpu device, not {device.type}; "
                         "use --precision fp32")
    return lambda: torch.autocast(device.type, dtype=torch.bfloat16)


def checkpoint_payload(model: GenerativeModel, optimizers, *, epoch: int, step: int) -> dict:
    from .config import to_dict
    return {"kind": model.kind, "config": to_dict(model.cfg), "model": model.state_dict(),
            "optimizers": [o.state_dict() for o in optimizers], "epoch": epoch, "step": step}


def fit(model: GenerativeModel, train: ImageData, val: ImageData | None, cfg: TrainConfig, *,
        run_dir: str | Path | None = None, callbacks: tuple[Callback, ...] = (),
        optimizers: list | None = None, start_epoch: int = 0, start_step: int = 0,
        stop: StopRequested | None = None) -> dict:
    """Train ``model`` for epochs start_epoch+1 .. cfg.epochs.

    Returns the final status dict: {"state": "done" | "stopped", "epoch", "step"}, plus
    "budget_stop": minutes trained when ``cfg.max_minutes`` ended the run early (before
    an epoch that, going by the last one's duration, would have ended past the budget).
    Raises TrainingFailed on a non-finite loss (nothing is saved from that epoch).
    ``stop``: a StopRequested the caller entered already (one set before fit starts
    stops it at once, with a checkpoint of the weights it was given).
    """
    device = model.device
    run_dir = Path(run_dir) if run_dir else None
    optimizers = optimizers or model.configure_optimizers(cfg.lr)
    step_context = _step_context(cfg.precision, device)
    if cfg.compile:
        for net in model.children():  # in place: the state_dict keys stay the same
            net.compile()
    train = prepare(train, model.preprocess).to(device)
    val = prepare(val, model.preprocess).to(device) if val is not None else None
    g = torch.Generator(device=device)  # pixel noise
    g_cpu = torch.Generator()  # batch order
    steps_per_epoch = math.ceil(len(train) / cfg.batch_size)
    total = steps_per_epoch * cfg.epochs
    state = TrainState(start_epoch, start_step, total, steps_per_epoch)
    writer = runs.MetricsWriter(run_dir / runs.METRICS) if run_dir else None
    t_run = time.perf_counter()
    t_budget = _clock()

    def emit(event: str, record: dict | None = None) -> None:
        state.record = record
        if record is not None and writer:
            writer.write(record)
        for cb in callbacks:
            cb(event, state)

    def save(epoch: int) -> None:
        if run_dir:
            runs.save_checkpoint(run_dir / runs.CHECKPOINT,
                                 checkpoint_payload(model, optimizers, epoch=epoch, step=state.step))

    try:
        with nullcontext(stop) if stop is not None else StopRequested() as stop:
            for epoch in range(start_epoch + 1, cfg.epochs + 1):
                if stop.flag:  # asked to stop between epochs, or before fit() began
                    save(epoch - 1)
                    return {"state": "stopped", "epoch": epoch - 1, "step": state.step}
                state.epoch = epoch
                t_epoch0 = _clock()
                epoch_step0, window = state.step, []
                # per-epoch streams (pixel noise, batch order, model noise): a resumed run
                # repeats the epochs of an uninterrupted one exactly
                base = 3 * (cfg.seed * 100_000 + epoch)
                g.manual_seed(base)
                g_cpu.manual_seed(base + 1)
                torch.manual_seed(base + 2)
                model.train()
                t_epoch = t_log = time.perf_counter()
                sums: dict[str, torch.Tensor] = {}
                ep_sums: dict[str, torch.Tensor] = {}
                n_log = n_ep = 0
                for idx in batches(len(train), cfg.batch_size, shuffle=True, generator=g_cpu,
                                   device=device):
                    x = preprocess(train.x[idx], model.preprocess, generator=g)
                    with step_context():
                        out = model.train_step(x, optimizers, clip_grad=cfg.clip_grad or None)
                    window.append(out)  # references only: no device sync per step
                    for k, v in out.items():
                        sums[k] = sums.get(k, 0.0) + v * len(idx)
                    n_log += len(idx)
                    state.step += 1
                    if state.step % cfg.log_every == 0 or n_ep + n_log == len(train):
                        now = time.perf_counter()
                        rec = _mean_record(sums, n_log)
                        _check_finite(rec, state.step, window)
                        rec.update(event="step", split="train", epoch=epoch, step=state.step,
                                   seconds=round(now - t_run, 3),
                                   images_per_s=round(n_log / max(now - t_log, 1e-9), 1))
                        emit("log", rec)
                        for k, v in sums.items():
                            ep_sums[k] = ep_sums.get(k, 0.0) + v
                        n_ep += n_log
                        sums, n_log, t_log, window = {}, 0, now, []
                    else:
                        emit("step")
                    if stop.flag:
                        break
                if stop.flag:
                    # resume repeats this partial epoch from the weights now; its step count
                    # restarts where the epoch began, as its metrics are dropped then
                    state.step = epoch_step0
                    save(epoch - 1)
                    return {"state": "stopped", "epoch": epoch - 1, "step": state.step}
                model.on_epoch_end(train)  # e.g. ae-gmm fits its mixture on the codes
                now = time.perf_counter()
                rec = _mean_record(ep_sums, max(n_ep, 1))
                rec.update(event="epoch", split="train", epoch=epoch, step=state.step,
                           seconds=round(now - t_run, 3),
                           images_per_s=round(len(train) / max(now - t_epoch, 1e-9), 1))
                emit("epoch_train", rec)
                if val is not None:
                    t_val = time.perf_counter()
                    vrec = evaluate(model, val, batch_size=max(cfg.batch_size, 500), seed=cfg.seed)
                    _check_finite(vrec, state.step)
                    now = time.perf_counter()
                    vrec.update(event="epoch", split="val", epoch=epoch, step=state.step,
                                seconds=round(now - t_run, 3),
                                images_per_s=round(len(val) / max(now - t_val, 1e-9), 1))
                    emit("epoch_val", vrec)
                save(epoch)
                if run_dir:
                    _save_samples(model, run_dir / "samples" / f"epoch_{epoch:03d}.png",
                                  cfg.n_samples, cfg.seed)
                emit("epoch")
                now = _clock()
                if cfg.max_minutes and epoch < cfg.epochs and \
                        (now - t_budget) + (now - t_epoch0) > cfg.max_minutes * 60:
                    return {"state": "done", "epoch": epoch, "step": state.step,
                            "budget_stop": round((now - t_budget) / 60, 3)}
    finally:
        if writer:
            writer.close()
    return {"state": "done", "epoch": cfg.epochs, "step": state.step}


# -- a whole run: config.json -> data -> fit -> status ------------------------------
def _status_callback(run_dir: Path, t0: float, max_minutes: float = 0.0) -> Callback:
    def cb(event: str, s: TrainState) -> None:
        if event not in ("log", "epoch"):
            return
        done = s.step / max(s.total_steps, 1)
        elapsed = time.time() - t0
        eta = None if s.step == 0 else elapsed / max(done, 1e-9) - elapsed
        if eta is not None and max_minutes:  # the budget ends the run first (roughly)
            eta = min(eta, max(max_minutes * 60 - elapsed, 0.0))
        runs.write_status(run_dir, state="running", epoch=s.epoch, step=s.step,
                          total_steps=s.total_steps, progress=round(done, 4),
                          eta_s=None if eta is None else round(eta, 1))
    return cb


def _progress_bar(total: int, initial: int) -> Callback:
    from tqdm.auto import tqdm

    bar = tqdm(total=total, initial=initial, unit="step", dynamic_ncols=True)

    def cb(event: str, s: TrainState) -> None:
        if event in ("step", "log"):
            bar.update(1)
        if event == "log":
            bar.set_postfix(epoch=s.epoch, loss=f"{s.record['loss']:.3f}")
        if event == "epoch_val":
            bar.write(f"epoch {s.epoch}: val loss {s.record['loss']:.4f}")
        if s.step >= s.total_steps and event == "epoch":
            bar.close()
    return cb


def train_run(run_dir: str | Path, *, resume: bool = False, epochs: int | None = None,
              progress: bool = False) -> dict:
    """Train (or resume) the run in ``run_dir`` as its config.json says.

    Writes status.json as it goes: "running" with progress, then "done", "stopped"
    (SIGTERM / Stop button; resumable) or "failed" with the one-line reason. SIGTERM is
    caught from the first line on: one that comes while the data loads stops the run
    ("stopped", with a checkpoint) as soon as fit() begins.
    """
    with StopRequested() as stop:
        return _train_run(Path(run_dir), resume=resume, epochs=epochs, progress=progress, stop=stop)


def _resume_from(run_dir: Path, cfg: TrainConfig, device: torch.device):
    """The model, optimisers, epoch and step of the run's checkpoint; a checkpoint whose
    optimiser state or counters do not fit is a RunError naming it."""
    model, ckpt, _ = runs.load_model(run_dir, map_location=device)
    path = run_dir / runs.CHECKPOINT
    optimizers = model.configure_optimizers(cfg.lr)
    try:
        for o, sd in zip(optimizers, ckpt.get("optimizers", [])):
            o.load_state_dict(sd)
        start_epoch, start_step = int(ckpt["epoch"]), int(ckpt["step"])
    except (KeyError, TypeError, ValueError, RuntimeError) as e:
        why = str(e).splitlines()[0] if str(e) else type(e).__name__
        raise runs.RunError(f"{path}: optimiser state or epoch/step counters do not fit the "
                            f"model ({why})") from None
    torn = runs.read_metrics(run_dir / runs.METRICS)[1]
    dropped = runs.truncate_metrics(run_dir / runs.METRICS, start_epoch)
    if dropped:
        print(f"genlab: warning: {run_dir / runs.METRICS}: dropped {torn} unreadable (torn) "
              f"line(s) and {dropped - torn} record(s) of the unfinished epoch {start_epoch + 1}",
              file=sys.stderr, flush=True)
    return model, optimizers, start_epoch, start_step


def _train_run(run_dir: Path, *, resume: bool, epochs: int | None, progress: bool,
               stop: StopRequested) -> dict:
    from .config import from_dict
    from .data import load_split
    from .models import build_model

    run_dir = Path(run_dir)
    rc = runs.read_config(run_dir)
    cfg = from_dict(TrainConfig, {**rc.train, **({"epochs": epochs} if epochs else {})},
                    what=f"{run_dir / runs.CONFIG} train")
    t0 = time.time()
    runs.write_status(run_dir, state="starting", pid=os.getpid(), message="",
                      total_epochs=cfg.epochs, started=t0)
    try:
        device = pick_device(cfg.device)
        torch.manual_seed(cfg.seed)
        start_epoch = start_step = 0
        if resume:
            model, optimizers, start_epoch, start_step = _resume_from(run_dir, cfg, device)
            if start_epoch >= cfg.epochs:
                return runs.write_status(run_dir, state="done", epoch=start_epoch,
                                         message=f"already trained {start_epoch} epochs; "
                                                 "pass --epochs N with N larger to continue")
        else:
            model = build_model(rc.model, rc.model_config).to(device)
            optimizers = None
        limit = cfg.limit or None
        train = load_split(cfg.dataset, "train", cfg.data_root or None, limit=limit)
        val = load_split(cfg.dataset, "val", cfg.data_root or None, limit=limit)
        callbacks = [_status_callback(run_dir, t0, cfg.max_minutes)]
        if progress:
            callbacks.append(_progress_bar(math.ceil(len(train) / cfg.batch_size) * cfg.epochs,
                                           start_step))
        runs.write_status(run_dir, state="running", device=device_name(device))
        result = fit(model, train, val, cfg, run_dir=run_dir, callbacks=tuple(callbacks),
                     optimizers=optimizers, start_epoch=start_epoch, start_step=start_step,
                     stop=stop)
    except Exception as e:
        msg = str(e).splitlines()[0] if str(e) else type(e).__name__
        try:
            runs.write_status(run_dir, state="failed", message=msg)
        except OSError:  # the disk that failed the run may refuse this too: report the first fault
            pass
        raise
    message = ("stopped on request; resume with `python -m genlab resume "
               f"{run_dir}`" if result["state"] == "stopped" else "")
    if "budget_stop" in result:
        n = result["epoch"]
        message = (f"stopped by time budget after {n} epoch{'s' * (n != 1)}: "
                   f"{result['budget_stop']:.2f} of {cfg.max_minutes:g} min used, the next epoch "
                   f"would overrun; `python -m genlab resume {run_dir}` trains on for another "
                   "budget")
    return runs.write_status(run_dir, state=result["state"], epoch=result["epoch"],
                             step=result["step"], message=message,
                             progress=1.0 if result["state"] == "done" else None)
