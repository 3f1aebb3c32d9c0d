"""Optimisers, learning-rate schedules, weight averaging and KL warm-up for :func:`fit`.

Everything here is built from ``torch.optim``: the optimisers are ``Adam``, ``AdamW`` and
``Adamax`` (fused step where PyTorch has one for the device, else foreach), the schedule
is a ``LambdaLR`` over one closed-form factor (:func:`lr_factor`), and the weight average
lerps with ``torch.optim.swa_utils.get_ema_multi_avg_fn``. :class:`TrainingSchedule`
bundles the schedule, the average and the KL warm-up with one ``state_dict`` of plain
tensors and numbers, so that a run stopped and resumed equals one that never stopped.

The options are :class:`genlab.config.OptimConfig` fields (``opt()``, like every other
hyperparameter), which :class:`~genlab.config.TrainConfig` has too; their defaults are the
old recipe (Adam, constant lr, no averaging, no warm-up), so a
config that does not name them trains as before. ``genlab.models.family_defaults`` gives
each model family the settings its papers state, with the source (its registry entry).

Steps are counted from 0: step s is the (s+1)-th optimiser update of the run.
"""
from __future__ import annotations

import math
from collections.abc import Iterator, Sequence
from contextlib import AbstractContextManager, contextmanager, nullcontext

import torch
from torch import nn
from torch.optim.lr_scheduler import LambdaLR
from torch.optim.swa_utils import get_ema_multi_avg_fn

from ..config import SCHEDULES, OptimConfig

BURDA_STAGES = 8  # Burda et al. 2016: lr 1e-3 * 10^(-i/7) for 3^i epochs, i = 0..7


# -- learning-rate schedule ----------------------------------------------------------
def burda_stage(epoch: int) -> int:
    """Stage i (0..7) of Burda et al.'s schedule for a 0-based epoch: stage i lasts 3^i
    epochs, so it starts at epoch (3^i - 1) / 2."""
    i = 0
    while i < BURDA_STAGES - 1 and epoch >= (3 ** (i + 1) - 1) // 2:
        i += 1
    return i


