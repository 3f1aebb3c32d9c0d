"""Training and evaluation on several processes: torchrun + DistributedDataParallel.

A torchrun launch is recognised from the variables torchrun sets (RANK, WORLD_SIZE,
LOCAL_RANK, MASTER_ADDR, MASTER_PORT); no flag of genlab's own. In one process every
helper here is a no-op, so the loop is the same code either way.

Batch size is GLOBAL: the images of one optimisation step, summed over the processes.
Every process makes the same global batches (permutation from (seed, epoch), as one
process does) and takes its contiguous part (:meth:`Dist.part`); gradients are averaged
weighted by each part's images. So a step of W processes is one process's step on the
whole batch, steps per epoch and the tuned learning rate do not change with W, and a run
resumes in the same order on any number of processes. Each process holds the uint8 split
it reads from disk (47 MB MNIST, 200 MB SVHN) and sees a disjoint slice of it each epoch.

Synchronisation (:class:`SyncedStep`): each network of the model (each direct child with
trainable parameters) gets its own DDP, swapped in only while ``model.train_step`` runs.
The model's own step runs unchanged with any number of optimisers and forward passes (the
GAN calls its discriminator three times, the last one frozen), DDP reduces gradients in
the backward, before ``train_step`` clips (clipping sees the global gradient), and outside
the step the model is plain: checkpoints keep their ``state_dict`` keys, and evaluation,
samples and ``on_epoch_end`` never run a collective. One DDP around the whole model would
need a ``forward`` that is the loss and cannot express the GAN's two steps per batch.
Networks whose layers a model runs without the network's forward (vae-flow-posterior
reads its encoder's last hidden layer) leave DDP unarmed: their gradients are all-reduced
by a hook as they land in ``.grad``, still before any clip or step. Beyond gradients:
data-dependent init (ActNorm) runs once on the gathered global batch, then rank 0's
weights are broadcast; buffer updates (the binary VAE's moving-average baseline, batch-norm
statistics) are averaged by images instead of DDP's broadcast of rank 0's buffers, which
would fit the baseline to rank 0's images only; on CUDA BatchNorm becomes SyncBatchNorm
(PyTorch has none on CPU); ``on_epoch_end`` (ae-gmm's mixture) runs on rank 0, which holds
every image, and its buffers are broadcast (:meth:`Dist.epoch_end`).

Who uses it: ``genlab.training.train.train_run`` joins the launch (:func:`setup`) and gives only
rank 0 the run folder and the callbacks; ``genlab.training.loop.fit`` steps through :meth:`Dist.wrap`
on :meth:`Dist.part` of each :meth:`Dist.batches` batch, reduces its records with
:meth:`Dist.mean_record`, validates on :meth:`Dist.shard` and agrees on a stop request and
the time budget with :meth:`Dist.any`; ``genlab.evaluation.metrics.evaluate_run`` shards log p(x) and
gathers it; the CLI creates a run folder through :func:`on_main`.

Faults: a non-finite loss on any rank makes the all-reduced record non-finite on all
(:meth:`Dist.mean_record`), so all stop at the same check. A dead process closes its
sockets and the others' next collective fails at once (gloo, measured); a hung one fails
them after the timeout. Either becomes a one-line :class:`DistributedError`. Waits for
rank 0's own work go through :meth:`Dist.wait_for_main`, with a timeout of their own.
"""
from __future__ import annotations

import inspect
import os
import re
import sys
from contextlib import contextmanager
from dataclasses import dataclass, field
from functools import partial
from collections.abc import Mapping
from datetime import timedelta
from typing import Callable, NoReturn, TypeVar

import torch
import torch.distributed as tdist
from torch import nn
from torch.nn.parallel import DistributedDataParallel as DDP

from .data import ImageData, batches
from .errors import first_line

TIMEOUT_S = 120.0
"""Default bound (s) on any one collective: a process that stops answering fails the
others after this long. gloo honours it in every collective (all_reduce, broadcast,
all_gather, barrier: measured), NCCL in its watchdog. $GENLAB_DIST_TIMEOUT_S overrides it."""
MAIN_WORK_TIMEOUT_S = 1800.0
"""Bound (s) on a wait for rank 0's own work (checkpoint, sample grid, mixture fit)."""
LAUNCH_VARS = ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT")
DATA_INIT_BUFFER = "initialized"  # flows.py: a layer initialised from its first batch
T = TypeVar("T")


