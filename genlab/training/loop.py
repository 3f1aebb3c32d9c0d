"""One training loop for every model: :func:`fit`.

Data stay resident (on the training device when they fit) as uint8 and batches are
sliced from them; each step calls ``model.train_step`` (one optimiser by default,
two for GANs). After every epoch: validation metrics, a checkpoint (atomic), a
sample grid. Metrics go to metrics.jsonl as they are made. Non-finite losses stop
the run with the step and the part that went bad; the last good checkpoint stays.

Stop and resume meet at one point, the last step taken. A stop (SIGTERM, SIGINT: the
app's Stop button) mid-epoch checkpoints the weights, optimisers, schedule (lr, weight
average, KL warm-up) and step count after that step, with the epoch's "position": the
batches done, the random streams (pixel noise, every process's model noise) and the
training sums of the records not yet written. The resume rebuilds the epoch's batch
order from its seed and goes on at the next batch, so it equals a run that never
stopped: the same weights and the same records, each step logged once. A killed process
leaves the last epoch's checkpoint, where every counter stands at that epoch's end: the
resume replays the unfinished epoch from its start and drops its records.
"""
from __future__ import annotations

import math
import signal
import time
from contextlib import nullcontext
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Callable

import torch
from PIL import Image
from torchvision.utils import make_grid

from ..config import TrainConfig, to_dict
from ..data import ImageData, prepare, preprocess
from ..distributed import Dist
from ..evaluation.metrics import evaluate
from ..models import GenerativeModel
from ..runs import store
from .optim import TrainingSchedule

_clock = time.perf_counter  # the loop's clock of record times and the wall budget (tests replace it)
_cpu_clock = time.process_time  # records' cpu_seconds, and the budget's clock under budget_clock="cpu"
STOP_CHECK_EVERY = 10  # steps between the processes' agreement on a stop request (SIGTERM)


class TrainingFailed(RuntimeError):
    """Training stopped on a fault (non-finite loss); the message says where."""


@dataclass
class TrainState:
    """What callbacks see."""
    epoch: int  # the epoch in progress (1-based)
    step: int  # optimisation steps done so far, over the whole run
    total_steps: int
    steps_per_epoch: int
    record: dict | None = None  # the metrics record just written, if any


Callback = Callable[[str, TrainState], None]
"""(event, state); events: "step" | "log" (a step, with its training record), then after
each epoch "epoch_train", "epoch_val" (with their records) and "epoch"."""


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


class _Sums:
    """Image-weighted sums of step outputs, kept as tensors (no device sync per step)."""

    def __init__(self, sums: dict | None = None, n: int = 0):
        self.sums: dict[str, torch.Tensor] = dict(sums or {})
        self.n = n

    def add(self, out: dict[str, torch.Tensor], n: int) -> None:
        for k, v in out.items():
            self.sums[k] = self.sums.get(k, 0.0) + v * n
        self.n += n

    def merge(self, other: "_Sums") -> None:
        for k, v in other.sums.items():
            self.sums[k] = self.sums.get(k, 0.0) + v
        self.n += other.n

    def mean(self) -> dict[str, float]:
        return {k: float(v) / max(self.n, 1) for k, v in self.sums.items()}


@dataclass
class _Position:
    """Where a stopped epoch stands: ``batch`` of its batches done and what the steps after
    it need, per process in rank order (one row each): the random streams after that batch,
    the pixel noise (one for all processes), torch's CPU generator ``model_noise``
    (processes, L) and the device's own ``device_noise`` (CUDA) when it has one, and the
    training sums of the epoch and of the window since the last record,
    {"sums": {part: (processes,)}, "n": (processes,)}."""
    epoch: int  # the epoch in progress (1-based)
    batch: int
    window_images: int
    device_type: str
    pixel_noise: torch.Tensor
    model_noise: torch.Tensor
    device_noise: torch.Tensor | None
    epoch_sums: dict
    window_sums: dict

    def state_dict(self) -> dict:
        """Plain numbers and tensors: loads with ``torch.load(weights_only=True)``."""
        return {f.name: getattr(self, f.name) for f in fields(self)}

    @classmethod
    def from_state(cls, state: dict) -> "_Position":
        return cls(**{f.name: state[f.name] for f in fields(cls)})


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


