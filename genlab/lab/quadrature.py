"""Exact figures of a 2-D model against a target, by the midpoint rule on the target's grid.

With p the target's density normalised on the grid and log q the model's log-density at
the same cell centres (dA the cell area):

    H(p)        = -sum p log p dA             (the target's entropy, nats)
    NLL         = -sum p log q dA = E_p[-log q]  (the model's expected NLL on the target)
    KL(p || q)  = NLL - H(p)  >= 0

Cells where p = 0 contribute nothing (0 log 0 = 0)."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import math

import numpy as np
import torch

from .targets import Grid, Target, grid_density


@dataclass(frozen=True)
class Figures:
    entropy: float
    nll: float

    @property
    def kl(self) -> float:
        return self.nll - self.entropy


def entropy(p: np.ndarray, grid: Grid) -> float:
    pos = p > 0
    return float(-(p[pos] * np.log(p[pos])).sum() * grid.cell_area)


def cross_entropy(p: np.ndarray, log_q: np.ndarray, grid: Grid) -> float:
    """-sum p log q dA; +inf where q = 0 under mass of p."""
    pos = p > 0
    return float(-(p[pos] * np.asarray(log_q, dtype=np.float64)[pos]).sum() * grid.cell_area)


def exact_figures(target: Target, log_q: np.ndarray, grid: Grid) -> Figures:
    """Entropy, NLL and (through them) KL(target || model) for log q at the grid's cell centres (n*n,)."""
    p = grid_density(target, grid)
    return Figures(entropy(p, grid), cross_entropy(p, log_q, grid))


def log_normaliser(target: Target | Callable[[torch.Tensor], torch.Tensor], grid: Grid) -> float:
    """log Z, Z the integral of exp(log_density) over the grid's box by the midpoint rule;
    ``target`` is a Target or a log-density itself, (B, 2) -> (B,)."""
    log_density = target.log_density if isinstance(target, Target) else target
    with torch.no_grad():
        logp = torch.cat([log_density(c.double()) for c in grid.points().split(8192)])
    return float(torch.logsumexp(logp, 0)) + math.log(grid.cell_area)