class DistributedError(RuntimeError):
    """A process of a distributed run died, hung or could not be reached."""


@dataclass(frozen=True)
class Launch:
    """Where this process stands in a torchrun launch."""
    rank: int
    world: int
    local_rank: int


def launch_env(environ: Mapping[str, str] | None = None) -> Launch | None:
    """The torchrun launch this process is part of, from its environment; None for a plain
    single process (no RANK/WORLD_SIZE, or WORLD_SIZE=1). ValueError naming the variable
    when one is missing or not a number in range."""
    env = os.environ if environ is None else environ
    if "RANK" not in env and "WORLD_SIZE" not in env:
        return None
    vals = {}
    for name in ("RANK", "WORLD_SIZE", "LOCAL_RANK"):
        raw = env.get(name, "0" if name == "LOCAL_RANK" else None)
        try:
            vals[name] = int(raw)
        except (TypeError, ValueError):
            raise ValueError(f"{name}={raw!r} in the environment: expected a whole number "
                             "(torchrun sets it; launch with torchrun)") from None
    rank, world, local = vals["RANK"], vals["WORLD_SIZE"], vals["LOCAL_RANK"]
    if world < 1 or not 0 <= rank < world or local < 0:
        raise ValueError(f"RANK={rank}, WORLD_SIZE={world}, LOCAL_RANK={local} in the environment: "
                         "need WORLD_SIZE >= 1, 0 <= RANK < WORLD_SIZE, LOCAL_RANK >= 0")
    if world == 1:
        return None
    missing = [n for n in ("MASTER_ADDR", "MASTER_PORT") if not env.get(n)]
    if missing:
        raise ValueError(f"WORLD_SIZE={world} but {' and '.join(missing)} not set: launch "
                         "several processes with torchrun, which sets them")
    return Launch(rank, world, local)


def is_main_process(environ: Mapping[str, str] | None = None) -> bool:
    """Whether this process is rank 0 of its torchrun launch, or runs alone; read from the
    environment before any setup (a malformed one counts as rank 0: setup names it)."""
    try:
        launch = launch_env(environ)
    except ValueError:
        return True
    return launch is None or launch.rank == 0


def _timeout_s(timeout_s: float | None) -> float:
    if timeout_s is not None:
        return float(timeout_s)
    raw = os.environ.get("GENLAB_DIST_TIMEOUT_S", "")
    try:
        value = float(raw) if raw else TIMEOUT_S
    except ValueError:
        value = -1.0
    if not value > 0:
        raise ValueError(f"GENLAB_DIST_TIMEOUT_S={raw!r}: expected a number of seconds > 0")
    return value


def setup(device: torch.device | str = "cpu", *, timeout_s: float | None = None,
          environ: Mapping[str, str] | None = None) -> "Dist":
    """Join the torchrun launch this process belongs to, if any, and return its :class:`Dist`.

    ``device``: the device type fit chose (cpu or cuda). Under torchrun each process takes
    cuda:LOCAL_RANK and NCCL, or the CPU and gloo; ``timeout_s`` bounds each collective
    (default :data:`TIMEOUT_S`). In a single process nothing is started."""
    global _joined
    device = torch.device(device)
    launch = launch_env(environ)
    if launch is None:
        return Dist(device=device)
    if _joined is not None and tdist.is_initialized():  # joined already (cli, then train_run)
        return _joined
    if device.type == "cuda":
        n = torch.cuda.device_count()
        if launch.local_rank >= n:
            raise ValueError(f"LOCAL_RANK={launch.local_rank} but {n} CUDA GPU(s) visible: "
                             f"start at most {n} processes per node (--nproc-per-node)")
        device = torch.device("cuda", launch.local_rank)
        torch.cuda.set_device(device)
        backend = "nccl"
    elif device.type == "cpu":
        backend = "gloo"
    else:
        raise ValueError(f"distributed training runs on cuda (NCCL) or cpu (gloo), not "
                         f"{device.type}; pass --device cuda or --device cpu")
    timeout = timedelta(seconds=_timeout_s(timeout_s))
    kw = {"device_id": device} if backend == "nccl" else {}
    try:
        tdist.init_process_group(backend, rank=launch.rank, world_size=launch.world,
                                 timeout=timeout, **kw)
    except Exception as e:  # the store or a peer could not be reached in time
        raise DistributedError(f"rank {launch.rank} of {launch.world}: could not join the "
                               f"other processes ({_first_line(e)})") from None
    # CPU-side collectives (flags, objects, waits on rank 0) never touch the GPU
    side = tdist.new_group(backend="gloo", timeout=timeout) if backend == "nccl" else None
    _joined = Dist(launch.rank, launch.world, launch.local_rank, device, side, timeout.total_seconds())
    return _joined


