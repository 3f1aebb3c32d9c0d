"""What every normalizing-flow model shares: :class:`FlowModel` (exact log-likelihood by
change of variables, sampling through the inverse, the flow latent as encode/decode), its
latent priors, its dequantisation (uniform, or the variational q(u|x) of
:class:`VariationalDequantizer`) and the config fields of its preprocessing.

Reference:
> L. Dinh, D. Krueger, Y. Bengio. NICE: Non-linear Independent Components Estimation.
> ICLR 2015 workshop (arXiv:1410.8516).
> L. Dinh, J. Sohl-Dickstein, S. Bengio. Density estimation using Real NVP. ICLR 2017.
> J. Ho, X. Chen, A. Srinivas, Y. Duan, P. Abbeel. Flow++: Improving Flow-Based Generative
> Models with Variational Dequantization and Architecture Design. ICML 2019.
"""
from __future__ import annotations

import math
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from ..config import opt
from ..flows import AffineCoupling, Bijection, Compose, Logit, checkerboard_mask, sum_except_batch
from ..nn import bits_per_dim, gated_net, log_std_normal
from .base import Capabilities, GenerativeModel

FLOW_PRIORS = ("logistic", "gaussian")


def dequantize_field() -> Any:
    return opt("dequantize", "flows model uniformly dequantised pixels in [0, 1]",
               choices=("dequantize",))


DEQUANTIZATIONS = ("uniform", "variational")


def dequantization_field() -> Any:
    return opt("uniform", "how each 8-bit pixel's bin is filled: uniform (the data pipeline's "
               "noise u ~ U[0, 1)) or variational (u from a learned conditional flow q(u|x), "
               "Flow++; the loss is then -E_q[log p(x + u) - log q(u|x)], a bound on the 8-bit "
               "data's -log P(x))", choices=DEQUANTIZATIONS)


def dequant_couplings_field() -> Any:
    return opt(4, "dequantization=variational: checkerboard affine couplings of q(u|x)",
               lo=1, hi=16)


def dequant_width_field() -> Any:
    return opt(16, "dequantization=variational: channels of q(u|x)'s gated coupling nets",
               lo=1, hi=256)


class _ImageConditioned(nn.Module):
    """Coupling net of q(u|x): the gated conv net on [x_A, image] (B, 2C, H, W) -> (B, 2C, H, W)."""

    def __init__(self, channels: int, width: int, blocks: int):
        super().__init__()
        self.net = gated_net(2 * channels, width, 2 * channels, blocks)

    def forward(self, x: torch.Tensor, context: torch.Tensor) -> torch.Tensor:
        return self.net(torch.cat([x, context], dim=1))


