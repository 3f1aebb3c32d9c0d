"""The time an epoch should take here, before a run starts and while it goes.

Training speed depends on the model and its config, the batch size, precision and the
device (:func:`throughput_key`), and on the machine: runs of the same family with another
width, or runs trained elsewhere (the shipped ones), are no guide. So the figure comes from
the logged steps of runs of this very configuration on this device (a run at work counts
from its first logged steps: :func:`measured_throughput`), else from a short timed probe of
a few training steps, in a process of its own started as a training process is
(:func:`probe_throughput`), once per configuration in the life of the process.
"""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from ..config import TrainConfig
from ..device import pick_device
from ..errors import first_line
from ..models import model_entry
from ..runs import store, status
from ..runs.jobs import REPO, JobError, child_env, job_dirs


def throughput_key(model: str, model_cfg: Any, train_cfg: TrainConfig) -> str:
    """What a training step's speed depends on, as one string: the model and its config,
    the batch size, precision and compilation, and the kind of device it trains on."""
    from ..config import to_dict

    return json.dumps([model, to_dict(model_cfg), train_cfg.batch_size, train_cfg.precision,
                       bool(train_cfg.compile), pick_device(train_cfg.device).type], default=list)


def _same_device(ran_on: str, device: str) -> bool:
    """Did a run whose status.json says ``ran_on`` train on this kind of device? (A GPU
    run's status holds the GPU's name.)"""
    return ran_on == device or (device == "cuda" and ran_on not in ("", "cpu", "mps"))