_joined: "Dist | None" = None  # this process's launch, once setup has joined it


def on_main(fn: Callable[[], T], device: str = "auto") -> T:
    """``fn()`` on rank 0 alone (e.g. create the run folder), its result shared with every
    process of the launch; in one process just ``fn()``. When ``fn`` fails on rank 0 it
    raises there, and the others raise a one-line DistributedError quoting it."""
    if launch_env() is None:
        return fn()
    from .device import pick_device
    dist = setup(pick_device(device))
    box: list = [None]
    if dist.is_main:
        try:
            box[0] = ("ok", fn())
        except Exception as e:
            dist.share(("error", _first_line(e)))
            raise
    kind, value = dist.share(box[0] if dist.is_main else None)
    if kind == "error":
        raise DistributedError(f"rank {dist.rank} of {dist.world}: rank 0 failed: {value}")
    return value


def teardown(dist: "Dist") -> None:
    """Leave the process group (safe after a failure, and a no-op in one process)."""
    global _joined
    _joined = None
    if dist.active and tdist.is_initialized():
        try:
            tdist.destroy_process_group()
        except Exception:  # a peer already gone: nothing left to release cleanly
            pass


def exit_after_failure(code: int = 1) -> NoReturn:
    """End this process at once (os._exit) after a :class:`DistributedError`, once its
    message and the run's status are written: a lost peer leaves gloo work pending whose
    worker threads can still throw while the interpreter shuts down (std::terminate, exit
    by SIGABRT instead of ``code``), and destroying the group can wait on the dead peer."""
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):
            pass
    os._exit(code)


_NOISE = re.compile(r"\[[^\]]*\.(?:cc|cpp|h|hpp):\d+\] |Got the following error when "
                    r"running the callback: \w+: |\. This is typically caused by.*$")


def _first_line(e: BaseException) -> str:
    """The cause in a few words: gloo's message without its source path and advice."""
    return _NOISE.sub("", first_line(e)).strip()[:200] or type(e).__name__


_COMM_SIGNS = ("connection closed", "connection reset", "timed out", "timeout", "pair closure",
               "by peer", "gloo", "nccl", "processgroup", "broken pipe", "socket")


def _is_comm_failure(e: BaseException) -> bool:
    return isinstance(e, tdist.DistError) or (
        isinstance(e, RuntimeError) and any(s in str(e).lower() for s in _COMM_SIGNS))