def save_sample_grid(model: GenerativeModel, path: Path, n: int, seed: int,
                     temperature: float = 1.0) -> None:
    """n samples at ``temperature`` drawn with ``seed`` (the global RNG left as it was),
    written as one PNG grid, atomically (a temporary file renamed): greyscale for 1-channel
    images (torchvision's save_image writes three equal channels, twice the bytes), with
    save_image's pixels (x * 255 rounded)."""
    model.eval()
    imgs, nrow = model.sample_grid(n, temperature, seed=seed)  # a conditional model: a row a class
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp.png")
    try:
        grid = make_grid(imgs.float().cpu(), nrow=nrow, padding=2, pad_value=1.0)  # (3, H, W)
        pixels = grid.mul(255).add_(0.5).clamp_(0, 255).to(torch.uint8)
        image = (Image.fromarray(pixels[0].numpy(), "L") if imgs.shape[1] == 1
                 else Image.fromarray(pixels.permute(1, 2, 0).numpy(), "RGB"))
        image.save(tmp, format="PNG", optimize=True)
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


def checkpoint_payload(model: GenerativeModel, optimizers: list[torch.optim.Optimizer], *, epoch: int, step: int,
                       schedule: TrainingSchedule | None = None,
                       position: dict | None = None) -> dict:
    """What checkpoint.pt holds. "model" is what evaluation, the app and shipping read: the
    averaged weights when the run averages them (the live buffers beside them), else the
    live ones; with averaging, "live_model" keeps the live weights and "schedule" the
    average, the lr schedule and the step count, so that a resume continues exactly.
    ``epoch``: epochs done; ``position``: where epoch + 1 stands after a stop in it."""
    out = {"kind": model.kind, "config": to_dict(model.cfg), "model": model.state_dict(),
           "optimizers": [o.state_dict() for o in optimizers], "epoch": epoch, "step": step}
    if position is not None:
        out["position"] = position
    if schedule is not None:
        out["model"] = schedule.model_state_dict(model)
        out["schedule"] = schedule.state_dict()
        if schedule.ema is not None:
            out["live_model"] = model.state_dict()
    return out


