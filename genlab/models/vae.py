"""Variational autoencoder with a Gaussian latent, and its importance-weighted bound.

Reference:
> D. P. Kingma, M. Welling. Auto-Encoding Variational Bayes. ICLR 2014.
> Y. Burda, R. Grosse, R. Salakhutdinov. Importance Weighted Autoencoders. ICLR 2016.

The ELBO is split into hooks that the flow-augmented VAEs override one at a time:
``posterior_sample`` (flow posterior), ``log_prior`` (flow prior),
``log_likelihood`` (flow decoder) and ``kl`` (closed form here, Monte Carlo there).
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import ClassVar

import torch

from ..config import opt
from ..nn import bernoulli_log_prob, bits_per_dim, image_decoder, image_encoder, log_normal, log_std_normal
from .base import Capabilities, LatentVariableModel, VariationalConfig, preprocess_field

MIN_LOGVAR = -14.0  # decoder variance floor: sigma >= 9e-4, below one 8-bit grey level


@dataclass
class VAEConfig(VariationalConfig):
    iwae_k: int = opt(1, "importance samples in the training bound (1 = ELBO, >1 = IWAE)", lo=1, hi=5000)
    preprocess: str = preprocess_field("dynamic")


@dataclass(frozen=True)
class Posterior:
    """What the posterior hooks pass on to ``kl`` and ``kl_terms``: the parameters of
    q(z|x) that the family has, the others None. mu, logvar (B, d): a diagonal Gaussian;
    logits (B, d): factorised Bernoulli units; z0 (k, B, d), log_det (k, B): the base
    samples of a flow posterior and the flows' summed log-determinants."""
    mu: torch.Tensor | None = None
    logvar: torch.Tensor | None = None
    logits: torch.Tensor | None = None
    z0: torch.Tensor | None = None
    log_det: torch.Tensor | None = None