@dataclass(frozen=True)
class Dist:
    """This process's place in the run: rank, world size, device. ``Dist(device=d)`` is the
    single process, where every method is a no-op (or the plain computation)."""
    rank: int = 0
    world: int = 1
    local_rank: int = 0
    device: torch.device = field(default_factory=lambda: torch.device("cpu"))
    side_group: object = None  # gloo group for CPU-side collectives (None: the default one)
    timeout_s: float = TIMEOUT_S

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def active(self) -> bool:
        return self.world > 1

    # -- errors --------------------------------------------------------------------
    @contextmanager
    def _comm(self, what: str):
        """Turn a failed collective into a one-line DistributedError."""
        try:
            yield
        except Exception as e:
            if not (self.active and _is_comm_failure(e)):
                raise
            raise DistributedError(
                f"rank {self.rank} of {self.world}: lost contact with the other processes "
                f"during {what} ({_first_line(e)}); a process died, was killed or hung for "
                f"over {self.timeout_s:g} s (its own log says why); the last checkpoint is "
                "kept and the run can be resumed") from None

    # -- data ------------------------------------------------------------------------
    def batches(self, n: int, batch_size: int, *, generator: torch.Generator | None = None,
                device: torch.device | str = "cpu") -> list[torch.Tensor]:
        """One epoch's global batches (index tensors), shuffled by ``generator`` as in one
        process; under W processes a last batch of fewer than W images is left out (those
        images come in the next epoch's order), as every process needs one image at least."""
        out = list(batches(n, batch_size, shuffle=True, generator=generator, device=device))
        return out[:self.steps_per_epoch(n, batch_size)]

    def steps_per_epoch(self, n: int, batch_size: int) -> int:
        """How many global batches :meth:`batches` makes of n images."""
        whole, rest = divmod(n, batch_size)
        return whole + (rest >= (self.world if self.active else 1))

    def part(self, batch: torch.Tensor) -> torch.Tensor:
        """This process's contiguous part of a global batch (dim 0): sizes differ by at most
        one, rank order is batch order. In one process, the batch itself."""
        if not self.active:
            return batch
        if len(batch) < self.world:
            raise ValueError(f"a batch of {len(batch)} images cannot be shared by {self.world} "
                             f"processes: use a batch size of at least {self.world}")
        return batch.tensor_split(self.world)[self.rank]

    def shard(self, data: ImageData) -> ImageData:
        """This process's contiguous share of a split (for evaluation; :meth:`gather` puts
        per-image results back in the split's order)."""
        if not self.active:
            return data
        idx = torch.arange(len(data)).tensor_split(self.world)[self.rank].to(data.x.device)
        return ImageData(data.x[idx], data.y[idx], data.dataset, data.split)

    def seed(self, seed: int) -> int:
        """A per-process seed for model noise: ``seed`` itself on rank 0 (one process draws
        what it always drew), a disjoint stream on the others."""
        return seed + (self.rank << 32)

    # -- reductions ----------------------------------------------------------------------
    def mean_record(self, sums: dict[str, torch.Tensor | float], n: int) -> dict[str, float]:
        """Means over all processes of per-image sums: {k: sum_r sums_r[k] / sum_r n_r}, each
        process giving its sums (mean x its images) and its image count. A NaN on any rank
        makes the mean NaN on every rank, so all stop at the same check."""
        keys = list(sums)
        vals = [torch.as_tensor(sums[k], dtype=torch.float64, device=self.device).reshape(())
                for k in keys]
        flat = torch.stack([*vals, torch.tensor(float(n), dtype=torch.float64, device=self.device)])
        if self.active:
            with self._comm("the metric all-reduce"):
                tdist.all_reduce(flat)
        total = float(flat[-1])
        return {k: float(v) / max(total, 1e-300) for k, v in zip(keys, flat[:-1].tolist())}

    def sum(self, value: float) -> float:
        """``value`` summed over all processes (e.g. images/s)."""
        if not self.active:
            return float(value)
        t = torch.tensor([float(value)], dtype=torch.float64)
        with self._comm("a sum"):
            tdist.all_reduce(t, group=self.side_group)
        return float(t)

    def any(self, flag: bool) -> bool:
        """True on every process when ``flag`` is true on one (a stop request, a fault)."""
        if not self.active:
            return bool(flag)
        t = torch.tensor([int(bool(flag))])
        with self._comm("a flag all-reduce"):
            tdist.all_reduce(t, op=tdist.ReduceOp.MAX, group=self.side_group)
        return bool(t)

    def gather(self, t: torch.Tensor) -> torch.Tensor:
        """Concatenation along dim 0 of every process's ``t`` (sizes may differ), in rank
        order: per-image results of :meth:`shard` come back in the split's order."""
        if not self.active:
            return t
        with self._comm("an all-gather"):
            sizes = [None] * self.world
            tdist.all_gather_object(sizes, len(t), group=self.side_group)
            n = max(sizes)
            dev = self.device if self.device.type == "cuda" else torch.device("cpu")
            pad = torch.zeros((n, *t.shape[1:]), dtype=t.dtype, device=dev)
            pad[:len(t)] = t
            out = [torch.empty_like(pad) for _ in range(self.world)]
            tdist.all_gather(out, pad)
        return torch.cat([o[:s] for o, s in zip(out, sizes)]).to(t.device)

    def share(self, obj: T) -> T:
        """Rank 0's ``obj`` (picklable) on every process."""
        if not self.active:
            return obj
        box = [obj]
        with self._comm("the broadcast of rank 0's result"):
            tdist.broadcast_object_list(box, src=0, group=self.side_group)
        return box[0]

    # -- rank 0's work ---------------------------------------------------------------------
    def wait_for_main(self, what: str = "rank 0's checkpoint") -> None:
        """All processes wait here until rank 0 arrives (after the work only it does), for
        up to :data:`MAIN_WORK_TIMEOUT_S`; gloo's monitored barrier names a rank that never comes."""
        if not self.active:
            return
        with self._comm(f"the wait for {what}"):
            tdist.monitored_barrier(group=self.side_group,
                                    timeout=timedelta(seconds=MAIN_WORK_TIMEOUT_S))

    def broadcast_state(self, module: nn.Module, *, buffers_only: bool = True) -> None:
        """Copy rank 0's buffers (and parameters unless ``buffers_only``) to every process,
        resizing a buffer whose shape differs (a refitted mixture with another K)."""
        if not self.active:
            return
        named = [(m, n, b) for m in module.modules() for n, b in m.named_buffers(recurse=False)]
        if not buffers_only:
            named += [(m, n, p) for m in module.modules() for n, p in m.named_parameters(recurse=False)]
        with self._comm("the broadcast of rank 0's model state"):
            shapes = [[tuple(t.shape) for _, _, t in named]]
            tdist.broadcast_object_list(shapes, src=0, group=self.side_group)
            for (m, name, t), shape in zip(named, shapes[0]):
                if tuple(t.shape) != shape:  # a buffer only: parameters keep their shapes
                    t = torch.empty(shape, dtype=t.dtype, device=t.device)
                    setattr(m, name, t)
                # a contiguous copy where needed (cholesky's factor is column-major; NCCL
                # has no bool), copied back into the tensor the module holds
                c = t.detach()
                c = (c.to(torch.uint8) if c.dtype == torch.bool else c).contiguous()
                tdist.broadcast(c, src=0)
                if c.data_ptr() != t.data_ptr():
                    t.detach().copy_(c)

    def epoch_end(self, model: nn.Module, train: ImageData) -> None:
        """``model.on_epoch_end(train)`` once, on rank 0 (which holds the whole split), then
        its buffers shared: ae-gmm's mixture is fitted once, on the codes of every image."""
        if not self.active:
            model.on_epoch_end(train)
            return
        if self.is_main:
            model.on_epoch_end(train)
        self.wait_for_main("rank 0's on_epoch_end")
        self.broadcast_state(model)

    # -- the model --------------------------------------------------------------------------
    def wrap(self, model: nn.Module) -> "SyncedStep":
        """The training step of ``model`` on this run's processes (see :class:`SyncedStep`)."""
        return SyncedStep(model, self)


