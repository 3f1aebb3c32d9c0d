"""Looking inside latent models: what a model can do, its latent reference scale,
projections (PCA, UMAP), manifold grids through the inverse normal CDF, traversals,
interpolations (linear, spherical, through the normal CDF), Gaussian mixtures on codes
and their 2-sigma ellipses, image grids and GIFs.

Pure functions of tensors and arrays (no streamlit): the app's Latent explorer, Clusters
and Interpolation pages only lay them out. Models are used through the contract alone:
what their ``caps`` declare (:class:`genlab.models.base.Capabilities`), then ``encode``,
``decode`` and ``sample_prior``.

References for the figures:
> D. P. Kingma, M. Welling. Auto-Encoding Variational Bayes. ICLR 2014 (Fig. 4: the 2-D
> manifold, a uniform grid on the unit square through the inverse Gaussian CDF).
> T. White. Sampling Generative Networks. arXiv:1609.04468, 2016 (spherical interpolation).
"""
from __future__ import annotations

import hashlib
import io
import os
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from threadpoolctl import threadpool_limits
from torch.distributions import Normal

from ..errors import first_line
from ..models.base import GenerativeModel
from ..models.mixture import Mixture
from ..runs import store
from .images import grid_image, model_inputs, test_images

STD_NORMAL = Normal(0.0, 1.0)
PROJECTIONS = ("umap", "pca")
INTERPOLATIONS = ("linear", "spherical", "normal-cdf")
CDF_EPS = 1e-6  # keeps Phi(z) inside (0, 1) so that Phi^-1 stays finite


# -- what a model can do (a model class or an instance): its caps, read directly --------------
def has_prior(model: GenerativeModel) -> bool:
    """Random latents can be drawn: a prior (VAEs, flows, GANs) or a mixture (ae-gmm)."""
    return model.caps.prior is not None


@torch.no_grad()
def prior_latents(model: GenerativeModel, n: int, *, seed: int = 0) -> torch.Tensor:
    """n latents (n, d) on the CPU from the model's prior, seeded; the global RNG is left
    as it was."""
    if not has_prior(model):
        raise ValueError(f"{type(model).__name__} has no latent prior to draw from")
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        z = model.sample_prior(n)
    return z.detach().float().cpu()


def standard_normal_prior(model: GenerativeModel) -> bool:
    """True when the model declares p(z) = N(0, I)."""
    return model.prior_family == "normal"


@dataclass(frozen=True)
class LatentRef:
    """The scale of a latent space, per dimension (d,): where sliders and grids go.
    ``bounded``: the latents are probabilities in [0, 1] (binary units), so grids are
    uniform on [lo, hi] instead of Gaussian quantiles."""
    center: torch.Tensor
    scale: torch.Tensor
    lo: torch.Tensor
    hi: torch.Tensor
    standard: bool
    bounded: bool

    @property
    def dim(self) -> int:
        return self.center.shape[0]


def latent_reference(model: GenerativeModel, *, n: int = 4096, span: float = 3.0) -> LatentRef:
    """N(0, I) priors: centre 0, scale 1; Bernoulli priors: [0, 1]; others: the mean and
    standard deviation of n prior draws. Sliders span centre +- ``span`` scales."""
    z = prior_latents(model, n)  # (n, d)
    d = z.shape[1]
    standard = standard_normal_prior(model)
    if standard:
        c, s = torch.zeros(d), torch.ones(d)
    elif model.prior_family == "bernoulli":
        return LatentRef(torch.full((d,), 0.5), torch.full((d,), 0.5), torch.zeros(d),
                         torch.ones(d), standard=False, bounded=True)
    else:
        c, s = z.mean(0), z.std(0).clamp_min(1e-6)
    return LatentRef(c, s, c - span * s, c + span * s, standard=standard, bounded=False)


# -- grids ---------------------------------------------------------------------------------
def unit_grid(n: int) -> torch.Tensor:
    """n equally spaced points in (0, 1): the cell midpoints (i + 1/2) / n, (n,)."""
    return (torch.arange(n, dtype=torch.float64) + 0.5) / n