class VariationalDequantizer(nn.Module):
    """q(u|x), the variational dequantisation of Flow++ (Ho et al. 2019, sec. 3.1), built as
    the UvA deep-learning course's tutorial 11 builds it: the data pipeline's uniform noise
    u0 ~ U[0, 1)^D goes through a logit, ``couplings`` checkerboard affine couplings whose
    gated nets see the 8-bit image, and a sigmoid, so u = TOP * sigmoid(g(logit(u0); x)) lies
    in [0, 1) and log q(u|x) = -log|du/du0| (u0's density is 1). x + u then fills the pixel's
    bin, and E_q[log p((x + u)/256) - log q(u|x)] <= log P(x) (in the [0, 1] units of
    genlab.nn.bits_per_dim). The couplings start as the identity: at first u is u0."""

    ALPHA = 1e-5  # the logit of u0 is taken at ALPHA + (1 - 2 ALPHA) u0: finite at u0 = 0
    TOP = 1.0 - 2.0 ** -16  # u <= TOP, so x + u < x + 1 in float32 (as genlab.data keeps it)

    def __init__(self, shape: tuple[int, ...], couplings: int, width: int, blocks: int = 1):
        super().__init__()
        c, h, w = shape
        self.logit = Logit(self.ALPHA)
        self.flow = Compose([AffineCoupling(checkerboard_mask(c, h, w, i % 2),
                                            _ImageConditioned(c, width, blocks))
                             for i in range(couplings)])

    def noise(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Uniformly dequantised pixels x (B, C, H, W) in [0, 1) -> the 8-bit image k (values
        0..255), the noise u in [0, 1) and log q(u|k) (B,)."""
        k = torch.floor(256 * x).clamp_(0, 255)
        u0 = 256 * x - k  # the pipeline's noise (exact: (k + u0) / 256 is)
        y, ld_logit = self.logit(u0)
        y, ld_flow = self.flow(y, k / 127.5 - 1)  # the image in [-1, 1] as the nets' context
        u = self.TOP * torch.sigmoid(y)
        ld_sigmoid = sum_except_batch(math.log(self.TOP) - F.softplus(-y) - F.softplus(y))
        return k, u, -(ld_logit + ld_flow + ld_sigmoid)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(x_k + u) / 256 (B, C, H, W) and log q(u|x) (B,)."""
        k, u, log_q = self.noise(x)
        return (k + u) / 256, log_q


def prior_log_prob(z: torch.Tensor, prior: str) -> torch.Tensor:
    """log p(z) summed over dimensions: (B, D) -> (B,); standard logistic or normal."""
    if prior == "logistic":
        return -(F.softplus(z) + F.softplus(-z)).sum(-1)
    return log_std_normal(z).sum(-1)


def prior_sample(n: int, dim: int, prior: str, like: torch.Tensor,
                 temperature: float = 1.0) -> torch.Tensor:
    """(n, dim) draws from the prior scaled by ``temperature`` T (N(0, T^2 I), or the
    logistic of scale T), on the device and in the dtype of ``like``."""
    if prior == "logistic":  # inverse CDF of the standard logistic
        u = torch.rand(n, dim, device=like.device, dtype=like.dtype).clamp(1e-6, 1 - 1e-6)
        return temperature * (torch.log(u) - torch.log1p(-u))
    return temperature * torch.randn(n, dim, device=like.device, dtype=like.dtype)


class FlowModel(GenerativeModel):
    """A density on [0, 1]-scaled pixels through a bijection ``self.flow`` from images
    (B, C, H, W) to a latent that is flattened to (B, D); the latent prior is
    ``self.prior`` ("gaussian" or "logistic"). log p(x) is exact, so bits/dim on 8-bit
    data is exact. Subclasses build the flow and declare their ``caps``."""

    prior = "gaussian"

    def __init__(self, cfg: Any, flow: Bijection):
        super().__init__(cfg)
        self.flow = flow
        self.D = math.prod(cfg.image_shape)
        self.latent_shape = tuple(self._flow_shape(cfg.image_shape))  # before flattening
        self.dequantizer = None
        if cfg.dequantization == "variational":
            if self.caps.conditional:
                raise ValueError(f"dequantization=variational is for the unconditional flows; "
                                 f"{self.kind} takes uniform")
            self.dequantizer = VariationalDequantizer(cfg.image_shape, cfg.dequant_couplings,
                                                      cfg.dequant_width)

    @property
    def dequantization(self) -> str:
        """"uniform" or "variational": which bound on the 8-bit data's log P(x) log_prob gives
        (genlab.evaluation.metrics.DEQUANTIZATION_BOUNDS says each in a line)."""
        return self.cfg.dequantization

    @property
    def log_prob_method(self) -> str:
        if self.dequantizer is None:
            return "exact change of variables"
        return ("change of variables at x + u minus log q(u|x), u ~ q(u|x) the variational "
                "dequantiser (Ho et al. 2019): one draw of a lower bound on log P(x)")

    @property
    def proposal(self) -> str:
        if self.dequantizer is None:
            return "exact (change of variables)"
        return "q(u|x), the variational dequantiser's noise (Ho et al. 2019)"

    def _flow_shape(self, shape: tuple[int, ...]) -> tuple[int, ...]:
        return shape

    @property
    def prior_family(self) -> str:
        return "normal" if self.prior == "gaussian" else self.prior

    def forward(self, x: torch.Tensor,
                context: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """x (B, C, H, W) in [0, 1] -> z (B, D), log|det dz/dx| (B,). ``context`` (B, K):
        what every coupling network is also given (a class-conditional flow's one-hot label)."""
        z, log_det = self.flow(x, context)
        return z.reshape(len(x), -1), log_det

    def inverse(self, z: torch.Tensor, context: torch.Tensor | None = None) -> torch.Tensor:
        """z (B, D) -> x (B, C, H, W), not clamped."""
        x, _ = self.flow.inverse(z.view(len(z), *self.latent_shape), context)
        return x

    def log_prior(self, z: torch.Tensor) -> torch.Tensor:
        """log p(z) of flattened latents (B, D) -> (B,)."""
        return prior_log_prob(z, self.prior)

    def sample_prior(self, n: int, temperature: float = 1.0) -> torch.Tensor:
        """z (n, D) from the prior at temperature T: N(0, T^2 I) (Kingma & Dhariwal 2018),
        or the logistic prior scaled by T."""
        t = self.check_temperature(temperature)
        return prior_sample(n, self.D, self.prior, next(self.parameters()), t)

    def log_prob(self, x: torch.Tensor, k: int = 1, **_: object) -> torch.Tensor:
        """Exact log p(x) in nats per image (B,) of the uniformly dequantised x; with
        variational dequantisation, log p(x' = x_k + u) - log q(u|x) for the u that q(u|x)
        makes of x's own uniform noise (one draw of the bound). k is ignored."""
        if self.dequantizer is None:
            z, log_det = self(x)
            return self.log_prior(z) + log_det
        x, log_q = self.dequantizer(x)
        z, log_det = self(x)
        return self.log_prior(z) + log_det - log_q

    def loss(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        nll = -self.log_prob(x)  # (B,)
        return {"loss": nll.mean(), "bpd": bits_per_dim(nll, self.D).mean()}

    @torch.no_grad()
    def encode(self, x: torch.Tensor) -> torch.Tensor:
        return self(x)[0]

    @torch.no_grad()
    def decode(self, z: torch.Tensor) -> torch.Tensor:
        return self.inverse(z).clamp(0, 1)

    @torch.no_grad()
    def sample(self, n: int, temperature: float = 1.0) -> torch.Tensor:
        return self.decode(self.sample_prior(n, temperature))


# Glow's samples are drawn at T = 0.7 (Kingma & Dhariwal 2018, sec. 5: "temperature 0.7"),
# which trades a little variety for much cleaner images; sample grids add it to T = 1
FLOW_TEMPERATURE = 0.7


def flow_caps(prior: str) -> Capabilities:
    """The capabilities of a flow model whose class-level prior is ``prior``."""
    return Capabilities(encode=True, decode=True, prior=prior, likelihood="exact", bijective=True,
                        temperature=FLOW_TEMPERATURE)