@dataclass
class _Share:
    """Comm-hook state: this process's share n_r / N of the global batch."""
    share: float = 1.0
    group: object = None


def _weighted_allreduce(state: _Share, bucket):
    """DDP comm hook: sum over processes of share_r x grad_r, i.e. the gradient of the mean
    loss over the global batch, also when the parts differ in size (DDP's default divides by
    the number of processes, which is that only for equal parts)."""
    buf = bucket.buffer()
    buf.mul_(state.share)
    fut = tdist.all_reduce(buf, group=state.group, async_op=True).get_future()
    return fut.then(lambda f: f.value()[0])


_SYNC_KW = ("forward_sync_buffers" if "forward_sync_buffers" in
            inspect.signature(DDP.__init__).parameters else "broadcast_buffers")


class SyncedStep:
    """``step(x, optimizers, clip_grad=..., of=N, y=labels)``: ``model.train_step`` on this
    process's part ``x`` (and its labels y) of a global batch of N images, with every network's gradient averaged over
    the processes (weighted by images) before ``train_step`` clips and steps, the buffers'
    updates averaged the same way, and, on the first step of a fresh run, data-dependent
    layers initialised from the whole global batch. ``step.model`` is the plain model. In one
    process it is ``model.train_step`` itself."""

    def __init__(self, model: nn.Module, dist: Dist):
        self.model, self.dist = model, dist
        self.nets: dict[str, DDP] = {}
        if not dist.active:
            return
        loose = [n for n, p in model.named_parameters(recurse=False) if p.requires_grad]
        if loose:
            raise ValueError(f"{type(model).__name__} holds parameters outside its networks "
                             f"({', '.join(loose)}): DDP synchronises networks; put them in a submodule")
        self._hook = _Share(group=None)
        ids = [dist.device.index] if dist.device.type == "cuda" else None
        for name, child in model.named_children():
            if not any(p.requires_grad for p in child.parameters()):
                continue  # e.g. a mixture held in buffers: shared by broadcast_state
            if dist.device.type == "cuda":  # global batch statistics, as one process
                child = nn.SyncBatchNorm.convert_sync_batchnorm(child)
                setattr(model, name, child)
            with dist._comm("the broadcast of rank 0's weights"):
                ddp = DDP(child, device_ids=ids, **{_SYNC_KW: False})
            ddp.register_comm_hook(self._hook, _weighted_allreduce)
            ddp.register_forward_pre_hook(partial(self._mark_ran, name))
            for prm in child.parameters():
                if prm.requires_grad:
                    prm.register_post_accumulate_grad_hook(partial(self._sync_bypassed, name))
            self.nets[name] = ddp
        self._ran: set[str] = set()
        self._in_step = False
        self._pending_init = any(not bool(b) for m in model.modules()
                                 for n, b in m.named_buffers(recurse=False) if n == DATA_INIT_BUFFER)

    def _mark_ran(self, name: str, *_) -> None:
        if torch.is_grad_enabled():
            self._ran.add(name)

    def _sync_bypassed(self, name: str, prm: torch.Tensor) -> None:
        """A gradient of a network whose forward the model did not call (vae-flow-posterior
        runs its encoder's layers one by one): DDP's reducer is not armed for it, so it is
        all-reduced here, weighted, as it lands in .grad (still before any clip or step)."""
        if self._in_step and name not in self._ran:
            prm.grad.mul_(self._hook.share)
            tdist.all_reduce(prm.grad)

    @contextmanager
    def _wrapped(self):
        plain = {name: ddp.module for name, ddp in self.nets.items()}
        for name, ddp in self.nets.items():
            setattr(self.model, name, ddp)
        self._ran.clear()
        self._in_step = True
        try:
            yield
        finally:
            self._in_step = False
            for name, net in plain.items():
                setattr(self.model, name, net)

    def _data_init(self, x: torch.Tensor, y: torch.Tensor | None) -> None:
        """Data-dependent layers initialise from the global batch, as in one process."""
        xg = self.dist.gather(x)
        yg = self.dist.gather(y) if y is not None else None
        with torch.no_grad():
            self.model.batch_loss(xg, yg)
        self.dist.broadcast_state(self.model, buffers_only=False)  # bit-identical replicas
        self._pending_init = False

    def __call__(self, x: torch.Tensor, optimizers, *, clip_grad: float | None = None,
                 of: int | None = None, y: torch.Tensor | None = None) -> dict[str, torch.Tensor]:
        if not self.dist.active:
            return self.model.train_step(x, optimizers, clip_grad=clip_grad, y=y)
        if self._pending_init:
            self._data_init(x, y)
        n_global = of if of is not None else int(self.dist.sum(len(x)))
        self._hook.share = len(x) / n_global
        bufs = [b for b in self.model.buffers() if b.is_floating_point()]
        before = [b.clone() for b in bufs]
        with self.dist._comm("a training step's gradient all-reduce"), self._wrapped():
            out = self.model.train_step(x, optimizers, clip_grad=clip_grad, y=y)
        if bufs:
            self._average_updates(bufs, before)
        return out

    @torch.no_grad()
    def _average_updates(self, bufs: list[torch.Tensor], before: list[torch.Tensor]) -> None:
        """b = b_before + sum_r share_r (b_r - b_before): one process's update on the global
        batch for a moving average of a batch mean; exact for buffers the step left alone."""
        delta = torch.cat([(b - b0).double().flatten() for b, b0 in zip(bufs, before)])
        delta.mul_(self._hook.share)
        with self.dist._comm("the buffer all-reduce"):
            tdist.all_reduce(delta)
        for b, b0, d in zip(bufs, before, delta.split([b.numel() for b in bufs])):
            b.copy_(b0 + d.view_as(b).to(b.dtype))
