"""The true posterior p(z|x) and exact log p(x) by quadrature, for models with a 2-D latent.

With d = 2 the marginal likelihood is an integral over the plane, which the midpoint rule
computes as accurately as wanted: over the centres z_g of n x n cells of area A,

    log p(x) = log of the integral of p(x|z) p(z) dz
             ~ logsumexp_g [log p(x|z_g) + log p(z_g)] + log A.

For a smooth integrand that is negligible at the edge of the box this converges faster
than any power of the step. On the same grid: the normalised true posterior
p(z|x) = p(x|z) p(z) / p(x); the encoder's density q(z|x) (the model's ``log_q`` hook: the
Gaussian, or a flow posterior's q_K by the change of variables
log q_K(z_K) = log q_0(f^{-1}(z_K)) + log|det df^{-1}/dz_K|); the ELBO
E_q[log p(x, z) - log q(z|x)] as a quadrature over q; and the gap
KL(q || p(z|x)) = log p(x) - ELBO.

How the grid is chosen, per image (:class:`GridSpec`; its defaults in brackets):
1. search: an n0 x n0 grid [64] over [-R, R]^2 [R = 6: N(0, I) puts 2e-8 of its mass
   outside] locates where p(z|x) and q(z|x) have mass: the cells within ``tau`` nats of
   each one's largest [15: a Gaussian puts e^-15 = 3e-7 of its mass beyond that]. If
   that region reaches the search box's edge the box grows 1.5x (at most ``max_grow``
   [4] times; images still at the edge are flagged unconverged).
2. refine: a box around the region, padded by 2 search cells, with n = n_start [32],
   2 n_start, ... cells a side, until halving the step changes both log p(x) and the ELBO
   by less than ``tol`` [0.01] nats and q integrates to 1 within ``q_tol`` [1e-3] on the
   grid (a flow can make q much narrower than p(z|x)); the figures of the finer grid are kept.

All sums are in float64; the model is evaluated in its own dtype, in inference mode.
"""
from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from typing import Callable

import torch

from ..data import ImageData
from ..models.base import GenerativeModel
from ..runs.views import integrable
from .images import model_inputs

IW_KS = (1, 10, 100, 1000, 5000)
IW_GAP_WARN = 0.2  # nats: the estimate at k/10 and at k still differ by more -> warning


# -- model access: what the model declares (caps.q_density) and its hooks -------------------
def check_model(model: GenerativeModel) -> None:
    """ValueError unless ``model`` has a posterior density at any z (``caps.q_density``:
    ``log_q``, ``log_likelihood``, ``log_prior``) and a 2-D latent to integrate over."""
    if model.caps.q_density is None:
        raise ValueError(f"the true posterior needs a VAE whose q(z|x) has a density at any z "
                         f"(a Gaussian or flow encoder: caps.q_density); a {model.kind!r} model "
                         "declares none")
    d = model.cfg.latent_dim
    if d != 2:
        raise ValueError(f"quadrature over z needs a 2-D latent; this {model.kind!r} model has "
                         f"latent_dim={d}")


def can_integrate(model: GenerativeModel) -> bool:
    """Whether :func:`check_model` accepts the model (eval and the pages ask this first)."""
    return integrable(type(model), vars(model.cfg).get("latent_dim"))  # flows have none