def lr_factor(step: int, cfg: OptimConfig, *, steps_per_epoch: int, total_steps: int) -> float:
    """The learning rate of step ``step`` (0-based) as a fraction of lr.

    Warm-up (step < W = warmup_steps): (step+1)/W. After it, with t = step - W steps since
    and F = lr_floor: constant 1; cosine F + (1-F)(1 + cos(pi min(t/T, 1)))/2 with
    T = total_steps - W; exponential max(F, gamma^(t/steps_per_epoch)); burda
    max(F, 10^(-i/7)) with i the stage of epoch t // steps_per_epoch."""
    w = cfg.warmup_steps
    if step < w:
        return (step + 1) / w
    t, floor = step - w, cfg.lr_floor
    if cfg.lr_schedule == "constant":
        return 1.0
    if cfg.lr_schedule == "cosine":
        u = min(t / max(total_steps - w, 1), 1.0)
        return floor + (1.0 - floor) * 0.5 * (1.0 + math.cos(math.pi * u))
    if cfg.lr_schedule == "exponential":
        return max(floor, cfg.lr_gamma ** (t / steps_per_epoch))
    if cfg.lr_schedule == "burda":
        return max(floor, 10.0 ** (-burda_stage(t // steps_per_epoch) / 7))
    raise ValueError(f"lr_schedule must be one of {', '.join(SCHEDULES)} (got {cfg.lr_schedule!r})")


def build_schedulers(optimizers: Sequence[torch.optim.Optimizer], cfg: OptimConfig, *, steps_per_epoch: int,
                     total_steps: int) -> list[LambdaLR]:
    """A LambdaLR per optimiser over :func:`lr_factor`: after k ``step()`` calls (one per
    optimiser step) the optimiser's lr is lr * lr_factor(k). The factor is a closure, so
    the schedulers' state_dicts hold only numbers."""
    if steps_per_epoch < 1:
        raise ValueError(f"steps_per_epoch must be >= 1 (got {steps_per_epoch})")

    def factor(step: int) -> float:
        return lr_factor(step, cfg, steps_per_epoch=steps_per_epoch, total_steps=total_steps)
    return [LambdaLR(o, factor) for o in optimizers]


# -- KL warm-up ----------------------------------------------------------------------
def beta_at(epochs_done: float, warmup_epochs: float, beta: float) -> float:
    """The KL weight after ``epochs_done`` (fractional) epochs: beta * min(1, done / N)
    over a warm-up of N = ``warmup_epochs`` (Sonderby et al. 2016); beta when N = 0."""
    if warmup_epochs <= 0:
        return beta
    return beta * min(1.0, epochs_done / warmup_epochs)


# -- weight averaging ----------------------------------------------------------------
class EMA:
    """Exponential moving average of a model's parameters (Polyak averaging).

    Update n (1-based) sets avg = p at n = 1, else avg = d_n avg + (1 - d_n) p with
    d_n = decay, or min(decay, (1+n)/(10+n)) with ``warmup``; the lerp is
    ``torch.optim.swa_utils.get_ema_multi_avg_fn``'s. Buffers are not averaged: BatchNorm
    statistics, ActNorm's ``initialized`` flag, a baseline's moving average or a fitted
    mixture are the live model's, read from it whenever the averaged weights are used.

    Why not ``AveragedModel``: it deep-copies the whole module (a compiled one too) and
    reads its ``n_averaged`` tensor on every update, a device sync per step on CUDA; here
    the count is a Python int and only the parameters are kept.
    """

    def __init__(self, model: nn.Module, decay: float, *, warmup: bool = True):
        if not 0.0 < decay < 1.0:
            raise ValueError(f"ema decay must be > 0 and < 1 (got {decay})")
        self.decay, self.warmup = decay, warmup
        self.names = [n for n, _ in model.named_parameters()]
        self.params = [p.detach().clone() for p in model.parameters()]
        self.num_updates = 0

    def decay_at(self, n: int) -> float:
        """The decay of the n-th update (1-based)."""
        return min(self.decay, (1 + n) / (10 + n)) if self.warmup else self.decay

    @torch.no_grad()
    def update(self, model: nn.Module) -> None:
        current = [p.detach() for p in model.parameters()]
        self.num_updates += 1
        if self.num_updates == 1:
            for a, p in zip(self.params, current):
                a.copy_(p)
        else:
            get_ema_multi_avg_fn(self.decay_at(self.num_updates))(self.params, current, None)

    @contextmanager
    def averaged(self, model: nn.Module) -> Iterator[nn.Module]:
        """Inside: the model holds the averaged parameters (its buffers stay); after, its
        own again, bit for bit, also when the body raises."""
        live = [p.detach().clone() for p in model.parameters()]
        self._copy_into(model, self.params)
        try:
            yield model
        finally:
            self._copy_into(model, live)

    @torch.no_grad()
    def _copy_into(self, model: nn.Module, tensors: list[torch.Tensor]) -> None:
        for p, t in zip(model.parameters(), tensors):
            p.copy_(t)

    def averaged_state_dict(self, model: nn.Module) -> dict[str, torch.Tensor]:
        """``model.state_dict()`` with the averaged parameters: the same keys, the live
        buffers; what is validated, sampled, evaluated and shipped."""
        avg = {id(p): a for p, a in zip(model.parameters(), self.params)}
        return {k: (avg[id(v)].clone() if id(v) in avg else v.detach())
                for k, v in model.state_dict(keep_vars=True).items()}

    def state_dict(self) -> dict:
        return {"num_updates": self.num_updates,
                "params": {n: a.clone() for n, a in zip(self.names, self.params)}}

    @torch.no_grad()
    def load_state_dict(self, state: dict) -> None:
        saved = state["params"]
        if set(saved) != set(self.names):
            missing = sorted(set(self.names) - set(saved))
            extra = sorted(set(saved) - set(self.names))
            raise ValueError(f"averaged weights do not fit the model (missing: {missing[:3]}, "
                             f"unexpected: {extra[:3]})")
        for n, a in zip(self.names, self.params):
            if saved[n].shape != a.shape:
                raise ValueError(f"averaged weight {n} has shape {tuple(saved[n].shape)}, "
                                 f"the model's is {tuple(a.shape)}")
            a.copy_(saved[n])
        self.num_updates = int(state["num_updates"])


# -- everything that moves with the step count ---------------------------------------
class TrainingSchedule:
    """The learning-rate schedule, the weight average and the KL warm-up of one run.

    fit() calls :meth:`kl_weight` before each training step (latent models), :meth:`step`
    after it, runs validation, sample grids and evaluation inside :meth:`averaged`, and
    saves :meth:`state_dict` in the checkpoint beside the model's and the optimisers'.
    """

    def __init__(self, model: nn.Module, optimizers: Sequence[torch.optim.Optimizer], cfg: OptimConfig, *,
                 steps_per_epoch: int, total_steps: int):
        self.cfg, self.steps_per_epoch = cfg, steps_per_epoch
        self.optimizers = list(optimizers)
        self.schedulers = build_schedulers(self.optimizers, cfg, steps_per_epoch=steps_per_epoch,
                                           total_steps=total_steps)
        self.ema = EMA(model, cfg.ema_decay, warmup=cfg.ema_warmup) if cfg.ema_decay > 0 else None
        self.steps = 0  # optimiser steps taken (per optimiser)

    def kl_weight(self, beta: float = 1.0) -> float:
        """The KL weight of the next step: ``beta`` ramped over cfg.kl_warmup_epochs."""
        return beta_at(self.steps / self.steps_per_epoch, self.cfg.kl_warmup_epochs, beta)

    def step(self, model: nn.Module) -> None:
        """After each training step (every optimiser stepped once): next learning rate,
        average updated."""
        for s in self.schedulers:
            s.step()
        if self.ema is not None:
            self.ema.update(model)
        self.steps += 1

    @property
    def lr(self) -> float:
        """The learning rate the next step of the first optimiser uses."""
        return float(self.optimizers[0].param_groups[0]["lr"])

    def record(self, beta: float | None = None) -> dict[str, float]:
        """What a metrics record adds: the lr of the last step taken (the first one's
        before any) and, for latent models (``beta`` given), the KL weight that step used,
        so a record's numbers sit beside the settings that made them."""
        last = max(self.steps - 1, 0)
        s = self.schedulers[0]
        out = {"lr": float(s.base_lrs[0] * s.lr_lambdas[0](last))}
        if beta is not None:
            out["kl_weight"] = beta_at(last / self.steps_per_epoch, self.cfg.kl_warmup_epochs, beta)
        return out

    def averaged(self, model: nn.Module) -> AbstractContextManager[nn.Module]:
        """Context: the model holds the averaged weights (no-op without averaging)."""
        return self.ema.averaged(model) if self.ema is not None else nullcontext(model)

    def model_state_dict(self, model: nn.Module) -> dict[str, torch.Tensor]:
        """The weights to evaluate and ship: averaged if averaging is on; model's keys."""
        return self.ema.averaged_state_dict(model) if self.ema is not None else model.state_dict()

    def state_dict(self) -> dict:
        """Plain numbers, lists and tensors: loads with ``torch.load(weights_only=True)``."""
        return {"steps": self.steps, "schedulers": [s.state_dict() for s in self.schedulers],
                "ema": self.ema.state_dict() if self.ema is not None else None}

    def start_at(self, step: int) -> None:
        """Place a fresh schedule at ``step`` steps done: for a checkpoint written before
        these options existed (it has no schedule state; its config has today's recipe, for
        which only the count matters). The average, if on, starts from the current weights."""
        for s, o in zip(self.schedulers, self.optimizers):
            lrs = [base * f(step) for base, f in zip(s.base_lrs, s.lr_lambdas)]
            s.load_state_dict({**s.state_dict(), "last_epoch": step, "_last_lr": lrs})
            for group, lr in zip(o.param_groups, lrs):
                group["lr"] = lr
        self.steps = step

    def load_state_dict(self, state: dict) -> None:
        """Restore after the optimisers' own state (either order works: the optimisers'
        learning rates are set from the restored schedule)."""
        if len(state["schedulers"]) != len(self.schedulers):
            raise ValueError(f"the checkpoint has {len(state['schedulers'])} lr schedule(s), the "
                             f"model has {len(self.schedulers)} optimiser(s)")
        if (state["ema"] is None) != (self.ema is None):
            have = "has" if state["ema"] is not None else "has no"
            raise ValueError(f"the checkpoint {have} averaged weights but ema_decay is "
                             f"{self.cfg.ema_decay:g}; resume with the run's own settings")
        for s, o, sd in zip(self.schedulers, self.optimizers, state["schedulers"]):
            s.load_state_dict(sd)
            for group, base, lr in zip(o.param_groups, s.base_lrs, s.get_last_lr()):
                group["initial_lr"], group["lr"] = base, lr
        if self.ema is not None:
            self.ema.load_state_dict(state["ema"])
        self.steps = int(state["steps"])
