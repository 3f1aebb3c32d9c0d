"""NICE: additive coupling layers and a diagonal scaling on dequantised pixels.

Reference:
> L. Dinh, D. Krueger, Y. Bengio. NICE: Non-linear Independent Components Estimation.
> ICLR 2015 workshop (arXiv:1410.8516).

Also holds what every flow model shares: :class:`FlowModel` (exact log-likelihood,
sampling, the flow latent as encode/decode), the priors and bits/dim as a tensor.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from ..config import opt
from ..flows import Bijection, Compose, DiagonalScaling, vector_coupling
from ..nn import log_std_normal
from .base import GenerativeModel, image_shape_field

PRIORS = ("logistic", "gaussian")


def dequantize_field():
    return opt("dequantize", "flows model uniformly dequantised pixels in [0, 1]",
               choices=("dequantize",))


def bits_per_dim(nll: torch.Tensor, num_dims: int) -> torch.Tensor:
    """bits/dim on 8-bit data from -log p(x) (nats) of a density on [0, 1]-scaled pixels
    (the same formula as :func:`genlab.metrics.bits_per_dim`, on tensors)."""
    return (nll + num_dims * math.log(256)) / (num_dims * math.log(2))


def prior_log_prob(z: torch.Tensor, prior: str) -> torch.Tensor:
    """log p(z) summed over dimensions: (B, D) -> (B,); standard logistic or normal."""
    if prior == "logistic":
        return -(F.softplus(z) + F.softplus(-z)).sum(-1)
    return log_std_normal(z).sum(-1)


def prior_sample(n: int, dim: int, prior: str, like: torch.Tensor) -> torch.Tensor:
    """(n, dim) draws from the prior, on the device and in the dtype of ``like``."""
    if prior == "logistic":  # inverse CDF of the standard logistic
        u = torch.rand(n, dim, device=like.device, dtype=like.dtype).clamp(1e-6, 1 - 1e-6)
        return torch.log(u) - torch.log1p(-u)
    return torch.randn(n, dim, device=like.device, dtype=like.dtype)


class FlowModel(GenerativeModel):
    """A density on [0, 1]-scaled pixels through a bijection ``self.flow`` from images
    (B, C, H, W) to a latent that is flattened to (B, D); the latent prior is
    ``self.prior``. log p(x) is exact, so bits/dim on 8-bit data is exact."""

    has_latent = True
    has_likelihood = True
    prior = "gaussian"
    log_prob_method = "exact change of variables"
    proposal = "exact (change of variables)"

    def __init__(self, cfg, flow: Bijection):
        super().__init__(cfg)
        self.flow = flow
        self.D = math.prod(cfg.image_shape)
        self.latent_shape = tuple(self._flow_shape(cfg.image_shape))  # before flattening

    def _flow_shape(self, shape: tuple[int, ...]) -> tuple[int, ...]:
        return shape

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """x (B, C, H, W) in [0, 1] -> z (B, D), log|det dz/dx| (B,)."""
        z, log_det = self.flow(x)
        return z.reshape(len(x), -1), log_det

    def inverse(self, z: torch.Tensor) -> torch.Tensor:
        """z (B, D) -> x (B, C, H, W), not clamped."""
        x, _ = self.flow.inverse(z.view(len(z), *self.latent_shape))
        return x

    def log_prior(self, z: torch.Tensor) -> torch.Tensor:
        """log p(z) of flattened latents (B, D) -> (B,)."""
        return prior_log_prob(z, self.prior)

    def sample_prior(self, n: int) -> torch.Tensor:
        return prior_sample(n, self.D, self.prior, next(self.parameters()))

    def log_prob(self, x: torch.Tensor, k: int = 1, **_) -> torch.Tensor:
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
    def sample(self, n: int) -> torch.Tensor:
        return self.decode(self.sample_prior(n))


class _Flatten(Bijection):
    """(B, C, H, W) <-> (B, C*H*W), volume preserving."""

    def __init__(self, shape: tuple[int, ...]):
        super().__init__()
        self.shape = tuple(shape)

    def forward(self, x, context=None):
        return x.reshape(len(x), -1), x.new_zeros(len(x))

    def inverse(self, y, context=None):
        return y.reshape(len(y), *self.shape), y.new_zeros(len(y))


@dataclass
class NICEConfig:
    image_shape: tuple[int, ...] = image_shape_field()
    couplings: int = opt(4, "number of coupling layers (partitions alternate)", lo=2, hi=32)
    hidden: tuple[int, ...] = opt((1000, 1000, 1000), "MLP hidden widths of each coupling net, "
                                  "comma-separated", lo=1, hi=8192)
    prior: str = opt("logistic", "latent prior", choices=PRIORS)
    preprocess: str = dequantize_field()


PRIOR_STD = {"logistic": math.pi / math.sqrt(3), "gaussian": 1.0}


def nice_flow(shape: tuple[int, ...], couplings: int, hidden: tuple[int, ...],
              init_std: float | None = None) -> Compose:
    """Flatten, additive couplings on odd/even pixels in turn, then the diagonal scaling
    (data-initialised to outputs of std ``init_std`` when given)."""
    dim = math.prod(shape)
    layers = [vector_coupling(dim, hidden, i % 2, additive=True, mask_kind="alternate")
              for i in range(couplings)]
    return Compose([_Flatten(shape), *layers, DiagonalScaling(dim, init_std)])


class NICE(FlowModel):
    """NICE (Dinh et al. 2014): additive couplings with MLP nets on alternating halves of
    the pixels, a diagonal scaling exp(s), and a logistic or Gaussian prior;
    log p(x) = log p_Z(f(x)) + sum_i s_i."""

    kind = "nice"

    def __init__(self, cfg: NICEConfig):
        if cfg.preprocess != "dequantize":
            raise ValueError("nice models continuous pixels: preprocess must be dequantize")
        super().__init__(cfg, nice_flow(cfg.image_shape, cfg.couplings, cfg.hidden,
                                        PRIOR_STD[cfg.prior]))
        self.prior = cfg.prior

    def _flow_shape(self, shape: tuple[int, ...]) -> tuple[int, ...]:
        return (math.prod(shape),)
