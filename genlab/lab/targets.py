"""2-D target densities, each known on a grid and normalised there by quadrature.

Three kinds, one contract (:class:`Target`: ``log_density(x)`` unnormalised and
differentiable, ``sample(n)``):

- the standard toy sets (two moons, rings, 8 Gaussians, pinwheel, two spirals) as Gaussian
  mixtures with many small components along their curves: the density is exact and so is
  the sampler (FFJORD's toy sets, Grathwohl et al. 2019, with isotropic noise);
- Rezende & Mohamed's energies U1-U4 (Table 1 of Variational Inference with Normalizing
  Flows, ICML 2015) and a checkerboard, densities only: sampled from the grid;
- a word or an image whose pixels are the density (:func:`text_target`, :func:`image_target`).

Every density lives on the box [-4, 4]^2 that the paper's figure shows; :class:`Grid`
holds its cell centres, and :func:`grid_density` the density normalised by the midpoint
rule, from which :mod:`genlab.lab.quadrature` gets exact KL, NLL and entropy.
"""
from __future__ import annotations

import functools
import math
import unicodedata
from dataclasses import dataclass
from typing import Callable

import numpy as np
import torch
import torch.nn.functional as F

from ..errors import first_line

BOX = 4.0  # the plane shown and integrated over: [-BOX, BOX]^2
LOG_2PI = math.log(2 * math.pi)


@dataclass(frozen=True)
class Grid:
    """n x n cell centres on [-box, box]^2; ``points`` (n*n, 2) in row-major order with
    y along rows, so ``values.reshape(n, n)[iy, ix]`` is a heatmap's z."""
    n: int = 128
    box: float = BOX

    @property
    def step(self) -> float:
        return 2 * self.box / self.n

    @property
    def cell_area(self) -> float:
        return self.step ** 2

    @property
    def centres(self) -> np.ndarray:
        return -self.box + self.step * (np.arange(self.n) + 0.5)  # (n,)

    def points(self) -> torch.Tensor:
        c = torch.as_tensor(self.centres, dtype=torch.float32)
        yy, xx = torch.meshgrid(c, c, indexing="ij")
        return torch.stack([xx.reshape(-1), yy.reshape(-1)], 1)  # (n*n, 2)