def log_joint(model: GenerativeModel, x: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
    """log p(x|z) + log p(z): x (B, C, H, W), z (G, B, d) -> (G, B)."""
    return model.log_likelihood(x, z) + model.log_prior(z)


def _iw_estimate(model, x: torch.Tensor, k: int) -> torch.Tensor:
    """The model's own importance-weighted log p(x) from k samples: (B,)."""
    return model.log_prob(x, k=k)


def _elbo_samples(model, x: torch.Tensor, n: int, chunk: int = 2048) -> torch.Tensor:
    """n Monte Carlo terms log p(x, z) - log q(z|x), z ~ q(z|x): (n, B) float64."""
    parts = [model.log_weights(x, min(chunk, n - i)).cpu().double() for i in range(0, n, chunk)]
    return torch.cat(parts, 0)


# -- grids ----------------------------------------------------------------------------------
@dataclass(frozen=True)
class GridSpec:
    """How grids are chosen (see the module docstring); the defaults meet tol = 0.01 nats."""
    radius: float = 6.0  # half-width of the first search box
    n_search: int = 64  # search cells a side
    tau: float = 15.0  # nats below the largest cell that still count as mass
    max_grow: int = 4  # times the search box may grow 1.5x
    n_start: int = 32  # first refinement grid, cells a side
    n_max: int = 512  # refinement stops here (flagged unconverged)
    tol: float = 0.01  # nats: halving the step must change log p(x) and the ELBO less
    q_tol: float = 1e-3  # and q must integrate to 1 within this on the grid
    rows: int = 2048  # decoder rows (grid points x images) per model call

    def __post_init__(self):
        if not (self.tol > 0 and self.q_tol > 0 and self.radius > 0 and self.tau > 0):
            raise ValueError(f"tol, q_tol, radius and tau must be > 0 (got {self.tol}, {self.q_tol}, "
                             f"{self.radius}, {self.tau})")
        if not 4 <= self.n_start <= self.n_max or self.n_search < 8 or self.rows < 1:
            raise ValueError(f"need 4 <= n_start <= n_max, n_search >= 8 and rows >= 1 (got "
                             f"{self.n_start}, {self.n_max}, {self.n_search}, {self.rows})")


def cell_centres(box: torch.Tensor, n: int) -> torch.Tensor:
    """Centres of n x n cells of each image's box (B, 4) = [lo1, hi1, lo2, hi2]:
    (n*n, B, 2), point g = i*n + j at (z1[i], z2[j]) (row-major, 'ij' indexing)."""
    t = (torch.arange(n, dtype=box.dtype, device=box.device) + 0.5) / n  # (n,)
    a1 = box[:, 0] + t[:, None] * (box[:, 1] - box[:, 0])  # (n, B)
    a2 = box[:, 2] + t[:, None] * (box[:, 3] - box[:, 2])  # (n, B)
    B = len(box)
    z1 = a1[:, None, :].expand(n, n, B)
    z2 = a2[None, :, :].expand(n, n, B)
    return torch.stack([z1, z2], -1).reshape(n * n, B, 2)


def log_cell_area(box: torch.Tensor, n: int) -> torch.Tensor:
    """(B,) log of one cell's area."""
    return torch.log((box[:, 1] - box[:, 0]) / n) + torch.log((box[:, 3] - box[:, 2]) / n)


def _evaluate(model, x: torch.Tensor, z: torch.Tensor, rows: int):
    """log p(x, z) and log q(z|x) at z (G, B, 2) or (G, 1, 2) (the same points for every
    image; float64 on the CPU), in passes of about ``rows`` decoder rows: (G, B) float64
    on the CPU each."""
    dtype = next(model.parameters()).dtype
    step = max(1, rows // len(x))
    lj, lq = [], []
    for i in range(0, len(z), step):
        # cast on the CPU, then move: some devices (MPS) have no float64
        zc = z[i:i + step].to(dtype).to(x.device).expand(-1, len(x), -1)  # (g, B, 2)
        lj.append(log_joint(model, x, zc).cpu().double())
        lq.append(model.log_q(x, zc).cpu().double())
    return torch.cat(lj, 0), torch.cat(lq, 0)


def _edge_cells(n: int) -> torch.Tensor:
    """(n*n,) bool: the outer ring of cells of an n x n grid (row-major)."""
    i, j = torch.arange(n).repeat_interleave(n), torch.arange(n).repeat(n)
    return (i == 0) | (i == n - 1) | (j == 0) | (j == n - 1)


def _moments(w: torch.Tensor, z: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Mean and standard deviation per axis (B, 2) of cell weights w (G, B) at z (G, B, 2)."""
    mean = (w[..., None] * z).sum(0)
    return mean, (w[..., None] * (z - mean) ** 2).sum(0).sqrt()


def _summarise(lj: torch.Tensor, lq: torch.Tensor, z: torch.Tensor, log_area: torch.Tensor,
               n: int) -> dict:
    """Quadrature figures per image from the grid's log p(x, z) and log q (G, B) at z (G, B, 2)."""
    log_px = torch.logsumexp(lj, 0) + log_area  # (B,)
    w = torch.softmax(lq, 0)  # q's weights on the grid, normalised
    elbo = (w * (lj - lq)).sum(0)
    post_mean, post_std = _moments(torch.softmax(lj, 0), z)
    q_mean, q_std = _moments(w, z)
    edge = _edge_cells(n)
    edge_mass = torch.maximum(torch.exp(torch.logsumexp(lj[edge], 0) - torch.logsumexp(lj, 0)),
                              w[edge].sum(0))
    return {"log_px": log_px, "elbo": elbo, "q_mass": torch.exp(torch.logsumexp(lq, 0) + log_area),
            "edge_mass": edge_mass, "post_mean": post_mean, "post_std": post_std, "q_mean": q_mean,
            "q_std": q_std}


def _search(model, x: torch.Tensor, spec: GridSpec):
    """Per image: the box to refine (B, 4), the search box used (B, 4), and whether the mass
    still reached the search box's edge (B,)."""
    B, n = len(x), spec.n_search
    box_out = torch.empty(B, 4, dtype=torch.float64)
    search_out = torch.empty(B, 4, dtype=torch.float64)
    at_edge = torch.zeros(B, dtype=torch.bool)
    edge = _edge_cells(n)
    todo, r = torch.arange(B), spec.radius
    for grow in range(spec.max_grow + 1):
        box = torch.tensor([[-r, r, -r, r]], dtype=torch.float64)
        z = cell_centres(box, n)  # (G, 1, 2), shared by the images
        lj, lq = _evaluate(model, x[todo.to(x.device)], z, spec.rows)
        keep = (lj > lj.amax(0) - spec.tau) | (lq > lq.amax(0) - spec.tau)  # (G, b)
        pts = z[:, 0, :]  # (G, 2)
        lo = torch.where(keep[..., None], pts[:, None], math.inf).amin(0)  # (b, 2)
        hi = torch.where(keep[..., None], pts[:, None], -math.inf).amax(0)
        pad = 2 * (2 * r / n)
        box_out[todo] = torch.stack([lo[:, 0] - pad, hi[:, 0] + pad, lo[:, 1] - pad, hi[:, 1] + pad], -1)
        search_out[todo] = box[0]
        touches = (keep & edge[:, None]).any(0)
        at_edge[todo] = touches
        if not touches.any() or grow == spec.max_grow:
            break
        todo, r = todo[touches], r * 1.5
    return box_out, search_out, at_edge


@dataclass
class Quadrature:
    """Per-image quadrature figures (B,) in nats, float64, and the grids that gave them."""
    log_px: torch.Tensor  # log p(x) by quadrature
    elbo: torch.Tensor  # E_q[log p(x, z) - log q(z|x)] by quadrature over q
    q_mass: torch.Tensor  # integral of q over the grid (1 when the box holds q)
    edge_mass: torch.Tensor  # largest share of p(z|x) or q in the grid's outer ring of cells
    post_mean: torch.Tensor  # (B, 2) mean of p(z|x) on the grid
    post_std: torch.Tensor  # (B, 2) its standard deviation along each axis
    q_mean: torch.Tensor  # (B, 2) mean of q(z|x) on the grid (a flow posterior's too)
    q_std: torch.Tensor  # (B, 2)
    n: torch.Tensor  # cells a side of the grid used (int64)
    box: torch.Tensor  # (B, 4) [lo1, hi1, lo2, hi2] of that grid
    search_box: torch.Tensor  # (B, 4) the search box that located the mass
    change: torch.Tensor  # |log p(x) at n - at n/2|: the step-halving criterion
    elbo_change: torch.Tensor  # the same for the ELBO
    converged: torch.Tensor  # bool: both changes < tol, |q_mass - 1| < q_tol, edge_mass <
    #                          EDGE_MASS_MAX and the mass located inside the search box
    spec: GridSpec = field(default_factory=GridSpec)
    seconds: float = 0.0

    @property
    def kl(self) -> torch.Tensor:
        """KL(q(z|x) || p(z|x)) = log p(x) - ELBO, per image."""
        return self.log_px - self.elbo

    @property
    def separation(self) -> torch.Tensor:
        """How far the mean of p(z|x) lies from q's mean, in q's standard deviations (B,)."""
        return ((self.post_mean - self.q_mean) / self.q_std).norm(dim=-1)

    @property
    def step(self) -> torch.Tensor:
        """(B, 2) the grid step along each axis."""
        return torch.stack([self.box[:, 1] - self.box[:, 0], self.box[:, 3] - self.box[:, 2]], -1) \
            / self.n[:, None]

    def __len__(self) -> int:
        return len(self.log_px)

    @staticmethod
    def cat(parts: list["Quadrature"]) -> "Quadrature":
        names = ("log_px", "elbo", "q_mass", "edge_mass", "post_mean", "post_std", "q_mean", "q_std",
                 "n", "box", "search_box", "change", "elbo_change", "converged")
        return Quadrature(**{k: torch.cat([getattr(p, k) for p in parts]) for k in names},
                          spec=parts[0].spec, seconds=sum(p.seconds for p in parts))

    def summary(self) -> dict:
        """Means over the images (nats), their standard errors, and how the grids came out."""
        m = len(self)
        sem = (lambda t: float(t.std() / math.sqrt(m)) if m > 1 else 0.0)
        sides = torch.unique(self.n, return_counts=True)
        return {
            "n_images": m, "nll_exact_nats": float(-self.log_px.mean()), "nll_exact_sem": sem(self.log_px),
            "elbo_exact": float(self.elbo.mean()), "kl_q_posterior": float(self.kl.mean()),
            "kl_q_posterior_sem": sem(self.kl), "max_change": float(self.change.max()),
            "max_elbo_change": float(self.elbo_change.max()), "max_edge_mass": float(self.edge_mass.max()),
            "share_separated_5sd": float((self.separation > 5).double().mean()),
            "converged": int(self.converged.sum()), "tol": self.spec.tol,
            "grid_sides": {int(a): int(c) for a, c in zip(*sides)},
            "step_range": [float(self.step.min()), float(self.step.max())],
            "search_radius_max": float(self.search_box[:, 1].max()),
            "seconds": round(self.seconds, 2),
        }


FIGURES = ("log_px", "elbo", "q_mass", "edge_mass")
MOMENTS = ("post_mean", "post_std", "q_mean", "q_std")


def _refine(model, x: torch.Tensor, boxes: torch.Tensor, spec: GridSpec, *, keep_grid: bool = False):
    """Step halving from n_start until both changes < tol (or n_max): per-image figures,
    and with ``keep_grid`` (one image) the final grid's log p(x, z) and log q (G, 1)."""
    B = len(x)
    out = {k: torch.zeros(B, dtype=torch.float64) for k in FIGURES}
    out.update({k: torch.zeros(B, 2, dtype=torch.float64) for k in MOMENTS})
    out["n"] = torch.full((B,), spec.n_start, dtype=torch.int64)
    change = torch.full((B,), math.inf, dtype=torch.float64)
    elbo_change = torch.full((B,), math.inf, dtype=torch.float64)
    active, n, grid, history = torch.arange(B), spec.n_start, None, []
    while True:
        xb, bb = x[active.to(x.device)], boxes[active]
        z = cell_centres(bb, n)  # (G, b, 2)
        lj, lq = _evaluate(model, xb, z, spec.rows)
        s = _summarise(lj, lq, z, log_cell_area(bb, n), n)
        if n > spec.n_start:
            change[active] = (s["log_px"] - out["log_px"][active]).abs()
            elbo_change[active] = (s["elbo"] - out["elbo"][active]).abs()
        for k in FIGURES + MOMENTS:
            out[k][active] = s[k]
        out["n"][active] = n
        if keep_grid:
            grid = (lj, lq)
            history.append({"n": n, "log_px": float(s["log_px"][0]), "elbo": float(s["elbo"][0])})
        settled = ((change[active] < spec.tol) & (elbo_change[active] < spec.tol)
                   & ((out["q_mass"][active] - 1).abs() < spec.q_tol))
        active = active[~settled]
        if not len(active) or 2 * n > spec.n_max:
            break
        n *= 2
    return out, change, elbo_change, grid, history


EDGE_MASS_MAX = 1e-6  # share of p(z|x) or q allowed in the final grid's outer ring


def _converged(out: dict, change, elbo_change, at_edge, spec: GridSpec) -> torch.Tensor:
    return ((change < spec.tol) & (elbo_change < spec.tol) & ((out["q_mass"] - 1).abs() < spec.q_tol)
            & (out["edge_mass"] < EDGE_MASS_MAX) & ~at_edge)


@torch.inference_mode()
def quadrature(model: GenerativeModel, x: torch.Tensor, spec: GridSpec | None = None) -> Quadrature:
    """log p(x), the ELBO and KL(q || p(z|x)) by quadrature for a batch of model inputs
    x (B, C, H, W) (preprocessed as the model expects: images.model_inputs)."""
    check_model(model)
    spec = spec or GridSpec()
    t0 = time.perf_counter()
    model.eval()
    boxes, search, at_edge = _search(model, x, spec)
    out, change, elbo_change, _, _ = _refine(model, x, boxes, spec)
    converged = _converged(out, change, elbo_change, at_edge, spec)
    return Quadrature(box=boxes, search_box=search, change=change, elbo_change=elbo_change,
                      converged=converged, spec=spec, seconds=time.perf_counter() - t0, **out)


# -- one image: the posterior beside q ------------------------------------------------------
@dataclass
class PosteriorView:
    """One image's true posterior and q(z|x) on one grid, and the numbers that tie them.

    log_post[i, j] and log_q[i, j] are densities at (z1[i], z2[j]); exp(log_post) sums to
    1 over the grid times ``cell_area``."""
    z1: torch.Tensor  # (n,) cell centres along z_1
    z2: torch.Tensor  # (n,) along z_2
    log_post: torch.Tensor  # (n, n) log p(z|x)
    log_q: torch.Tensor  # (n, n) log q(z|x)
    cell_area: float
    log_px: float  # quadrature
    elbo: float  # quadrature over q
    elbo_mc: float  # the model's own estimator, mean of elbo_samples draws
    elbo_mc_sem: float
    elbo_samples: int
    iw: dict[int, float]  # k -> importance-weighted estimate of log p(x)
    code: torch.Tensor  # (2,) model.encode(x)
    grid: Quadrature  # the grid (box, n, changes) as for a batch
    history: list[dict]  # the refinement: n, log p(x), ELBO at each level

    @property
    def kl(self) -> float:
        """KL(q(z|x) || p(z|x)) = log p(x) - ELBO."""
        return self.log_px - self.elbo

    @property
    def kl_direct(self) -> float:
        """The quadrature of E_q[log q(z|x) - log p(z|x)] on the grid (q's weights normalised)."""
        w = torch.softmax(self.log_q.flatten(), 0)
        return float((w * (self.log_q - self.log_post).flatten()).sum())


@torch.inference_mode()
def posterior_view(model: GenerativeModel, x: torch.Tensor, *, spec: GridSpec | None = None,
                   ks: tuple[int, ...] = IW_KS, elbo_samples: int = 10000, seed: int = 0) -> PosteriorView:
    """The true posterior p(z|x), q(z|x) and log p(x), ELBO, KL, IW(k) for one model input
    x (C, H, W) or (1, C, H, W). Random draws (IW, Monte Carlo ELBO) are seeded."""
    check_model(model)
    x = x if x.dim() == 4 else x[None]
    if len(x) != 1:
        raise ValueError(f"posterior_view takes one image; got a batch of {len(x)} (use quadrature)")
    spec = spec or GridSpec()
    t0 = time.perf_counter()
    model.eval()
    boxes, search, at_edge = _search(model, x, spec)
    out, change, elbo_change, (lj, lq), history = _refine(model, x, boxes, spec, keep_grid=True)
    converged = _converged(out, change, elbo_change, at_edge, spec)
    grid = Quadrature(box=boxes, search_box=search, change=change, elbo_change=elbo_change,
                      converged=converged, spec=spec, seconds=time.perf_counter() - t0, **out)
    n = int(out["n"][0])
    z = cell_centres(boxes, n)[:, 0]  # (G, 2)
    log_px = float(out["log_px"][0])
    torch.manual_seed(seed)
    terms = _elbo_samples(model, x, elbo_samples)[:, 0]
    iw = {}
    for k in ks:
        torch.manual_seed(seed + k)
        iw[int(k)] = float(_iw_estimate(model, x, int(k))[0])
    return PosteriorView(
        z1=z.view(n, n, 2)[:, 0, 0].clone(), z2=z.view(n, n, 2)[0, :, 1].clone(),
        log_post=(lj[:, 0] - log_px).view(n, n), log_q=lq[:, 0].view(n, n),
        cell_area=float(log_cell_area(boxes, n).exp()), log_px=log_px, elbo=float(out["elbo"][0]),
        elbo_mc=float(terms.mean()), elbo_mc_sem=float(terms.std() / math.sqrt(len(terms))),
        elbo_samples=elbo_samples, iw=iw, code=model.encode(x)[0].cpu(), grid=grid, history=history)


# -- a split, and what eval.json gets -------------------------------------------------------
def exact_log_px(model: GenerativeModel, data: ImageData, *, seed: int = 0, batch_size: int = 16,
                 limit: int | None = None, spec: GridSpec | None = None,
                 progress: Callable[[int], object] | None = None) -> Quadrature:
    """Per-image quadrature log p(x) (and ELBO, KL(q || p(z|x))) over a split, on the
    images eval scores: the split binarised in order with a generator seeded ``seed``
    (images.model_inputs; Bernoulli and uniform draws from a CPU generator do not depend
    on how metrics.log_prob_split cuts the split into batches). ``progress(n)`` is
    called per batch. Cost: 9k-70k decoder rows an image (search 64^2, then 32^2, 64^2,
    ... as needed); shipped vae-2d-mnist, 200 test images: 17 s on one idle CPU core. The
    batch size bounds memory, not speed: a batch's grids at n = 512 hold 16 x 512^2 x 4
    float64 (130 MB)."""
    check_model(model)
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1 (got {batch_size})")
    x = model_inputs(model, data.x.cpu(), seed=seed).to(model.device)
    if limit is not None:
        x = x[:limit]
    if not len(x):
        raise ValueError(f"no images to integrate ({data.dataset} {data.split}, limit={limit})")
    parts = []
    for i in range(0, len(x), batch_size):
        parts.append(quadrature(model, x[i:i + batch_size], spec))
        if progress:
            progress(len(parts[-1]))
    return Quadrature.cat(parts)


def exact_eval_entries(q: Quadrature) -> dict:
    """The keys eval.json gets beside the importance-weighted estimate."""
    s = q.summary()
    return {"nll_exact_nats": s["nll_exact_nats"], "nll_exact_sem": s["nll_exact_sem"],
            "nll_exact_method": (f"quadrature over z on a per-image grid (midpoint rule): sides "
                                 f"{s['grid_sides']}, steps {s['step_range'][0]:.4g}-"
                                 f"{s['step_range'][1]:.4g}; halving the step changes log p(x) by "
                                 f"at most {s['max_change']:.2g} nats (tolerance {s['tol']})"),
            "nll_exact_converged": s["converged"], "kl_q_posterior": s["kl_q_posterior"],
            "nll_exact_seconds": s["seconds"]}


def iw_convergence(log_px_k: torch.Tensor, log_px_tenth: torch.Tensor, k: int, *,
                   threshold: float = IW_GAP_WARN) -> dict:
    """The estimate at k/10 beside the one at k (per-image log p(x) (N,) each), with a
    warning when their means still differ by more than ``threshold`` nats."""
    if k < 10:
        raise ValueError(f"the check compares k with k/10, so k must be >= 10 (got {k})")
    nll_k, nll_t = float(-log_px_k.double().mean()), float(-log_px_tenth.double().mean())
    gap = nll_t - nll_k
    warning = None
    if abs(gap) > threshold:
        warning = (f"the importance-weighted estimate has not settled: {nll_t:.2f} nats at "
                   f"k={k // 10}, {nll_k:.2f} at k={k} (a {abs(gap):.2f}-nat change, more than "
                   f"{threshold}); a larger k would lower it further")
    return {"k_tenth": k // 10, "nll_nats_k_tenth": nll_t, "nll_gap_k_tenth": gap,
            "nll_warning": warning}


@torch.inference_mode()
def iw_repeats(model: GenerativeModel, x: torch.Tensor, ks: tuple[int, ...] = IW_KS, *, repeats: int = 5, seed: int = 0) -> dict[int, list[float]]:
    """The importance-weighted estimate of log p(x) for one model input x (1, C, H, W),
    ``repeats`` seeded draws at each k: how far one estimate scatters, and where their
    mean climbs as k grows."""
    check_model(model)
    x = x if x.dim() == 4 else x[None]
    model.eval()
    out = {}
    for k in ks:
        draws = []
        for r in range(repeats):
            torch.manual_seed(seed + 7919 * r + int(k))
            draws.append(float(_iw_estimate(model, x, int(k))[0]))
        out[int(k)] = draws
    return out
