"""A training run of a run directory: config.json -> data -> :func:`genlab.training.loop.fit`
-> status.json, for ``python -m genlab train | resume`` and the processes the app starts.

status.json says "starting", then "running" with progress and an ETA, then "done",
"stopped" (SIGTERM or the Stop button; resumable) or "failed" with the one-line reason.
"""
from __future__ import annotations

import dataclasses
import os
import sys
import time
from pathlib import Path

import torch

from .. import distributed
from ..config import TrainConfig, flag, validate
from ..data import load_split
from ..device import device_name, pick_device
from ..errors import first_line
from ..runs import store
from . import tensorboard_log
from .loop import Callback, StopRequested, TrainState, fit


def _status_callback(run_dir: Path, t0: float, max_minutes: float = 0.0,
                     start_step: int = 0) -> Callback:
    def cb(event: str, s: TrainState) -> None:
        if event not in ("log", "epoch"):
            return
        done = s.step / max(s.total_steps, 1)
        elapsed = time.time() - t0
        here = (s.step - start_step) / max(s.total_steps - start_step, 1)  # this process's share
        eta = None if s.step <= start_step else elapsed / max(here, 1e-9) - elapsed
        if eta is not None and max_minutes:  # the budget ends the run first (roughly)
            eta = min(eta, max(max_minutes * 60 - elapsed, 0.0))
        store.write_status(run_dir, state="running", epoch=s.epoch, step=s.step,
                          total_steps=s.total_steps, progress=round(done, 4),
                          eta_s=None if eta is None else round(eta, 1))
    return cb


def _progress_bar(total: int, initial: int) -> Callback:
    from tqdm.auto import tqdm  # only for a terminal

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
              max_minutes: float | None = None, progress: bool = False) -> dict:
    """Train (or resume) the run in ``run_dir`` as its config.json says; ``epochs``
    (resume) trains on until that many in all, ``max_minutes`` (resume) for at most that
    many minutes from now. Returns the final status.

    SIGTERM is caught from the first line on: one that comes while the data loads stops
    the run ("stopped", with a checkpoint) as soon as fit() begins. A fault is a
    "failed" status with its one-line reason, then raised (RunError, DatasetError,
    TrainingFailed, ValueError or OSError; DistributedError when a process of a torchrun
    launch was lost: the caller ends the process with distributed.exit_after_failure).

    Under torchrun every process trains (genlab.distributed) and only rank 0 writes the
    run folder; a lost process is recorded as "failed" by whichever process noticed."""
    run_dir = Path(run_dir)
    main = distributed.is_main_process()
    with StopRequested() as stop:
        try:
            return _train_run(run_dir, resume=resume, epochs=epochs, max_minutes=max_minutes,
                              progress=progress, stop=stop, main=main)
        except Exception as e:
            if (run_dir / store.CONFIG).exists() and (  # a run folder: its status says why
                    main or isinstance(e, distributed.DistributedError)):
                _record_failure(run_dir, e)
            raise


def _record_failure(run_dir: Path, e: Exception) -> None:
    try:
        store.write_status(run_dir, state="failed",
                          message=first_line(e))
    except OSError:  # the disk that failed the run may refuse this too: report the first fault
        pass