class _Loop:
    """One fit(): the model, its data and optimisers, the callbacks and the run folder,
    with a method for each part of an epoch."""

    def __init__(self, model: GenerativeModel, train: ImageData, val: ImageData | None,
                 cfg: TrainConfig, run_dir: Path | None, callbacks: tuple[Callback, ...],
                 optimizers: list, state: TrainState, dist: Dist):
        self.model, self.cfg, self.run_dir, self.callbacks = model, cfg, run_dir, callbacks
        self.optimizers, self.state, self.dist = optimizers, state, dist
        self.step = dist.wrap(model)  # model.train_step, gradients synchronised across processes
        # lr schedule, weight average and KL warm-up (fit places them at a resumed step)
        self.sched = TrainingSchedule(model, optimizers, cfg, steps_per_epoch=state.steps_per_epoch,
                                      total_steps=state.total_steps)
        self.beta = model.cfg.beta if model.caps.kl_warmup else None  # the KL weight warmed up
        device = model.device
        self.train = prepare(train, model.preprocess).to(device)
        self.val = prepare(val, model.preprocess).to(device) if val is not None else None
        self.step_context = _step_context(cfg.precision, device)
        self.pixel_noise = torch.Generator(device=device)
        self.batch_order = torch.Generator()
        self.position: _Position | None = None  # a stopped epoch's, until it goes on
        self.writer = store.MetricsWriter(run_dir / store.METRICS) if run_dir else None
        self.t0, self.cpu_t0 = _clock(), _cpu_clock()
        self.budget_t0 = self.budget_now()

    def budget_now(self) -> float:
        """Seconds on the clock ``max_minutes`` counts (cfg.budget_clock: wall or CPU time)."""
        return _cpu_clock() if self.cfg.budget_clock == "cpu" else _clock()

    def __enter__(self) -> "_Loop":
        return self

    def __exit__(self, *exc) -> None:
        if self.writer:
            self.writer.close()

    def run_epoch(self, epoch: int, stop: StopRequested) -> dict | None:
        """Epoch ``epoch``, start to end; the run's final status when that ends the run
        (a stop request, the time budget), else None."""
        if self.stop_requested(stop, True):  # asked to stop between epochs, or before fit() began
            return self.stopped(epoch - 1)
        state = self.state
        state.epoch, t_epoch = epoch, _clock()
        b_epoch = self.budget_now()
        self.seed_epoch(epoch)
        sums = self.train_epoch(stop)
        if sums is None:  # stopped mid-epoch: saved with its position, resumed there
            return self.stopped(epoch - 1)
        self.end_epoch(epoch, sums, t_epoch)
        if self.dist.any(self.over_budget(epoch, b_epoch)):  # any process's clock stops all
            return {"state": "done", "epoch": epoch, "step": state.step,
                    "budget_stop": round((self.budget_now() - self.budget_t0) / 60, 3)}
        return None

    def emit(self, event: str, record: dict | None = None) -> None:
        self.state.record = record
        if record is not None and self.writer:
            self.writer.write(record)
        for cb in self.callbacks:
            cb(event, self.state)

    def record(self, parts: dict[str, float], *, event: str, split: str, images: int,
               since: float) -> dict:
        """A metrics record: the parts, where in the run they were made, and the images
        per second since ``since``."""
        now = _clock()
        return {**parts, "event": event, "split": split, "epoch": self.state.epoch,
                "step": self.state.step, "seconds": round(now - self.t0, 3),
                "cpu_seconds": round(_cpu_clock() - self.cpu_t0, 3),
                "images_per_s": round(images / max(now - since, 1e-9), 1)}

    def save(self, epoch: int) -> None:
        if self.run_dir:
            store.save_checkpoint(self.run_dir / store.CHECKPOINT, checkpoint_payload(
                self.model, self.optimizers, epoch=epoch, step=self.state.step,
                schedule=self.sched,
                position=self.position.state_dict() if self.position else None))

    def seed_epoch(self, epoch: int) -> None:
        """Per-epoch streams (pixel noise, batch order, model noise): a resumed run
        repeats the epochs of an uninterrupted one exactly."""
        base = 3 * (self.cfg.seed * 100_000 + epoch)
        self.pixel_noise.manual_seed(base)
        self.batch_order.manual_seed(base + 1)
        torch.manual_seed(self.dist.seed(base + 2))  # model noise: one stream per process

    def train_epoch(self, stop: StopRequested) -> _Sums | None:
        """The steps of one epoch (a stopped one: from its next batch), a training record
        every ``log_every`` steps and at the epoch's end; returns the epoch's sums, or None
        when ``stop`` was set mid-epoch (``self.position`` then says where)."""
        cfg, state, model = self.cfg, self.state, self.model
        self.model.train()
        # global batches (the same on every process), each process stepping on its part
        epoch = self.dist.batches(len(self.train), cfg.batch_size, generator=self.batch_order,
                                  device=model.device)
        done, epoch_sums, window_sums, window_images = self.go_on(len(epoch))
        window, t_window = [], _clock()  # (a resumed window's outputs are in its sums only)
        for i, idx in enumerate(epoch[done:], done + 1):
            x = self.dist.part(preprocess(self.train.x[idx], model.preprocess,
                                          generator=self.pixel_noise))
            y = self.dist.part(self.train.y[idx])  # read by class-conditional models only
            if self.beta is not None:  # KL warm-up: the weight of this step
                model.kl_weight = self.sched.kl_weight(self.beta)
            with self.step_context():
                out = self.step(x, self.optimizers, clip_grad=cfg.clip_grad or None, of=len(idx),
                                y=y)
            self.sched.step(model)  # next lr, weight average updated
            window.append(out)  # references only: no device sync per step
            window_sums.add(out, len(x))
            window_images += len(idx)  # images/s of the whole run, all processes
            state.step += 1
            logged = state.step % cfg.log_every == 0 or i == len(epoch)
            if logged:
                parts = self.dist.mean_record(window_sums.sums, window_sums.n)
                _check_finite(parts, state.step, window)
                rec = self.record({**parts, **self.sched.record(self.beta)}, event="step",
                                  split="train", images=window_images, since=t_window)
                self.emit("log", rec)
                epoch_sums.merge(window_sums)
                window_sums, window, window_images, t_window = _Sums(), [], 0, _clock()
            else:
                self.emit("step")
            if self.stop_requested(stop, logged or state.step % STOP_CHECK_EVERY == 0):
                self.position = self.where(i, epoch_sums, window_sums, window_images)
                return None
        return epoch_sums

    def go_on(self, batches: int) -> tuple[int, _Sums, _Sums, int]:
        """Where the epoch starts: (batches done, epoch sums, window sums, window images),
        from the start, or where a stop left it, its random streams put back. Each process
        goes on from its own streams and sums under as many processes as saved them; under
        another number, from the epoch's start streams (no longer one run), rank 0 holding
        the sums."""
        at, self.position = self.position, None
        if at is None:
            return 0, _Sums(), _Sums(), 0
        if not 0 <= int(at.batch) <= batches:
            raise ValueError(f"the checkpoint stopped after batch {at.batch} of epoch "
                             f"{at.epoch}, which has {batches} batches here")
        device, rank = self.model.device, self.dist.rank
        same = len(at.model_noise) == self.dist.world  # as many processes as saved it
        if at.device_type == device.type:  # generators of another device type do not fit
            self.pixel_noise.set_state(at.pixel_noise.cpu())
            if same:  # (a row copied: the generators read a state from its storage's start)
                torch.set_rng_state(at.model_noise[rank].cpu().clone())
                if at.device_noise is not None:
                    torch.cuda.set_rng_state(at.device_noise[rank].cpu().clone(), device)
        sums = [self.own_sums(s, same) for s in (at.epoch_sums, at.window_sums)]
        return int(at.batch), *sums, int(at.window_images)

    def own_sums(self, gathered: dict, same: bool) -> _Sums:
        """This process's sums of those :meth:`where` gathered."""
        n, parts, rank = gathered["n"], gathered["sums"], self.dist.rank
        if same:
            return _Sums({k: v[rank] for k, v in parts.items()}, int(n[rank]))
        keep = 1 if self.dist.is_main else 0
        return _Sums({k: v.sum() * keep for k, v in parts.items()}, int(n.sum()) * keep)

    def where(self, batch: int, epoch_sums: _Sums, window_sums: _Sums,
              window_images: int) -> _Position:
        """The epoch's position after ``batch``, every process's streams and sums gathered
        (collectives: all processes call it, at the same step)."""
        device, gather = self.model.device, self.dist.gather

        def rows(sums: _Sums) -> dict:
            parts = {k: gather(torch.as_tensor(v).reshape(1)) for k, v in sums.sums.items()}
            return {"sums": parts, "n": gather(torch.tensor([sums.n]))}
        return _Position(
            self.state.epoch, batch, window_images, device.type, self.pixel_noise.get_state(),
            gather(torch.get_rng_state()[None]),  # (processes, L)
            gather(torch.cuda.get_rng_state(device)[None]) if device.type == "cuda" else None,
            rows(epoch_sums), rows(window_sums))

    def stop_requested(self, stop: StopRequested, check: bool) -> bool:
        """The stop flag; under several processes it is agreed on (set on one: stop all) at
        log points and every STOP_CHECK_EVERY steps only, the same steps on every process."""
        if not self.dist.active:
            return stop.flag
        return check and self.dist.any(stop.flag)

    def validate(self) -> None:
        t_val = _clock()
        mine = self.dist.shard(self.val)  # each process its share, means weighted by images
        with self.sched.averaged(self.model):  # the weights that ship
            parts = evaluate(self.model, mine, batch_size=max(self.cfg.batch_size, 500),
                             seed=self.dist.seed(self.cfg.seed))
        parts = self.dist.mean_record({k: v * len(mine) for k, v in parts.items()}, len(mine))
        _check_finite(parts, self.state.step)
        self.emit("epoch_val", self.record(parts, event="epoch", split="val",
                                           images=len(self.val), since=t_val))

    def end_epoch(self, epoch: int, sums: _Sums, t_epoch: float) -> None:
        """After the steps: the model's own epoch hook, the epoch's training record,
        validation, the checkpoint and the sample grid."""
        # e.g. ae-gmm fits its mixture on the codes: once (rank 0, every image), then shared
        with self.sched.averaged(self.model):  # a mixture on the codes of the weights that ship
            self.dist.epoch_end(self.model, self.train)
        self.emit("epoch_train", self.record(self.dist.mean_record(sums.sums, sums.n),
                                             event="epoch", split="train",
                                             images=len(self.train), since=t_epoch))
        if self.val is not None:
            self.validate()
        self.save(epoch)
        if self.run_dir:
            self.save_samples(epoch)
        self.dist.wait_for_main()  # the others wait for rank 0's checkpoint and samples
        self.emit("epoch")

    def save_samples(self, epoch: int) -> None:
        """The epoch's sample grids from the averaged weights: at T = 1 and, where the
        family's default temperature differs (flows: 0.7), at that one too."""
        temperatures = sorted({1.0, self.model.caps.temperature or 1.0}, reverse=True)
        with self.sched.averaged(self.model):
            for t in temperatures:
                save_sample_grid(self.model, store.sample_grid(self.run_dir, epoch, t),
                                 self.cfg.n_samples, self.cfg.seed, temperature=t)

    def stopped(self, epoch: int) -> dict:
        """Stop on request: the checkpoint of ``epoch`` epochs done, from the weights as they
        are now, with the next one's position when it stopped in it. A full disk at
        that save leaves the checkpoint written before it whole (the write is atomic),
        and the run's one-line failure says so."""
        try:
            self.save(epoch)
        except OSError as e:
            kept = (self.run_dir / store.CHECKPOINT).exists()
            err = type(e)(f"{e}; " + (
                "stopped on the last checkpoint, which is kept (the steps since it are not): "
                "free some space, then resume" if kept else
                "stopped before any checkpoint was written: free some space, then train it again"))
            err.errno = e.errno
            raise err from None
        self.dist.wait_for_main()
        return {"state": "stopped", "epoch": epoch, "step": self.state.step}

    def over_budget(self, epoch: int, b_epoch: float) -> bool:
        """Would one more epoch, as long as the last one, end past ``max_minutes``? (On the
        budget's clock; ``b_epoch``: the epoch's start on it.)"""
        now = self.budget_now()
        return bool(self.cfg.max_minutes) and epoch < self.cfg.epochs and \
            (now - self.budget_t0) + (now - b_epoch) > self.cfg.max_minutes * 60


