"""The lab's stepper: an :class:`Experiment` holds one family on one target and advances it
a number of steps, or for a time budget, with the learning rate and batch size it is given
at that moment; it keeps the loss parts of every step and the exact figures of the grid
(KL(target || model), NLL, computed on demand) so a page can draw them as it goes."""
from __future__ import annotations

import time
from dataclasses import dataclass, field

import numpy as np
import torch

from .families import LabFamily, Options, make_family
from .quadrature import Figures, exact_figures
from .targets import Grid, Target, grid_density

MAX_HISTORY = 4000  # loss records kept (thinned by half beyond)
LOG_Q_CHUNK = 4096  # grid points a pass: a 128 x 128 grid whole took twice as long (its
# (16384, 64) activations do not stay in cache; one thread, 8 couplings: 47 against 22 ms)


def step_budget(tick_s: float, draw_s: float, *, most: float, least: float, fill: float = 0.9) -> float:
    """Seconds of stepping for a live tick of ``tick_s`` whose drawing took ``draw_s`` last
    time: what is left of ``fill`` of the tick (the rest is Streamlit's own work), between
    ``least`` (training never stops) and ``most``. A Streamlit fragment run longer than its
    run_every is followed at once by the next (the browser asks on its timer and the server
    keeps one request while a run is going), so a tick longer than its interval gives no
    more pictures, only a server that never rests beside the browser drawing them."""
    return min(most, max(least, fill * tick_s - draw_s))


@dataclass
class Experiment:
    target: Target
    family: LabFamily
    grid: Grid = field(default_factory=Grid)
    history: list[dict] = field(default_factory=list)  # {"step", loss parts...}
    exact: list[dict] = field(default_factory=list)  # {"step", "kl", "nll"}
    seconds: float = 0.0  # time spent stepping
    _log_q: tuple[int, np.ndarray | None] | None = field(default=None, repr=False)  # (steps, log q)

    @classmethod
    def start(cls, target: Target, family: str, opts: Options, *, lr: float, seed: int = 0,
              grid: Grid | None = None) -> "Experiment":
        grid = grid or Grid()
        fam = make_family(family, target, opts, lr=lr, seed=seed)
        fam.on_start(grid)
        return cls(target, fam, grid)

    @property
    def steps(self) -> int:
        return self.family.steps

    def advance(self, n: int, *, batch: int, lr: float | None = None) -> None:
        """n optimisation steps at this lr and batch size."""
        if lr is not None:
            self.family.set_lr(lr)
        t0 = time.perf_counter()
        for _ in range(n):
            self._record(self.family.step(batch))
        self.seconds += time.perf_counter() - t0

    def run_for(self, seconds: float, *, batch: int, lr: float | None = None, max_steps: int = 10_000) -> int:
        """Steps until ``seconds`` have passed (at least one, at most max_steps); how many."""
        if lr is not None:
            self.family.set_lr(lr)
        t0 = time.perf_counter()
        n = 0
        while n < max_steps and (n == 0 or time.perf_counter() - t0 < seconds):
            self._record(self.family.step(batch))
            n += 1
        self.seconds += time.perf_counter() - t0
        return n

    def _record(self, parts: dict[str, float]) -> None:
        self.history.append({"step": self.family.steps, **parts})
        if len(self.history) > MAX_HISTORY:
            self.history = self.history[::2]

    # -- what a page draws ------------------------------------------------------------
    def target_density(self) -> np.ndarray:
        return grid_density(self.target, self.grid)

    def log_q(self) -> np.ndarray | None:
        """The model's log-density at the grid's cell centres (n*n,), or None: batched passes
        without autograd (LOG_Q_CHUNK points each), kept until the next step (a rerun that did not step, the
        metrics and the picture share it). An estimate (the VAE's importance-weighted
        bound) draws its samples from a fixed seed, outside the global random stream the
        training draws from: the same model gives the same figures."""
        if self.family.density is None:
            return None
        if self._log_q is None or self._log_q[0] != self.steps:
            with torch.no_grad(), torch.random.fork_rng(devices=[]):
                torch.manual_seed(0)
                log_q = torch.cat([self.family.log_prob(c) for c in self.grid.points().split(LOG_Q_CHUNK)])
                self._log_q = (self.steps, log_q.double().numpy())
        return self._log_q[1]

    def figures(self, log_q: np.ndarray | None = None) -> Figures | None:
        """Exact entropy, NLL and KL(target || model) on the grid (a bound for the VAE's
        estimate); recorded for the live curve. None for a family without a density."""
        log_q = self.log_q() if log_q is None else log_q
        if log_q is None:
            return None
        figs = exact_figures(self.target, log_q, self.grid)
        if not self.exact or self.exact[-1]["step"] != self.steps:
            self.exact.append({"step": self.steps, "kl": figs.kl, "nll": figs.nll})
        return figs

    def steps_per_second(self) -> float:
        return self.steps / self.seconds if self.seconds > 0 else 0.0
