"""VAE whose prior p(z) is a RealNVP on the latent space.

Reference:
> L. Dinh, J. Sohl-Dickstein, S. Bengio. Density estimation using Real NVP. ICLR 2017.
> D. P. Kingma, M. Welling. Auto-Encoding Variational Bayes. ICLR 2014.

The flow f maps latents to Gaussian noise, eps = f(z), so
    log p(z) = log N(f(z); 0, I) + log|det df/dz|
and prior samples are z = f^{-1}(eps). The KL term has no closed form any more and is
estimated by Monte Carlo with the posterior samples: log q(z|x) - log p(z).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch

from ..config import opt
from ..flows import Compose, Permutation, vector_coupling
from ..nn import log_std_normal
from .base import Capabilities
from .vae import VAE, Posterior, VAEConfig


def flow_hidden_field() -> Any:
    return opt((128, 128), "hidden widths of each latent coupling net (scale and translation "
               "MLPs), comma-separated", lo=1, hi=8192)


def num_flows_field(default: int) -> Any:
    return opt(default, "number of flow layers (RealNVP couplings or planar maps)", lo=0, hi=64)


def latent_realnvp(dim: int, num_flows: int, hidden: tuple[int, ...], context_dim: int = 0) -> Compose:
    """``num_flows`` MLP affine couplings on (B, dim) latents (tanh-bounded scale net, linear
    translation net, optionally conditioned on a context), with a reversing permutation
    between consecutive couplings so each half of z gets transformed. The couplings'
    last layers start at zero: a new flow is the identity map."""
    layers = []
    for i in range(num_flows):
        if i > 0:
            layers.append(Permutation(dim, "reverse"))
        layers.append(vector_coupling(dim, hidden, parity=0, context_dim=context_dim))
    return Compose(layers)


@dataclass
class VAEFlowPriorConfig(VAEConfig):
    num_flows: int = num_flows_field(3)
    flow_hidden: tuple[int, ...] = flow_hidden_field()


class VAEFlowPrior(VAE):
    """VAE with a learned prior on z made of RealNVP affine couplings (Dinh et al. 2017):
    overrides the ``log_prior``, ``kl`` (Monte Carlo) and ``sample_prior`` hooks of
    :class:`VAE`; the importance-weighted ``log_prob`` is inherited and uses the flow prior.
    The prior does not factorise over latent units, so neither does the KL: no kl_per_dim."""

    caps = Capabilities(encode=True, decode=True, prior="learned", likelihood="importance",
                        temperature=1.0, kl_warmup=True, q_density="gaussian")

    def __init__(self, cfg: VAEFlowPriorConfig):
        super().__init__(cfg)
        self.prior_flow = latent_realnvp(cfg.latent_dim, cfg.num_flows, cfg.flow_hidden)

    def log_prior(self, z: torch.Tensor) -> torch.Tensor:
        """log p(z) = log N(f(z); 0, I) + log|det df/dz|: z (..., d) -> (...)."""
        lead = z.shape[:-1]
        eps, log_det = self.prior_flow(z.reshape(-1, z.shape[-1]))  # (N, d), (N,)
        return (log_std_normal(eps).sum(-1) + log_det).view(lead)

    def kl(self, z: torch.Tensor, log_q: torch.Tensor, post: Posterior) -> torch.Tensor:
        """Monte Carlo KL per image (B,): mean over the k samples of log q(z|x) - log p(z)."""
        return (log_q - self.log_prior(z)).mean(0)

    @torch.no_grad()
    def sample_prior(self, n: int, temperature: float = 1.0) -> torch.Tensor:
        """z = f^{-1}(eps), eps ~ N(0, T^2 I): (n, d) (the flow's base tempered, as in Glow)."""
        t = self.check_temperature(temperature)
        p = next(self.parameters())
        eps = t * torch.randn(n, self.cfg.latent_dim, device=p.device, dtype=p.dtype)  # (n, d)
        return self.prior_flow.inverse(eps)[0]