def run_throughput(run_dir: str | os.PathLike) -> tuple[float, int] | None:
    """(median training images/s, step records) of the steps a run's latest training
    process logged, past their first quarter (the warm-up), or None before its first logged
    step. Only the latest process's: a resumed or continued run's earlier steps may have
    been made elsewhere (each process's records count their "seconds" from its own start)."""
    records, _ = store.read_metrics(Path(run_dir) / store.METRICS)
    steps = [r for r in records if r.get("event") == "step" and isinstance(r.get("images_per_s"), (int, float))]
    clock = [float(r.get("seconds") or 0) for r in steps]
    start = max((i for i in range(1, len(steps)) if clock[i] < clock[i - 1]), default=0)
    got = [r["images_per_s"] for r in steps[start:]]
    got = sorted(got[len(got) // 4:])
    return (got[len(got) // 2], len(got)) if got else None


def measured_throughput(model: str, model_cfg: Any, train_cfg: TrainConfig,
                        roots: Sequence[str | os.PathLike]) -> tuple[float, int] | None:
    """(median of the runs' images/s, runs measured) over the logged steps of runs here of
    this very model, config, batch size and precision (:func:`throughput_key`) whose
    status.json says they ran on this kind of device; a run at work counts from its first
    logged steps on. Shipped runs do not count: the recipe may have trained them on another
    machine (the Train page once read 7,243 images/s from them for a run that made 569).
    None when there is none."""
    mine = json.loads(throughput_key(model, model_cfg, train_cfg))  # as config.json stores it
    rates = []
    for p in job_dirs(*roots):
        cfg = store.read_json(p / store.CONFIG) or {}
        train = cfg.get("train") or {}
        st = store.read_json(p / store.STATUS) or {}
        ran_on = str(st.get("device") or "")
        if st.get("shipped_from"):
            continue
        theirs = [cfg.get("model"), cfg.get("model_config"), train.get("batch_size"),
                  train.get("precision", "fp32"), bool(train.get("compile")), mine[-1]]
        if theirs != mine or not _same_device(ran_on, mine[-1]):
            continue
        got = run_throughput(p)
        if got:
            rates.append(got[0])
    return (sorted(rates)[len(rates) // 2], len(rates)) if rates else None


PROBE_STEPS, PROBE_SECONDS, PROBE_TIMEOUT_S = 5, 2.0, 300.0
_PROBES: dict[str, dict] = {}  # throughput_key -> {"proc", "started"} while timing, then its answer
_PROBES_LOCK = threading.Lock()


def probe_throughput(model: str, model_cfg: Any, train_cfg: TrainConfig, *, wait: bool = False) -> tuple[float, int] | None:
    """(training images/s, steps timed) of a few training steps of a fresh ``model`` with
    these configs, timed in a process of its own started as a training process is (its
    device, its threads, the load beside it: :func:`probe_main`), once per
    :func:`throughput_key` in the life of this process. None while that process is timing,
    or another probe (one at a time): ask again, or ``wait`` until it is done. JobError
    with one line when it failed."""
    key = throughput_key(model, model_cfg, train_cfg)
    deadline = time.time() + 2 * PROBE_TIMEOUT_S
    while True:
        with _PROBES_LOCK:
            _settle_probes()
            job = _PROBES.get(key)
            if job is None and not any("proc" in j for j in _PROBES.values()):
                job = _PROBES[key] = _start_probe(model, model_cfg, train_cfg)
        if job is not None and "error" in job:
            raise JobError(job["error"])
        if job is not None and "rate" in job:
            return job["rate"], job["steps"]
        if not wait or time.time() > deadline:
            return None
        time.sleep(0.2)


def _start_probe(model: str, model_cfg, train_cfg) -> dict:
    from ..config import to_dict

    payload = json.dumps({"model": model, "model_config": to_dict(model_cfg), "train": to_dict(train_cfg)})
    proc = subprocess.Popen([sys.executable, "-c", "from genlab.training.throughput import probe_main; probe_main()",
                             payload], cwd=REPO, env=child_env(), stdin=subprocess.DEVNULL,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, start_new_session=True)
    status.track(proc)
    return {"proc": proc, "started": time.time()}


def _settle_probes() -> None:
    """Read the answers of the probe processes that have exited; kill one past its time."""
    for job in _PROBES.values():
        proc = job.get("proc")
        if proc is None:
            continue
        if proc.poll() is None:
            if time.time() - job["started"] < PROBE_TIMEOUT_S:
                continue
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
            job.update(error=f"the timing process took over {PROBE_TIMEOUT_S:g} s")
        else:
            out = proc.stdout.read().decode(errors="replace").strip().splitlines()
            try:
                job.update(json.loads(out[-1]))
            except (IndexError, ValueError):
                job.update(error=f"the timing process exited with code {proc.returncode}: "
                                 f"{out[-1] if out else 'no output'}")
        proc.stdout.close()
        del job["proc"]


def probe_main() -> None:
    """The probe's process: configs as JSON in argv[1]; prints {"rate", "steps"} or {"error"}."""
    from ..config import TrainConfig, from_dict

    req = json.loads(sys.argv[1])
    try:
        model_cfg = from_dict(model_entry(req["model"])[1], req["model_config"])
        rate, steps = _probe(req["model"], model_cfg, from_dict(TrainConfig, req["train"]))
        print(json.dumps({"rate": rate, "steps": steps}), flush=True)
    except Exception as e:  # one line, never a traceback
        why = first_line(e)
        print(json.dumps({"error": why}), flush=True)


def _probe(model: str, model_cfg, train_cfg) -> tuple[float, int]:
    """One untimed step (allocations, kernels chosen), then up to PROBE_STEPS steps or
    PROBE_SECONDS, on random images of the dataset's shape."""
    import contextlib

    import torch

    from ..data import preprocess

    device = pick_device(train_cfg.device)
    autocast = (lambda: torch.autocast(device.type, dtype=torch.bfloat16)) \
        if train_cfg.precision == "bf16" else contextlib.nullcontext
    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)
    torch.manual_seed(0)
    net = model_entry(model)[0](model_cfg).to(device)
    net.train()
    opts = net.configure_optimizers(train_cfg.lr, train_cfg)
    pixels = torch.randint(0, 256, (train_cfg.batch_size, *model_cfg.image_shape), dtype=torch.uint8)
    steps, t0 = 0, 0.0
    while steps <= PROBE_STEPS:
        x = preprocess(pixels.to(device), net.preprocess)
        with autocast():
            net.train_step(x, opts, clip_grad=train_cfg.clip_grad or None,
                           y=torch.zeros(len(x), dtype=torch.long, device=device))
        sync()
        if steps == 0:
            t0 = time.perf_counter()  # the clock starts after the untimed first step
        steps += 1
        if steps > 1 and time.perf_counter() - t0 > PROBE_SECONDS:
            break
    return train_cfg.batch_size * (steps - 1) / max(time.perf_counter() - t0, 1e-9), steps - 1


def expected_throughput(model: str, model_cfg: Any, train_cfg: TrainConfig,
                        roots: Sequence[str | os.PathLike]) -> tuple[float, str] | None:
    """(training images/s expected for these configs here, where the figure comes from):
    the runs of this configuration on this device (the one going included, from its first
    logged steps), else a short timed probe of it (:func:`probe_throughput`); None while
    that is timing. JobError when the probe failed."""
    device = pick_device(train_cfg.device).type
    got = measured_throughput(model, model_cfg, train_cfg, roots)
    if got:
        rate, n = got
        return rate, (f"measured: the logged steps of {n} run{'s' * (n != 1)} of this configuration "
                      f"on {device} here")
    got = probe_throughput(model, model_cfg, train_cfg)
    if got is None:
        return None
    rate, steps = got
    return rate, (f"timed over {steps} training step{'s' * (steps != 1)} of this model and "
                  f"configuration on {device} just now; the run's first logged steps correct it")