def _train_run(run_dir: Path, *, resume: bool, epochs: int | None, progress: bool,
               stop: StopRequested, main: bool = True, max_minutes: float | None = None) -> dict:
    write_status = store.write_status if main else _no_status  # rank 0 writes the run folder
    rc = store.read_config(run_dir)
    cfg = rc.train
    if epochs or max_minutes is not None:  # resume --epochs N / --max-minutes M
        cfg = dataclasses.replace(cfg, epochs=epochs or cfg.epochs,
                                  max_minutes=cfg.max_minutes if max_minutes is None else max_minutes)
        validate(cfg, flag)
    t0 = time.time()
    write_status(run_dir, state="starting", pid=os.getpid(), message="",
                 total_epochs=cfg.epochs, started=t0)
    dist = distributed.setup(pick_device(cfg.device))  # torchrun: join the others
    device = dist.device
    torch.manual_seed(cfg.seed)
    if resume:
        model, optimizers, saved, start_epoch, start_step = _resume_from(run_dir, cfg, device,
                                                                         main)
        if start_epoch >= cfg.epochs:
            distributed.teardown(dist)
            return write_status(run_dir, state="done", epoch=start_epoch,
                                     message=f"already trained {start_epoch} epochs; "
                                             "pass --epochs N with N larger to continue")
    else:
        model = store.build_run_model(rc, run_dir).to(device)
        optimizers, saved, start_epoch, start_step = None, {}, 0, 0
    limit = cfg.limit or None
    train = load_split(cfg.dataset, "train", cfg.data_root or None, limit=limit)
    val = load_split(cfg.dataset, "val", cfg.data_root or None, limit=limit)
    callbacks = [_status_callback(run_dir, t0, cfg.max_minutes, start_step)] if main else []
    if main:  # the run's TensorBoard event file, kept as fit goes (tensorboard_log)
        callbacks += tensorboard_log.callbacks(run_dir, start_step)
    if progress and main:
        callbacks.append(_progress_bar(dist.steps_per_epoch(len(train), cfg.batch_size)
                                       * cfg.epochs, start_step))
    write_status(run_dir, state="running", device=device_name(device), processes=dist.world)
    result = fit(model, train, val, cfg, run_dir=run_dir if main else None,
                 callbacks=tuple(callbacks), optimizers=optimizers, start_epoch=start_epoch,
                 start_step=start_step, stop=stop, dist=dist, **saved)
    distributed.teardown(dist)
    return write_status(run_dir, state=result["state"], epoch=result["epoch"],
                        step=result["step"], message=_end_message(run_dir, cfg, result),
                        progress=1.0 if result["state"] == "done" else None)


def _no_status(run_dir: Path, **fields) -> dict:
    """write_status of a process other than rank 0: the status it would have written."""
    return fields


def _resume_from(run_dir: Path, cfg: TrainConfig, device: torch.device, main: bool = True):
    """The model (its live weights), optimisers, fit()'s schedule and position (a dict of
    the two), epoch and step of the run's checkpoint; a checkpoint whose optimiser state or
    counters do not fit is a RunError naming it. (load_model gives the averaged weights,
    which ship; a run that averages keeps the live ones, which it trains on, in
    "live_model".) The metrics records after the checkpoint's step are dropped."""
    model, ckpt, _ = store.load_model(run_dir, map_location=device)
    path = run_dir / store.CHECKPOINT
    optimizers = model.configure_optimizers(cfg.lr, cfg)
    try:
        if "live_model" in ckpt:
            model.load_state_dict(ckpt["live_model"])
        for o, sd in zip(optimizers, ckpt.get("optimizers", [])):
            o.load_state_dict(sd)
        start_epoch, start_step = int(ckpt["epoch"]), int(ckpt["step"])
    except (KeyError, TypeError, ValueError, RuntimeError) as e:
        why = first_line(e)
        raise store.RunError(f"{path}: optimiser state or epoch/step counters do not fit the "
                            f"model ({why})") from None
    saved = {"schedule": ckpt.get("schedule"), "position": ckpt.get("position")}
    if not main:  # rank 0 alone trims the metrics file
        return model, optimizers, saved, start_epoch, start_step
    torn = store.read_metrics(run_dir / store.METRICS)[1]
    dropped = store.truncate_metrics(run_dir / store.METRICS, start_epoch, step=start_step)
    if dropped:
        print(f"genlab: warning: {run_dir / store.METRICS}: dropped {torn} unreadable (torn) "
              f"line(s) and {dropped - torn} record(s) of the unfinished epoch {start_epoch + 1}",
              file=sys.stderr, flush=True)
    return model, optimizers, saved, start_epoch, start_step


def _end_message(run_dir: Path, cfg: TrainConfig, result: dict) -> str:
    if "budget_stop" in result:
        n = result["epoch"]
        return (f"stopped by time budget after {n} epoch{'s' * (n != 1)}: "
                f"{result['budget_stop']:.2f} of {cfg.max_minutes:g} "
                f"{'CPU ' if cfg.budget_clock == 'cpu' else ''}min used, the next epoch "
                f"would overrun; `python -m genlab resume {run_dir}` trains on for another budget")
    if result["state"] == "stopped":
        return f"stopped on request; resume with `python -m genlab resume {run_dir}`"
    return ""
