"""What every normalizing-flow model shares: :class:`FlowModel` (exact log-likelihood by
change of variables, sampling through the inverse, the flow latent as encode/decode), its
latent priors and the config field of its preprocessing.

Reference:
> L. Dinh, D. Krueger, Y. Bengio. NICE: Non-linear Independent Components Estimation.
> ICLR 2015 workshop (arXiv:1410.8516).
> L. Dinh, J. Sohl-Dickstein, S. Bengio. Density estimation using Real NVP. ICLR 2017.
"""
from __future__ import annotations

import math
from typing import Any

import torch
import torch.nn.functional as F

from ..config import opt
from ..flows import Bijection
from ..nn import bits_per_dim, log_std_normal
from .base import Capabilities, GenerativeModel

FLOW_PRIORS = ("logistic", "gaussian")


def dequantize_field() -> Any:
    return opt("dequantize", "flows model uniformly dequantised pixels in [0, 1]",
               choices=("dequantize",))


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
    log_prob_method = "exact change of variables"
    proposal = "exact (change of variables)"

    def __init__(self, cfg: Any, flow: Bijection):
        super().__init__(cfg)
        self.flow = flow
        self.D = math.prod(cfg.image_shape)
        self.latent_shape = tuple(self._flow_shape(cfg.image_shape))  # before flattening

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
        """Exact log p(x) in nats per image (B,); k is ignored (no sampling)."""
        z, log_det = self(x)
        return self.log_prior(z) + log_det

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