class VAE(LatentVariableModel):
    """Gaussian-latent VAE; Bernoulli decoder on binarised pixels, Gaussian decoder with
    learned per-pixel variance on dequantised pixels."""

    caps = Capabilities(encode=True, decode=True, prior="normal", likelihood="importance",
                        kl_per_dim=True, temperature=1.0, kl_warmup=True, q_density="gaussian")
    log_prob_method = "importance sampling with q(z|x) as proposal (Burda et al. 2016)"
    proposal = "q(z|x), the Gaussian encoder (diagonal covariance)"
    # encoder outputs per latent unit: mean and log-variance (binary-vae: one logit)
    PARAMS_PER_UNIT: ClassVar[int] = 2

    def __init__(self, cfg: VAEConfig):
        super().__init__(cfg)
        c, h, w = cfg.image_shape
        self.D = c * h * w
        self.bernoulli = cfg.preprocess != "dequantize"
        out_c = c if self.bernoulli else 2 * c  # Gaussian decoder: mean and log-variance
        self.kl_weight = cfg.beta  # the KL's weight in the loss; fit's KL warm-up ramps it
        self.encoder, self.decoder = self.networks(cfg, out_c)

    def networks(self, cfg: VAEConfig, out_channels: int) -> tuple[torch.nn.Module, torch.nn.Module]:
        """The encoder, (B, C, H, W) -> (B, PARAMS_PER_UNIT * d), and the decoder, (B, d) ->
        (B, out_channels, H, W) (a conditional VAE's also take the label)."""
        d = cfg.latent_dim
        return (image_encoder(cfg.arch, cfg.image_shape, cfg.hidden, self.PARAMS_PER_UNIT * d),
                image_decoder(cfg.arch, d, cfg.image_shape, cfg.hidden, out_channels))

    # -- hooks ------------------------------------------------------------------
    def posterior(self, x: torch.Tensor) -> Posterior:
        """The parameters of q(z|x): mean and log-variance (B, d) each."""
        mu, logvar = self.encoder(x).chunk(2, dim=-1)  # (B, d) each
        return Posterior(mu=mu, logvar=logvar)

    def posterior_sample(self, x: torch.Tensor, k: int = 1) -> tuple[torch.Tensor, torch.Tensor, Posterior]:
        """z ~ q(z|x) by reparameterisation: z (k, B, d), log q(z|x) (k, B), the Posterior."""
        post = self.posterior(x)
        mu, logvar = post.mu, post.logvar
        eps = torch.randn((k, *mu.shape), device=mu.device, dtype=mu.dtype)
        z = mu + torch.exp(0.5 * logvar) * eps  # (k, B, d)
        log_q = log_normal(z, mu, logvar).sum(-1)  # (k, B)
        return z, log_q, post

    def log_q(self, x: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
        """log q(z|x) at given latents z (G, B, d): (G, B); the Gaussian of ``posterior``."""
        if self.caps.q_density is None:
            return super().log_q(x, z)  # raises: declared off
        post = self.posterior(x)  # mu, logvar (B, d) each
        return log_normal(z, post.mu, post.logvar).sum(-1)

    def log_prior(self, z: torch.Tensor) -> torch.Tensor:
        return log_std_normal(z).sum(-1)

    def kl_terms(self, post: Posterior) -> torch.Tensor:
        """KL(q(z_j|x) || N(0, 1)) of each latent unit (B, d), closed form."""
        return 0.5 * (post.logvar.exp() + post.mu ** 2 - 1.0 - post.logvar)

    def kl(self, z: torch.Tensor, log_q: torch.Tensor, post: Posterior) -> torch.Tensor:
        """KL(q(z|x) || p(z)) per image (B,): the sum of the closed-form unit terms.
        Variants without a closed form override this (Monte Carlo) and declare
        ``kl_per_dim=False`` in their caps."""
        return self.kl_terms(post).sum(-1)

    def kl_per_dim(self, x: torch.Tensor) -> torch.Tensor:
        """The KL of each latent unit (B, d): the terms whose sum is the loss's "kl"."""
        if not self.caps.kl_per_dim:
            return super().kl_per_dim(x)  # raises: declared off
        return self.kl_terms(self.posterior(x))

    def decoder_params(self, z: torch.Tensor) -> torch.Tensor:
        """(..., d) -> decoder output (..., C', H, W): logits, or mean and log-variance."""
        lead = z.shape[:-1]
        out = self.decoder(z.reshape(-1, z.shape[-1]))
        return out.view(*lead, *out.shape[1:])

    def log_likelihood(self, x: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
        """log p(x|z) summed over pixels: x (B, C, H, W), z (k, B, d) -> (k, B)."""
        out = self.decoder_params(z)  # (k, B, C', H, W)
        if self.bernoulli:
            ll = bernoulli_log_prob(out, x)  # x broadcasts over the k samples
        else:
            mu, logvar = out.chunk(2, dim=2)
            ll = log_normal(x, mu, logvar.clamp(min=MIN_LOGVAR))
        return ll.flatten(2).sum(-1)

    # -- objective --------------------------------------------------------------
    def loss(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        k = self.cfg.iwae_k
        z, log_q, post = self.posterior_sample(x, k)
        log_px_z = self.log_likelihood(x, z)  # (k, B)
        if k == 1:
            recon = -log_px_z[0]  # (B,)
            kl = self.kl(z, log_q, post)
            loss = recon + self.kl_weight * kl  # beta, or its warm-up value
            return self._with_bpd({"loss": loss.mean(), "elbo": -(recon + kl).mean(),
                                   "recon": recon.mean(), "kl": kl.mean()}, "elbo")
        log_w = log_px_z + self.log_prior(z) - log_q  # (k, B)
        bound = torch.logsumexp(log_w, 0) - math.log(k)
        recon = -log_px_z.mean(0)
        kl = self.kl(z, log_q, post)  # closed form where there is one (what kl_per_dim splits)
        return self._with_bpd({"loss": -bound.mean(), "iwae": bound.mean(),
                               "elbo": (-recon - kl).mean(), "recon": recon.mean(),
                               "kl": kl.mean()}, "iwae")

    def _with_bpd(self, out: dict[str, torch.Tensor], bound: str) -> dict[str, torch.Tensor]:
        """On dequantised pixels add "bpd": bits/dim on 8-bit data from -bound, an upper bound."""
        if not self.bernoulli:
            out["bpd"] = bits_per_dim(-out[bound], self.D)
        return out

    def log_weights(self, x: torch.Tensor, k: int) -> torch.Tensor:
        """log p(x, z) - log q(z|x) for k posterior samples: (k, B). The inherited
        ``log_prob(x, k)`` is the IWAE estimate from these."""
        z, log_q, _ = self.posterior_sample(x, k)
        return self.log_likelihood(x, z) + self.log_prior(z) - log_q

    # -- latent interface -------------------------------------------------------
    @torch.no_grad()
    def encode(self, x: torch.Tensor) -> torch.Tensor:
        return self.posterior(x).mu

    @torch.no_grad()
    def decode(self, z: torch.Tensor) -> torch.Tensor:
        out = self.decoder_params(z)
        if self.bernoulli:
            return torch.sigmoid(out)
        return out.chunk(2, dim=-3)[0].clamp(0, 1)

    def mlp_decoder(self) -> tuple[torch.nn.Module, str]:
        """The decoder network: logits (Bernoulli pixels), or means then log-variances."""
        return self.decoder, "sigmoid" if self.bernoulli else "clamp"

    def sample_prior(self, n: int, temperature: float = 1.0) -> torch.Tensor:
        """z ~ N(0, T^2 I): (n, d)."""
        t = self.check_temperature(temperature)
        return t * torch.randn(n, self.cfg.latent_dim, device=self.device)

    @torch.no_grad()
    def sample(self, n: int, temperature: float = 1.0) -> torch.Tensor:
        return self.decode(self.sample_prior(n, temperature))
