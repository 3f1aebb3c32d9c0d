"""VAE with a normalizing-flow posterior: planar maps or RealNVP couplings.

Reference:
> D. J. Rezende, S. Mohamed. Variational Inference with Normalizing Flows. ICML 2015.
> L. Dinh, J. Sohl-Dickstein, S. Bengio. Density estimation using Real NVP. ICLR 2017.

z_0 ~ q_0(z|x) = N(mu(x), diag sigma(x)^2), z_K = f_K o ... o f_1(z_0), and
    log q_K(z_K|x) = log q_0(z_0|x) - sum_k log|det df_k/dz_{k-1}|,
    ELBO = E_{q_0}[log p(x|z_K) + log p(z_K) - log q_0(z_0|x) + sum_k log|det ...|].
Both flows are amortised over x through the encoder's last hidden features h(x):
planar maps take their (u, w, b) from a linear layer on h (Rezende & Mohamed, sec. 4),
with u constrained so that w^T u >= -1; RealNVP couplings take h as a context input
of their scale and translation nets.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import torch
from torch import nn

from ..config import opt
from ..flows import Planar
from ..nn import log_normal
from .base import Capabilities
from .vae import VAE, Posterior, VAEConfig
from .vae_flow_prior import flow_hidden_field, latent_realnvp, num_flows_field

FLOWS = ("planar", "realnvp")


@dataclass
class VAEFlowPosteriorConfig(VAEConfig):
    flow: str = opt("planar", "posterior flow: planar maps (Rezende & Mohamed 2015) or RealNVP "
                    "couplings, amortised on the encoder's features", choices=FLOWS)
    num_flows: int = num_flows_field(4)
    flow_hidden: tuple[int, ...] = flow_hidden_field()


class VAEFlowPosterior(VAE):
    """VAE whose posterior is q_0 pushed through K amortised flows (Rezende & Mohamed 2015;
    Dinh et al. 2017 couplings): overrides the ``posterior_sample`` and ``kl`` (Monte
    Carlo, with the log-determinants) hooks of :class:`VAE`. The inherited IWAE
    ``log_prob`` uses log q_K, so it stays correct. q_K does not factorise over latent
    units, so neither does the KL: no kl_per_dim."""

    caps = Capabilities(encode=True, decode=True, prior="normal", likelihood="importance",
                        temperature=1.0, kl_warmup=True, q_density="flow")
    # halvings of a planar map's inverse bracket (width 2 |w^T u_hat| + 2) in log_q: they
    # leave ~1e-12 of it, which Planar.inverse's Newton step then squares; its default 200
    # would spend half of a quadrature grid's time there
    PLANAR_ITERS: ClassVar[int] = 40

    def __init__(self, cfg: VAEFlowPosteriorConfig):
        super().__init__(cfg)
        leaves = [m for m in self.encoder.modules() if not list(m.children())]
        if not isinstance(leaves[-1], nn.Linear):
            raise TypeError("the encoder must end in a linear layer giving (mu, log-variance)")
        # a plain tuple, so these modules stay registered (and saved) only under encoder
        self._encoder_layers = tuple(leaves)
        feat, d, K = leaves[-1].in_features, cfg.latent_dim, cfg.num_flows
        if cfg.flow == "planar":
            self.planar = Planar(d)  # the map; its (u, w, b) come from planar_params(h)
            self.planar_params = nn.Linear(feat, K * (2 * d + 1))
        else:
            self.posterior_flow = latent_realnvp(d, K, cfg.flow_hidden, context_dim=feat)

    @property
    def proposal(self) -> str:
        return (f"q_K(z|x), the Gaussian encoder pushed through {self.cfg.num_flows} amortised "
                f"{self.cfg.flow} flows")

    # -- the amortised flow -------------------------------------------------------------
    def features(self, x: torch.Tensor) -> torch.Tensor:
        """The encoder's last hidden layer h(x): (B, C, H, W) -> (B, F)."""
        h = x
        for layer in self._encoder_layers[:-1]:
            h = layer(h)
        return h

    def transform(self, z0: torch.Tensor, h: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """z_0 (N, d) -> z_K (N, d) and sum_k log|det df_k/dz_{k-1}| (N,), given h (N, F)."""
        if self.cfg.flow == "realnvp":
            return self.posterior_flow(z0, h)
        d, K = self.cfg.latent_dim, self.cfg.num_flows
        params = self.planar_params(h).view(len(h), K, 2 * d + 1)  # (N, K, 2d+1)
        u, w, b = params.split((d, d, 1), dim=-1)  # (N, K, d), (N, K, d), (N, K, 1)
        z, log_det = z0, z0.new_zeros(len(z0))
        for k in range(K):
            z, ld = self.planar(z, params=(u[:, k], w[:, k], b[:, k]))  # (N, d), (N,)
            log_det = log_det + ld
        return z, log_det

    def inverse_transform(self, zk: torch.Tensor, h: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """z_K (G, B, d) -> z_0 = f^{-1}(z_K) (G, B, d) and log|det df^{-1}/dz_K| (G, B),
        given h (B, F): couplings invert exactly, planar maps by bisection
        (flows.Planar.inverse, PLANAR_ITERS halvings), last map first."""
        G, B, d = zk.shape
        flat = zk.reshape(G * B, d)
        if self.cfg.flow == "realnvp":
            context = h.expand(G, B, h.shape[-1]).reshape(G * B, -1)  # (G*B, F)
            z0, log_det = self.posterior_flow.inverse(flat, context)
            return z0.view(G, B, d), log_det.view(G, B)
        K = self.cfg.num_flows
        params = self.planar_params(h).view(1, B, K, 2 * d + 1).expand(G, B, K, 2 * d + 1)
        u, w, b = params.reshape(G * B, K, 2 * d + 1).split((d, d, 1), dim=-1)  # (G*B, K, .)
        z0, log_det = flat, flat.new_zeros(G * B)
        for k in reversed(range(K)):
            z0, ld = self.planar.inverse(z0, params=(u[:, k], w[:, k], b[:, k]), iters=self.PLANAR_ITERS)
            log_det = log_det + ld
        return z0.view(G, B, d), log_det.view(G, B)

    # -- hooks --------------------------------------------------------------------------
    def log_q(self, x: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
        """log q_K(z|x) at given latents z (G, B, d): (G, B), by the change of variables
        log q_K(z_K) = log q_0(f^{-1}(z_K)) + log|det df^{-1}/dz_K|."""
        h = self.features(x)  # (B, F)
        mu, logvar = self._encoder_layers[-1](h).chunk(2, dim=-1)  # q_0: (B, d) each
        z0, log_det = self.inverse_transform(z, h)  # (G, B, d), (G, B)
        return log_normal(z0, mu, logvar).sum(-1) + log_det

    def posterior_sample(self, x: torch.Tensor, k: int = 1) -> tuple[torch.Tensor, torch.Tensor, Posterior]:
        """z_K (k, B, d), log q_K(z_K|x) (k, B), and the Posterior (mu, logvar, z0, log_det)."""
        h = self.features(x)  # (B, F)
        mu, logvar = self._encoder_layers[-1](h).chunk(2, dim=-1)  # (B, d) each
        eps = torch.randn((k, *mu.shape), device=mu.device, dtype=mu.dtype)
        z0 = mu + torch.exp(0.5 * logvar) * eps  # (k, B, d)
        log_q0 = log_normal(z0, mu, logvar).sum(-1)  # (k, B)
        B, d = mu.shape
        h_k = h.expand(k, *h.shape).reshape(k * B, -1)  # (k*B, F)
        zk, log_det = self.transform(z0.reshape(k * B, d), h_k)  # (k*B, d), (k*B,)
        log_det = log_det.view(k, B)
        post = Posterior(mu=mu, logvar=logvar, z0=z0, log_det=log_det)
        return zk.view(k, B, d), log_q0 - log_det, post

    def kl(self, z: torch.Tensor, log_q: torch.Tensor, post: Posterior) -> torch.Tensor:
        """Monte Carlo KL per image (B,): mean over samples of log q_K(z_K|x) - log p(z_K),
        where log q_K already subtracts the flows' log-determinants."""
        return (log_q - self.log_prior(z)).mean(0)

    @torch.no_grad()
    def encode(self, x: torch.Tensor) -> torch.Tensor:
        """The posterior-mean path pushed through the flows: z_K = f_K o ... o f_1(mu(x)),
        (B, d). (This is not the mean of q_K, which has no closed form.)"""
        h = self.features(x)  # (B, F)
        mu = self._encoder_layers[-1](h).chunk(2, dim=-1)[0]  # (B, d)
        return self.transform(mu, h)[0]