def normal_grid(n: int) -> torch.Tensor:
    """The Kingma & Welling manifold grid: a uniform n x n grid on the unit square through
    the inverse normal CDF, as (n*n, 2) points (x, y), row-major from the top row (largest
    y) down, so that row r, column c of an image grid sits at (x_c, y_{n-1-r})."""
    q = STD_NORMAL.icdf(unit_grid(n).float())  # (n,) increasing
    ys, xs = torch.meshgrid(q.flip(0), q, indexing="ij")  # (n, n) each
    return torch.stack([xs.reshape(-1), ys.reshape(-1)], dim=1)


def manifold_latents(ref: LatentRef, dims: tuple[int, int], n: int,
                     base: torch.Tensor | None = None) -> torch.Tensor:
    """(n*n, d) latents: ``base`` (default: the centre) with dims (i, j) replaced by the
    manifold grid, z_i = base_i + scale_i * Phi^-1(u) (uniform u for bounded latents)."""
    i, j = dims
    z = (ref.center if base is None else base).float().repeat(n * n, 1)  # (n*n, d)
    if ref.bounded:
        u = unit_grid(n).float()
        ys, xs = torch.meshgrid(u.flip(0), u, indexing="ij")
        g = torch.stack([xs.reshape(-1), ys.reshape(-1)], dim=1)  # (n*n, 2)
        for k, dim in enumerate(dims):
            z[:, dim] = ref.lo[dim] + g[:, k] * (ref.hi[dim] - ref.lo[dim])
        return z
    g = normal_grid(n)  # (n*n, 2)
    z[:, i] = z[:, i] + ref.scale[i] * g[:, 0]
    z[:, j] = z[:, j] + ref.scale[j] * g[:, 1]
    return z


def traversal_latents(ref: LatentRef, base: torch.Tensor, dims: list[int], steps: int, *,
                      span: float = 2.5) -> torch.Tensor:
    """(len(dims) * steps, d): row r varies dimension dims[r] alone, from base - span*scale
    to base + span*scale (from lo to hi for bounded latents); the other dims stay at base."""
    t = torch.linspace(-span, span, steps)  # (steps,)
    rows = []
    for j in dims:
        z = base.float().repeat(steps, 1)  # (steps, d)
        z[:, j] = torch.linspace(float(ref.lo[j]), float(ref.hi[j]), steps) if ref.bounded \
            else base[j] + ref.scale[j] * t
        rows.append(z)
    return torch.cat(rows)


def variance_order(codes: torch.Tensor | np.ndarray) -> list[int]:
    """Latent dimensions by decreasing variance of the codes (N, d)."""
    var = torch.as_tensor(np.asarray(codes)).double().var(0)  # (d,)
    return torch.argsort(var, descending=True, stable=True).tolist()