def fit(model: GenerativeModel, train: ImageData, val: ImageData | None, cfg: TrainConfig, *,
        run_dir: str | Path | None = None, callbacks: tuple[Callback, ...] = (),
        optimizers: list | None = None, start_epoch: int = 0, start_step: int = 0,
        stop: StopRequested | None = None, dist: Dist | None = None,
        schedule: dict | None = None, position: dict | None = None) -> dict:
    """Train ``model`` for epochs start_epoch+1 .. cfg.epochs.

    Returns the final status dict: {"state": "done" | "stopped", "epoch", "step"}, plus
    "budget_stop": minutes trained when ``cfg.max_minutes`` ended the run early (before
    an epoch that, going by the last one's duration, would have ended past the budget).
    Raises TrainingFailed on a non-finite loss (nothing is saved from that epoch).
    ``stop``: a StopRequested the caller entered already (one set before fit starts
    stops it at once, with a checkpoint of the weights it was given).
    ``optimizers``, ``schedule``: a resume's optimisers (their state loaded) and the
    checkpoint's "schedule" (None for a checkpoint written before it existed: the schedule
    is placed at ``start_step``); the model then holds the live weights ("live_model").
    ``position``: the checkpoint's "position" of a run stopped mid-epoch: epoch
    start_epoch + 1 goes on at its next batch (see the module's docstring).
    ``dist``: this process's place in a torchrun launch (genlab.distributed.setup; default
    one process). Every process runs fit() on the whole split with the same seeds; only
    the one given ``run_dir`` and ``callbacks`` (rank 0) writes. ``cfg.batch_size`` is the
    global batch, shared by the processes.
    """
    dist = dist or Dist(device=model.device)
    if cfg.compile:
        for net in model.children():  # in place: the state_dict keys stay the same
            net.compile()
    steps_per_epoch = dist.steps_per_epoch(len(train), cfg.batch_size)
    state = TrainState(start_epoch, start_step, steps_per_epoch * cfg.epochs, steps_per_epoch)
    loop = _Loop(model, train, val, cfg, Path(run_dir) if run_dir else None, callbacks,
                 optimizers or model.configure_optimizers(cfg.lr, cfg), state, dist)
    if schedule is not None:  # a resume: the schedule's own state, after the optimisers'
        loop.sched.load_state_dict(schedule)
    elif start_step:  # a checkpoint from before schedules: its recipe only needs the count
        loop.sched.start_at(start_step)
    if position is not None:
        loop.position = _Position.from_state(position)
        if loop.position.epoch != start_epoch + 1:
            raise ValueError(f"the checkpoint's position is in epoch {loop.position.epoch}, "
                             f"not in epoch {start_epoch + 1} after its {start_epoch} done")
    with loop, nullcontext(stop) if stop is not None else StopRequested() as stop:
        for epoch in range(start_epoch + 1, cfg.epochs + 1):
            end = loop.run_epoch(epoch, stop)
            if end is not None:
                return end
    return {"state": "done", "epoch": cfg.epochs, "step": state.step}