class Target:
    """A density on the plane. ``log_density(x)`` (B, 2) -> (B,) is unnormalised (the grid's
    quadrature normalises it) and differentiable (reverse-KL families fit it);
    ``sample(n, generator)`` draws (n, 2). The default sampler draws grid cells by their
    mass and a uniform point inside each: exact samples of the piecewise-constant density
    the quadrature integrates."""

    name: str = ""
    label: str = ""
    samples_exact = False  # True: sample() draws the continuous density itself

    def log_density(self, x: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def grid_values(self, grid: Grid) -> np.ndarray:
        """The unnormalised density at the grid's cell centres, (n*n,) float64."""
        with torch.no_grad():
            logp = self.log_density(grid.points().double()).double()
        logp = logp - logp.max()
        return torch.exp(logp).numpy()

    def sample(self, n: int, generator: torch.Generator | None = None, grid: Grid | None = None) -> torch.Tensor:
        grid = grid or Grid()
        p = torch.as_tensor(grid_density(self, grid) * grid.cell_area)  # (n*n,)
        cells = torch.multinomial(p, n, replacement=True, generator=generator)
        jitter = (torch.rand(n, 2, generator=generator) - 0.5) * grid.step
        return grid.points()[cells] + jitter


def grid_density(target: Target, grid: Grid) -> np.ndarray:
    """p at the cell centres (n*n,), normalised so that sum(p) * cell_area = 1 (midpoint
    rule); computed once per target and grid, and kept on the target."""
    cache = target.__dict__.setdefault("_grid_cache", {})
    if grid not in cache:
        v = target.grid_values(grid)
        cache[grid] = v / (v.sum() * grid.cell_area)
    return cache[grid]


# -- Gaussian mixtures along curves: the toy sets ----------------------------------------
class MixtureTarget(Target):
    """sum_m w_m N(x; mu_m, std^2 I): exact density and exact sampler."""

    samples_exact = True

    def __init__(self, name: str, label: str, means: np.ndarray, weights: np.ndarray, std: float):
        self.name, self.label = name, label
        self.means = torch.as_tensor(means, dtype=torch.float64)  # (M, 2)
        w = torch.as_tensor(weights, dtype=torch.float64)
        self.log_w = torch.log(w / w.sum())  # (M,)
        self.std = float(std)

    def log_density(self, x: torch.Tensor) -> torch.Tensor:
        """Normalised on the whole plane: log sum_m w_m N(x; mu_m, std^2 I), (B,)."""
        mu, log_w = self.means.to(x.dtype), self.log_w.to(x.dtype)
        d2 = torch.cdist(x, mu) ** 2  # (B, M)
        log_n = -d2 / (2 * self.std ** 2) - LOG_2PI - 2 * math.log(self.std)
        return torch.logsumexp(log_w + log_n, 1)

    def grid_values(self, grid: Grid) -> np.ndarray:
        with torch.no_grad():  # float32 is plenty for the cell values; float64 sums them
            return torch.cat([self.log_density(c).exp() for c in grid.points().split(4096)]).double().numpy()

    def sample(self, n: int, generator: torch.Generator | None = None, grid: Grid | None = None) -> torch.Tensor:
        idx = torch.multinomial(self.log_w.exp(), n, replacement=True, generator=generator)
        return (self.means[idx] + self.std * torch.randn(n, 2, generator=generator, dtype=torch.float64)).float()


def two_moons(nodes: int = 120) -> MixtureTarget:
    """scikit-learn's make_moons(noise=0.1), centred and scaled by 2 (noise std 0.2)."""
    t = np.pi * (np.arange(nodes) + 0.5) / nodes
    outer = np.stack([np.cos(t), np.sin(t)], 1)
    inner = np.stack([1 - np.cos(t), 0.5 - np.sin(t)], 1)
    means = 2 * (np.concatenate([outer, inner]) - [0.5, 0.25])
    return MixtureTarget("moons", "Two moons", means, np.ones(len(means)), 0.2)


def rings(radii=(1.0, 2.0, 3.0), std: float = 0.12, per_unit: int = 60) -> MixtureTarget:
    """Concentric circles, uniform along their length (mass in proportion to the radius)."""
    means = []
    for r in radii:
        m = int(per_unit * r)
        a = 2 * np.pi * (np.arange(m) + 0.5) / m
        means.append(r * np.stack([np.cos(a), np.sin(a)], 1))
    means = np.concatenate(means)
    return MixtureTarget("rings", "Concentric rings", means, np.ones(len(means)), std)


def eight_gaussians() -> MixtureTarget:
    """FFJORD's 8 Gaussians: centres on a circle of radius 4/sqrt 2, std 0.5/sqrt 2."""
    a = np.arange(8) * np.pi / 4
    means = 4 / math.sqrt(2) * np.stack([np.cos(a), np.sin(a)], 1)
    return MixtureTarget("8gaussians", "8 Gaussians", means, np.ones(8), 0.5 / math.sqrt(2))


def pinwheel(arms: int = 5, nodes: int = 120) -> MixtureTarget:
    """FFJORD's pinwheel (radial N(1, 0.3^2), rate 0.25, scaled by 2) with its tangential
    noise made isotropic: arm c is 2 R(2 pi c / arms + 0.25 e^a) (a, 0), a ~ N(1, 0.3^2)."""
    a = 1 + 0.3 * np.linspace(-3.5, 3.5, nodes)
    w = np.exp(-0.5 * ((a - 1) / 0.3) ** 2)
    means, weights = [], []
    for c in range(arms):
        ang = 2 * np.pi * c / arms + 0.25 * np.exp(a)
        means.append(2 * a[:, None] * np.stack([np.cos(ang), np.sin(ang)], 1))
        weights.append(w)
    return MixtureTarget("pinwheel", "Pinwheel", np.concatenate(means), np.concatenate(weights), 0.2)


def two_spirals(nodes: int = 300) -> MixtureTarget:
    """FFJORD's 2spirals: angle n in [0, 3 pi] with density in proportion to n, the point
    (-n cos n, n sin n) / 3 and its mirror image, with noise std 0.15."""
    n = 3 * np.pi * (np.arange(nodes) + 0.5) / nodes
    arm = np.stack([-np.cos(n) * n, np.sin(n) * n], 1) / 3
    means = np.concatenate([arm, -arm])
    return MixtureTarget("spirals", "Two spirals", means, np.concatenate([n, n]), 0.15)


# -- densities known only up to a constant ------------------------------------------------
class EnergyTarget(Target):
    """exp(-U(x)) on the box, for an energy U (B, 2) -> (B,)."""

    def __init__(self, name: str, label: str, energy: Callable[[torch.Tensor], torch.Tensor]):
        self.name, self.label, self.energy = name, label, energy

    def log_density(self, x: torch.Tensor) -> torch.Tensor:
        return -self.energy(x)


def _w1(z):
    return torch.sin(2 * math.pi * z[:, 0] / 4)


def _w2(z):
    return 3 * torch.exp(-0.5 * ((z[:, 0] - 1) / 0.6) ** 2)


def _w3(z):
    return 3 * torch.sigmoid((z[:, 0] - 1) / 0.3)


def _u1(z):
    ring = 0.5 * ((z.norm(dim=1) - 2) / 0.4) ** 2
    modes = torch.logsumexp(torch.stack([-0.5 * ((z[:, 0] - 2) / 0.6) ** 2,
                                         -0.5 * ((z[:, 0] + 2) / 0.6) ** 2]), 0)
    return ring - modes


def _u2(z):
    return 0.5 * ((z[:, 1] - _w1(z)) / 0.4) ** 2


def _u3(z):
    return -torch.logsumexp(torch.stack([-0.5 * ((z[:, 1] - _w1(z)) / 0.35) ** 2,
                                         -0.5 * ((z[:, 1] - _w1(z) + _w2(z)) / 0.35) ** 2]), 0)


def _u4(z):
    return -torch.logsumexp(torch.stack([-0.5 * ((z[:, 1] - _w1(z)) / 0.4) ** 2,
                                         -0.5 * ((z[:, 1] - _w1(z) + _w3(z)) / 0.35) ** 2]), 0)


def _checkerboard_energy(z, tau: float = 0.04):
    """Minus log of a smoothed indicator of the 8 dark squares of side 2 (FFJORD's
    checkerboard scaled to the box); the edges are sigmoids of width tau."""
    total = z.new_zeros(len(z))
    for i in range(4):
        for j in range(4):
            if (i + j) % 2 == 0:
                lo_x, lo_y = -4 + 2 * i, -4 + 2 * j
                total = total + (torch.sigmoid((z[:, 0] - lo_x) / tau) * torch.sigmoid((lo_x + 2 - z[:, 0]) / tau)
                                 * torch.sigmoid((z[:, 1] - lo_y) / tau) * torch.sigmoid((lo_y + 2 - z[:, 1]) / tau))
    return -torch.log(total + 1e-6)


# -- pictures -------------------------------------------------------------------------------
class ImageTarget(Target):
    """A density proportional to a picture's ink, pixel by pixel on the grid: (n, n) values
    >= 0, row 0 at the top. log_density interpolates log(p + floor) bilinearly, so
    reverse-KL families have a gradient everywhere."""

    def __init__(self, name: str, label: str, pixels: np.ndarray, grid: Grid):
        self.name, self.label, self.grid = name, label, grid
        img = np.asarray(pixels, dtype=np.float64)[::-1]  # row 0 = lowest y, as the grid
        if img.shape != (grid.n, grid.n) or not np.isfinite(img).all() or img.min() < 0 or img.sum() <= 0:
            raise ValueError(f"an image density needs {grid.n}x{grid.n} finite values >= 0, not all 0")
        self.values = img.reshape(-1).copy()
        log = np.log(img / img.max() + 1e-3)
        self.log_img = torch.as_tensor(log.copy(), dtype=torch.float32)[None, None]  # (1, 1, n, n)

    def grid_values(self, grid: Grid) -> np.ndarray:
        if grid != self.grid:
            raise ValueError(f"this picture is defined on a {self.grid.n}x{self.grid.n} grid")
        return self.values

    def sample(self, n: int, generator: torch.Generator | None = None, grid: Grid | None = None) -> torch.Tensor:
        return super().sample(n, generator, grid or self.grid)

    def log_density(self, x: torch.Tensor) -> torch.Tensor:
        u = (x / self.grid.box).float()[None, None]  # (1, 1, B, 2) in [-1, 1]: x then y
        out = F.grid_sample(self.log_img, u, mode="bilinear", padding_mode="border", align_corners=False)
        return out.view(-1).to(x.dtype) - 10.0 * F.relu(x.abs() - self.grid.box).sum(1)


def _ink(img, grid: Grid, invert: bool) -> np.ndarray:
    """A PIL image -> (n, n) ink in [0, 1], the picture fitted into the square with a margin
    (a very thin picture keeps at least one pixel across)."""
    from PIL import Image, ImageOps

    grey = ImageOps.grayscale(img)
    side = int(grid.n * 0.9)
    fitted = ImageOps.contain(grey, (side, side), Image.Resampling.LANCZOS)
    if 0 in fitted.size:  # 20000 x 1 pixels would become 115 x 0
        fitted = grey.resize(tuple(max(1, s) for s in fitted.size), Image.Resampling.LANCZOS)
    canvas = Image.new("L", (grid.n, grid.n), 255 if invert else 0)
    canvas.paste(fitted, ((grid.n - fitted.width) // 2, (grid.n - fitted.height) // 2))
    a = np.asarray(canvas, dtype=np.float64) / 255
    return 1 - a if invert else a


MAX_TEXT = 12
TEXT_ALLOWED = f"1 to {MAX_TEXT} characters: ASCII letters, digits, punctuation and spaces"
"""What the text target takes, in words (Pillow's default font draws ASCII and a few signs)."""
_NO_GLYPH = "\U0010FFFD"  # a private-use code point: the font draws its missing-glyph box


@functools.lru_cache(maxsize=1)
def _font():
    from PIL import ImageFont

    return ImageFont.load_default(size=96)  # Aileron, bundled with Pillow


@functools.lru_cache(maxsize=4096)
def _drawn(c: str) -> bool:
    """Does the font draw ``c`` (not its missing-glyph box)?"""
    return c == " " or _mask(c) != _mask(_NO_GLYPH)


def _mask(c: str) -> tuple:
    m = _font().getmask(c)
    return m.size, bytes(m)


def clean_text(text: str) -> str:
    """``text`` stripped of surrounding whitespace, or ValueError in one line saying what
    is wrong and what is allowed: empty or only spaces, longer than MAX_TEXT, control or
    invisible characters (a NUL, a tab, a right-to-left mark), characters the font has no
    glyph for (emoji, accents)."""
    if not isinstance(text, str):
        raise ValueError(f"the text must be a string of {TEXT_ALLOWED}")
    s = text.strip()
    if not 1 <= len(s) <= MAX_TEXT:
        got = f"{len(s):,}" if s else ("none" if not text else "only spaces")
        raise ValueError(f"the text must have 1 to {MAX_TEXT} characters (got {got})")
    hidden = sorted({c for c in s if unicodedata.category(c).startswith("C")})
    if hidden:
        codes = ", ".join(f"U+{ord(c):04X}" for c in hidden[:3])
        raise ValueError(f"the text holds control or invisible characters ({codes}); use {TEXT_ALLOWED}")
    missing = [c for c in dict.fromkeys(s) if not _drawn(c)]
    if missing:
        raise ValueError(f"the font has no glyph for {', '.join(map(repr, missing[:3]))}; use {TEXT_ALLOWED}")
    return s


def text_target(text: str, grid: Grid | None = None) -> ImageTarget:
    """A word (1-12 characters, :func:`clean_text`) rendered in Pillow's default font: its
    ink is the density."""
    from PIL import Image, ImageDraw

    grid = grid or Grid()
    text = clean_text(text)
    font = _font()
    left, top, right, bottom = ImageDraw.Draw(Image.new("L", (1, 1))).textbbox((0, 0), text, font=font)
    img = Image.new("L", (right - left + 16, bottom - top + 16), 255)
    ImageDraw.Draw(img).text((8 - left, 8 - top), text, fill=0, font=font)
    return ImageTarget("text", f"Text “{text}”", _ink(img, grid, invert=True), grid)


MAX_UPLOAD_MB = 10
"""The largest picture the lab takes, in Streamlit's megabytes (2**20 bytes): .streamlit/
config.toml's server.maxUploadSize and the page's file_uploader say the same."""
MAX_IMAGE_BYTES = MAX_UPLOAD_MB * 2 ** 20  # 10,485,760 bytes
MAX_IMAGE_SIDE = 4096
MAX_IMAGE_PIXELS = MAX_IMAGE_SIDE ** 2  # 16,777,216: a 12-megapixel photo fits; it is shrunk to the grid
IMAGE_FORMATS = ("PNG", "JPEG")  # the decoders Pillow may use here, and no other


def image_target(data: bytes, grid: Grid | None = None, *, invert: bool = True) -> ImageTarget:
    """An uploaded picture (PNG or JPEG): dark pixels carry the mass (``invert``), or bright.
    Untrusted bytes: at most MAX_IMAGE_BYTES, and a picture that declares more than
    MAX_IMAGE_PIXELS is refused from its header, before anything is decoded (a
    decompression bomb: a small file that declares 30000 x 30000 pixels). Every refusal is
    a ValueError in one line."""
    import io
    import warnings

    from PIL import Image

    grid = grid or Grid()
    if len(data) > MAX_IMAGE_BYTES:
        raise ValueError(f"the file has {len(data):,} bytes, more than the {MAX_IMAGE_BYTES:,} "
                         f"({MAX_UPLOAD_MB} MB) allowed; upload a smaller PNG or JPEG")
    too_big = (f"more than the {MAX_IMAGE_PIXELS:,} pixels ({MAX_IMAGE_SIDE}x{MAX_IMAGE_SIDE}) "
               "allowed; upload a smaller PNG or JPEG")
    try:
        with warnings.catch_warnings():  # Pillow's own bomb check (at 89 megapixels) as an error
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            img = Image.open(io.BytesIO(data), formats=IMAGE_FORMATS)  # reads the header only
    except (Image.DecompressionBombError, Image.DecompressionBombWarning):
        raise ValueError(f"the image declares {too_big}") from None
    except Exception as e:  # any failure to read untrusted bytes is one line
        raise ValueError(f"not a readable image ({e.__class__.__name__}); upload a PNG or JPEG") from None
    w, h = img.size
    if w * h > MAX_IMAGE_PIXELS:
        raise ValueError(f"the image declares {w}x{h} pixels, {too_big}")
    try:
        img.draft("L", (grid.n, grid.n))  # a JPEG decodes at a reduced scale
        img.load()
        ink = _ink(img, grid, invert)
    except Exception as e:  # a truncated or corrupt file, found while decoding
        raise ValueError(f"not a readable image ({first_line(e, 120)}); upload a PNG or JPEG") from None
    if ink.sum() <= 0:
        raise ValueError("the image is blank: no pixel carries any mass")
    return ImageTarget("image", "Uploaded image", ink, grid)


# -- the catalogue ----------------------------------------------------------------------------
TOY = ("moons", "rings", "8gaussians", "pinwheel", "checkerboard", "spirals")
ENERGIES = ("u1", "u2", "u3", "u4")
PICTURES = ("text", "image")
TARGETS = TOY + ENERGIES + PICTURES
LABELS = {"moons": "Two moons", "rings": "Concentric rings", "8gaussians": "8 Gaussians",
          "pinwheel": "Pinwheel", "checkerboard": "Checkerboard", "spirals": "Two spirals",
          "u1": "U1 (ring, two modes)", "u2": "U2 (sine)", "u3": "U3 (sine, split)",
          "u4": "U4 (sine, step)", "text": "Your text", "image": "Your image"}
_BUILDERS = {"moons": two_moons, "rings": rings, "8gaussians": eight_gaussians,
             "pinwheel": pinwheel, "spirals": two_spirals,
             "checkerboard": lambda: EnergyTarget("checkerboard", "Checkerboard", _checkerboard_energy),
             "u1": lambda: EnergyTarget("u1", LABELS["u1"], _u1), "u2": lambda: EnergyTarget("u2", LABELS["u2"], _u2),
             "u3": lambda: EnergyTarget("u3", LABELS["u3"], _u3), "u4": lambda: EnergyTarget("u4", LABELS["u4"], _u4)}
_CACHE: dict[str, Target] = {}


def get_target(name: str, *, text: str = "genlab", image: bytes | None = None, grid: Grid | None = None) -> Target:
    """The target called ``name`` (one of TARGETS); built once and kept (the pictures are
    rebuilt from their text or bytes). ValueError in one line for an unknown name."""
    if name == "text":
        return text_target(text, grid)
    if name == "image":
        if image is None:
            raise ValueError("the image target needs an uploaded picture")
        return image_target(image, grid)
    if name not in _BUILDERS:
        raise ValueError(f"unknown target {name!r}; choose one of {', '.join(TARGETS)}")
    if name not in _CACHE:
        _CACHE[name] = _BUILDERS[name]()
    return _CACHE[name]