# -- interpolation ---------------------------------------------------------------------
def lerp(z0: torch.Tensor, z1: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    """(d,), (d,), (n,) -> (n, d): (1 - t) z0 + t z1."""
    t = t[:, None].to(z0.dtype)
    return (1 - t) * z0 + t * z1


def slerp(z0: torch.Tensor, z1: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    """Spherical interpolation (White 2016), (n, d): along the great circle between the
    directions of z0 and z1, sin((1-t) w) / sin w z0 + sin(t w) / sin w z1, w the angle
    between them; linear when they are (anti)parallel within 1e-6."""
    a, b = z0.double(), z1.double()
    cos = (a @ b / (a.norm() * b.norm()).clamp_min(1e-30)).clamp(-1, 1)
    w = torch.arccos(cos)
    if torch.sin(w) < 1e-6:
        return lerp(z0, z1, t)
    t = t[:, None].double()
    out = (torch.sin((1 - t) * w) * a + torch.sin(t * w) * b) / torch.sin(w)
    return out.to(z0.dtype)


def cdf_lerp(z0: torch.Tensor, z1: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    """Equidistant points between Phi(z0) and Phi(z1) in the unit cube, mapped back through
    the inverse normal CDF Phi^-1, (n, d): equal steps of probability mass in each
    coordinate. Not a path that keeps |z| typical: between two independent N(0, I) draws
    the midpoint's coordinates have variance about 0.36 (the straight line's: 0.5), so it
    dips further towards the origin than the line does; slerp keeps |z| nearly constant."""
    n01 = Normal(torch.tensor(0.0, dtype=torch.float64), torch.tensor(1.0, dtype=torch.float64))
    u = lerp(n01.cdf(z0.double()), n01.cdf(z1.double()), t)  # (n, d)
    return n01.icdf(u.clamp(CDF_EPS, 1 - CDF_EPS)).to(z0.dtype)


def interpolate(z0: torch.Tensor, z1: torch.Tensor, n: int, method: str = "linear") -> torch.Tensor:
    """n latents (n, d) from z0 to z1 (both included) by one of INTERPOLATIONS."""
    fn = {"linear": lerp, "spherical": slerp, "normal-cdf": cdf_lerp}.get(method)
    if fn is None:
        raise ValueError(f"unknown interpolation {method!r}; choose one of {', '.join(INTERPOLATIONS)}")
    return fn(z0, z1, torch.linspace(0, 1, n))


# -- projections -----------------------------------------------------------------------
def project(codes: np.ndarray, method: str = "pca", *, seed: int = 0) -> np.ndarray:
    """Codes (N, d) -> 2-D points (N, 2): the codes themselves for d <= 2 (a zero column
    added for d = 1), else their coordinates along the first two robust principal
    directions (:func:`principal_axes`: a few outlying codes do not turn the axes towards
    themselves) or umap-learn's UMAP (seeded)."""
    x = np.asarray(codes, dtype=np.float32)
    if x.shape[1] <= 2:
        return np.pad(x, ((0, 0), (0, 2 - x.shape[1])))
    if method == "pca":
        axes = principal_axes(x, 2)
        return ((torch.from_numpy(x) - axes.mean) @ axes.directions.T).numpy().astype(np.float32)
    if method == "umap":
        import umap
        reducer = umap.UMAP(n_components=2, n_neighbors=min(15, len(x) - 1), random_state=seed)
        return reducer.fit_transform(x).astype(np.float32)
    raise ValueError(f"unknown projection {method!r}; choose one of {', '.join(PROJECTIONS)}")


def pca_basis(codes: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(mean (d,), components (2, d)) of scikit-learn's PCA; identity for d <= 2, so that
    points map as (z - mean) @ components.T in both cases."""
    x = np.asarray(codes, dtype=np.float64)
    d = x.shape[1]
    if d <= 2:
        return np.zeros(d), np.eye(2, d)
    from sklearn.decomposition import PCA
    with threadpool_limits(1):
        p = PCA(2).fit(x)
    return p.mean_, p.components_


# -- a few of many selected codes --------------------------------------------------------
def spread_sample(picked: list[int], labels: np.ndarray | list, k: int, *, seed: int = 0) -> list[int]:
    """At most k of the selected codes' indices ``picked``, spread over their classes
    (``labels`` of every code): all of them, in the selection's order, when there are at
    most k; else each class in the selection gets a share of k in proportion to how many
    of it were picked (one at least while k allows, then the largest remainders), its
    members drawn at random (seeded), grouped by class. A box or a lasso selects class by
    class (one chart series each), so the first k would all be of one class."""
    picked = [int(i) for i in picked]
    if k < 1:
        raise ValueError(f"k must be at least 1 (got {k})")
    if len(picked) <= k:
        return picked
    labels = np.asarray(labels)
    lab = labels[picked]
    classes, counts = np.unique(lab, return_counts=True)
    alloc = np.zeros(len(classes), dtype=int)
    if len(classes) >= k:  # more classes than places: one each for the k most picked
        alloc[np.argsort(-counts, kind="stable")[:k]] = 1
    else:
        alloc += 1
        share = (counts - 1) / (counts - 1).sum() * (k - len(classes))
        alloc += np.floor(share).astype(int)
        left = k - alloc.sum()
        alloc[np.argsort(-(share - np.floor(share)), kind="stable")[:left]] += 1
    rng = np.random.default_rng(seed)
    out = []
    for c, a in zip(classes, alloc):
        members = [i for i, l in zip(picked, lab) if l == c]  # in the selection's order
        out += [members[j] for j in sorted(rng.choice(len(members), int(a), replace=False))]
    return out


# -- Gaussian mixtures on codes ------------------------------------------------------------
def model_mixture(model: GenerativeModel) -> Mixture | None:
    """The mixture a model carries (ae-gmm, ``caps.mixture``), or None."""
    return model.gmm.as_mixture() if model.caps.mixture else None


def ellipse(mean: np.ndarray, cov: np.ndarray, n_std: float = 2.0, n: int = 73) -> np.ndarray:
    """(n, 2) points of the n_std-sigma contour of N(mean, cov) in 2-D, closed (the last
    point repeats the first): mean + n_std * V sqrt(L) (cos t, sin t), cov = V L V^T."""
    vals, vecs = np.linalg.eigh(np.asarray(cov, dtype=np.float64))
    t = np.linspace(0, 2 * np.pi, n)
    circle = np.stack([np.cos(t), np.sin(t)])  # (2, n)
    return (np.asarray(mean)[:, None] + n_std * vecs @ (np.sqrt(np.clip(vals, 0, None))[:, None] * circle)).T


def component_latents(mix: Mixture, k: int, n: int, *, seed: int = 0) -> torch.Tensor:
    """n draws (n, d) from component k alone, N(mu_k, Sigma_k), seeded."""
    g = torch.Generator().manual_seed(seed)
    mean = torch.as_tensor(mix.means[k], dtype=torch.float64)
    tril = torch.linalg.cholesky(torch.as_tensor(mix.covariances[k], dtype=torch.float64)
                                 + 1e-9 * torch.eye(len(mean), dtype=torch.float64))
    eps = torch.randn(n, len(mean), generator=g, dtype=torch.float64)  # (n, d)
    return (mean + eps @ tril.T).float()


# -- images ------------------------------------------------------------------------------
@torch.no_grad()
def encode_images(model: GenerativeModel, x: torch.Tensor, *, batch_size: int = 500, seed: int = 0) -> torch.Tensor:
    """Codes (N, d) on the CPU of uint8 images (N, C, H, W)."""
    dev = model.device
    inputs = model_inputs(model, x, seed=seed)
    return torch.cat([model.encode(b.to(dev)).float().cpu() for b in inputs.split(batch_size)])


@torch.no_grad()
def decode_latents(model: GenerativeModel, z: torch.Tensor, *, batch_size: int = 500) -> torch.Tensor:
    """Images (n, C, H, W) in [0, 1] on the CPU from latents (n, d)."""
    dev, dtype = model.device, next(model.parameters()).dtype
    return torch.cat([model.decode(b.to(dev, dtype)).float().clamp(0, 1).cpu()
                      for b in z.split(batch_size)])


# -- class-conditional models (caps.conditional) --------------------------------------------
ANALOGY_IMAGES = 8  # test images the analogy encodes


def check_conditional(model: GenerativeModel, what: str) -> int:
    """The model's number of classes K, or a one-line ValueError when it takes no labels."""
    if not model.caps.conditional:
        raise ValueError(f"{type(model).__name__} is not class-conditional: {what} needs a "
                         "model that takes class labels (cvae, realnvp-cond, nice-cond, cgan)")
    return int(model.num_classes)


def class_names(model: GenerativeModel, names: tuple[str, ...] | list[str] | None) -> list[str]:
    """The K class names of a conditional model: the dataset's when they match K, else
    the labels' numbers."""
    K = check_conditional(model, "class names")
    return list(names) if names is not None and len(names) == K else [str(c) for c in range(K)]


@torch.no_grad()
def class_grid(model: GenerativeModel, n_per_class: int, temperature: float = 1.0, *,
               seed: int = 0) -> torch.Tensor:
    """Images (K * n_per_class, C, H, W) in [0, 1] on the CPU, row c (n_per_class images)
    of class c: ``seeded_sample(n_per_class, temperature, seed=seed, y=c)`` for each c, so
    every row draws the same random numbers (the same latents, or noise for a flow) and
    down a column only the label changes."""
    K = check_conditional(model, "a grid of classes")
    if n_per_class < 1:
        raise ValueError(f"n_per_class must be at least 1 (got {n_per_class})")
    rows = [model.seeded_sample(n_per_class, temperature, seed=seed, y=c).float().clamp(0, 1).cpu()
            for c in range(K)]
    return torch.cat(rows)


def can_analogise(model: GenerativeModel) -> bool:
    """A code that leaves the class to the label: a class-conditional model with an
    encoder and a decoder that is not a bijection (the CVAE). A flow's code is the image
    under an invertible map (its class included), so there is no style-only code."""
    c = model.caps
    return c.conditional and c.encode and c.decode and not c.bijective


@torch.no_grad()
def analogy(model: GenerativeModel, x: torch.Tensor, y: torch.Tensor, *,
            seed: int = 0) -> torch.Tensor:
    """The classic analogy of a conditional VAE (as in Kingma et al. 2014, model M2;
    Sohn et al. 2015): uint8 images x (n, C, H, W) encoded with their own labels y (n,), z_i the mean of
    q(z|x_i, y_i), then each code decoded with every label. Images (n * (1 + K), C, H, W)
    in [0, 1] on the CPU, row-major, K + 1 a row: row i is x_i as the model reads it
    (:func:`model_inputs`, seeded) and then decode(z_i, c) for c = 0..K-1 (style kept,
    class changed)."""
    K = check_conditional(model, "the analogy")
    if not can_analogise(model):
        raise ValueError(f"{type(model).__name__} has no code that leaves the class to the "
                         "label (a flow's code is the image itself): the analogy needs a "
                         "conditional encoder-decoder such as the cvae")
    y = torch.as_tensor(y)
    if y.shape != (len(x),):
        raise ValueError(f"labels of shape {tuple(y.shape)} for {len(x)} images: give one "
                         "class label per image, shape (n,)")
    dev, dtype = model.device, next(model.parameters()).dtype
    inputs = model_inputs(model, x, seed=seed)  # (n, C, H, W) in [0, 1]
    z = model.encode(inputs.to(dev, dtype), y=y.to(dev))  # (n, d)
    decoded = torch.stack([model.decode(z, y=c).float().clamp(0, 1).cpu() for c in range(K)],
                          dim=1)  # (n, K, C, H, W)
    rows = torch.cat([inputs.float().cpu()[:, None], decoded], dim=1)  # (n, 1 + K, C, H, W)
    return rows.flatten(0, 1)


def gif_bytes(frames: torch.Tensor, *, duration_ms: int = 120, scale: int = 4,
              boomerang: bool = True) -> bytes:
    """An animated GIF (Pillow) of frames (n, C, H, W) in [0, 1], looping forever;
    ``boomerang`` plays back and forth (n + n - 2 frames)."""
    from PIL import Image

    order = list(range(len(frames))) + (list(range(len(frames) - 2, 0, -1)) if boomerang else [])
    images = [Image.fromarray(grid_image(frames[i:i + 1], 1, scale=scale, padding=0)) for i in order]
    buf = io.BytesIO()
    images[0].save(buf, format="GIF", save_all=True, append_images=images[1:],
                   duration=duration_ms, loop=0)
    return buf.getvalue()


# -- principal directions (the flows' slider axes) --------------------------------------
@dataclass(frozen=True)
class PrincipalAxes:
    """The leading principal directions of codes: ``mean`` (d,), unit ``directions``
    (k, d) and the codes' standard deviation along each, ``sd`` (k,). A code z has
    coordinates c = (z - mean) @ directions.T / sd along them (in standard deviations)."""
    mean: torch.Tensor
    directions: torch.Tensor
    sd: torch.Tensor

    @property
    def k(self) -> int:
        return self.directions.shape[0]

    def coords(self, z: torch.Tensor) -> torch.Tensor:
        """(d,) -> (k,): z's coordinates along the directions, in standard deviations."""
        return (z.float() - self.mean) @ self.directions.T / self.sd

    def place(self, base: torch.Tensor, coords: torch.Tensor) -> torch.Tensor:
        """(d,), (..., k) -> (..., d): ``base`` moved so that its coordinates along the
        directions become ``coords``; the rest of it (the part orthogonal to them) kept."""
        delta = (coords.float() - self.coords(base)) * self.sd  # (..., k)
        return base.float() + delta @ self.directions


ROBUST_CLIP = 3.0  # robust standard deviations from the median where a code's coordinate is clipped
IQR_SD = 1.349  # the interquartile range of a normal distribution, in standard deviations


def robust_clip(codes: np.ndarray | torch.Tensor, k: float = ROBUST_CLIP) -> torch.Tensor:
    """Codes (N, d) float64, each dimension clipped to its median +- k robust standard
    deviations, IQR / 1.349 (the standard deviation of a normal distribution): a code far
    out then weighs no more than one at the fence. A dimension whose IQR is 0 (most codes
    equal) is left as it is."""
    x = torch.as_tensor(np.asarray(codes), dtype=torch.float64)
    q1, med, q3 = torch.quantile(x, torch.tensor([0.25, 0.5, 0.75], dtype=torch.float64), dim=0)
    half = k * (q3 - q1) / IQR_SD  # (d,)
    half = torch.where(half > 0, half, torch.full_like(half, torch.inf))
    return torch.maximum(torch.minimum(x, med + half), med - half)


def principal_axes(codes: np.ndarray | torch.Tensor, k: int = 16) -> PrincipalAxes:
    """The k leading principal directions of codes (N, d), robust to a few outlying codes:
    the SVD of the codes clipped per dimension (:func:`robust_clip`) and centred; ``sd`` is
    the clipped codes' standard deviation along each direction, the widest first. Each
    direction's sign makes its largest loading positive (scikit-learn's convention).

    Why clipped: NICE's codes of rarely inked border pixels reach |z| ~ 1,000 for the few
    images that ink them; the plain PCA's first directions point at those codes, and
    moving along them changes the image by a grey level or two."""
    x = robust_clip(codes)
    mean = x.mean(0)
    _, s, vh = torch.linalg.svd(x - mean, full_matrices=False)  # vh (min(N, d), d)
    k = min(k, vh.shape[0])
    vh = vh[:k]
    sign = torch.sign(vh.gather(1, vh.abs().argmax(1, keepdim=True)))  # (k, 1)
    vh = vh * torch.where(sign == 0, torch.ones_like(sign), sign)
    sd = (s[:k] / max(len(x) - 1, 1) ** 0.5).clamp_min(1e-8)
    return PrincipalAxes(mean.float(), vh.float(), sd.float())


def axes_manifold(axes: PrincipalAxes, base: torch.Tensor, n: int,
                  dims: tuple[int, int] = (0, 1)) -> torch.Tensor:
    """(n*n, d): the Kingma & Welling grid over two principal directions (their
    coordinates through the inverse normal CDF, in standard deviations), row-major from
    the top row, the rest of ``base`` kept."""
    c = axes.coords(base).repeat(n * n, 1)  # (n*n, k)
    g = normal_grid(n)  # (n*n, 2)
    c[:, dims[0]], c[:, dims[1]] = g[:, 0], g[:, 1]
    return axes.place(base, c)


def axes_traversals(axes: PrincipalAxes, base: torch.Tensor, dims: list[int], steps: int, *,
                    span: float = 2.5) -> torch.Tensor:
    """(len(dims) * steps, d): row r moves along direction dims[r] alone, from -span to
    +span standard deviations."""
    rows = []
    for j in dims:
        c = axes.coords(base).repeat(steps, 1)  # (steps, k)
        c[:, j] = torch.linspace(-span, span, steps)
        rows.append(axes.place(base, c))
    return torch.cat(rows)


# -- projections stored beside a checkpoint ----------------------------------------------
PROJ_FILE = "projections.npz"
PROJ_N = 5_000  # test images projected (the first ones; the pages show the first n of them)
PROJ_AXES = 16  # principal directions kept


@dataclass(frozen=True)
class Projections:
    """What the Latent explorer draws of a checkpoint's test codes without encoding them:
    2-D points per method ``xy[method]`` (N, 2) of the first N test images, the codes'
    variance per dimension (d,) and their leading principal directions. ``robust``: the
    PCA points and the directions are :func:`principal_axes`' (False for a file written
    before they were, whose PCA a few outlying codes may have turned)."""
    n: int
    xy: dict
    variance: np.ndarray
    axes: PrincipalAxes
    robust: bool = True


def checkpoint_digest(path: str | os.PathLike) -> str:
    """SHA-1 of a checkpoint file: what a stored projection belongs to (a file's time
    does not survive a copy or a clone)."""
    h = hashlib.sha1()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def compute_projections(codes: np.ndarray, methods: tuple[str, ...] = ("pca",), *, k: int = PROJ_AXES) -> Projections:
    """Projections of codes (N, d) by each of ``methods``, their variance and principal axes."""
    x = np.asarray(codes, dtype=np.float32)
    return Projections(len(x), {m: project(x, m) for m in methods}, x.var(0),
                       principal_axes(x, k))


def save_projections(run_dir: str | os.PathLike, proj: Projections, digest: str) -> None:
    """Write ``projections.npz`` beside the checkpoint (atomic): float16 points and
    directions, float32 statistics, the checkpoint's digest; no pickled objects."""
    arrays = {f"xy_{m}": v.astype(np.float16) for m, v in proj.xy.items()}
    arrays |= {"variance": proj.variance.astype(np.float32), "mean": proj.axes.mean.numpy(),
               "directions": proj.axes.directions.numpy().astype(np.float16),
               "sd": proj.axes.sd.numpy(), "digest": np.array(digest), "n": np.array(proj.n),
               "robust": np.array(proj.robust)}
    path = Path(run_dir) / PROJ_FILE
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{PROJ_FILE}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            np.savez_compressed(f, **arrays)
        os.chmod(tmp, 0o644)  # mkstemp's 0600 would hide the file from other users
        os.replace(tmp, path)
    finally:
        Path(tmp).unlink(missing_ok=True)


def load_projections(run_dir: str | os.PathLike, digest: str | None) -> Projections | None:
    """The stored projections of this checkpoint (``digest``), or None when there are
    none, they belong to another checkpoint, or the file cannot be read."""
    path = Path(run_dir) / PROJ_FILE
    if digest is None or not path.exists():
        return None
    try:
        with np.load(path, allow_pickle=False) as f:
            if str(f["digest"]) != digest:
                return None
            xy = {k[3:]: f[k].astype(np.float32) for k in f.files if k.startswith("xy_")}
            d = f["directions"].astype(np.float32)
            axes = PrincipalAxes(torch.from_numpy(f["mean"].astype(np.float32)), torch.from_numpy(d),
                                 torch.from_numpy(f["sd"].astype(np.float32)))
            robust = "robust" in f.files and bool(f["robust"])
            return Projections(int(f["n"]), xy, f["variance"].astype(np.float32), axes, robust)
    except (OSError, ValueError, KeyError):
        return None


def run_projections(run_dir: str | os.PathLike, methods: tuple[str, ...] = ("pca", "umap"), *,
                    n: int = PROJ_N, root: str | os.PathLike | None = None,
                    write: bool = True) -> Projections:
    """Encode the first n test images of a run with its checkpoint, project the codes by
    ``methods`` and (``write``) store the result beside the checkpoint."""
    model, _, rc = store.load_model(run_dir, map_location="cpu")
    if not model.caps.encode:
        raise ValueError(f"{Path(run_dir).name}: a {rc.model} has no encoder, so no codes to project")
    data = test_images(rc.train.dataset, n, root)
    codes = encode_images(model, data.x).numpy()
    proj = compute_projections(codes, methods if codes.shape[1] > 2 else ("pca",))
    if write:
        save_projections(run_dir, proj, checkpoint_digest(Path(run_dir) / store.CHECKPOINT))
    return proj


if __name__ == "__main__":  # python -m genlab.evaluation.explore RUN_DIR...: store the runs' projections
    for arg in sys.argv[1:]:
        t0 = time.perf_counter()
        try:
            p = run_projections(arg)
        except (ValueError, RuntimeError) as e:
            print(f"{arg}: skipped ({first_line(e)})", flush=True)
            continue
        print(f"{arg}: {', '.join(p.xy)} of {p.n} codes in {time.perf_counter() - t0:.0f} s", flush=True)
