"""VAE with a factorised Bernoulli latent, trained by the score-function estimator.

Reference:
> A. Mnih, K. Gregor. Neural Variational Inference and Learning in Belief Networks
> (NVIL). ICML 2014.
> R. J. Williams. Simple statistical gradient-following algorithms for connectionist
> reinforcement learning (REINFORCE). Machine Learning 8, 1992.

q(z|x) = prod_j Bernoulli(z_j; sigmoid(a_j(x))), p(z) = prod_j Bernoulli(z_j; 1/2),
p(x|z) the VAE's decoder. ELBO = E_q[log p(x|z)] - KL(q || p), the KL in closed form.
No reparameterisation exists for z, so the encoder gets the score-function gradient

    grad_phi E_q[log p(x|z)] = E_q[(log p(x|z) - c(x)) grad_phi log q(z|x)],

unbiased for any c(x) that does not depend on z. ``baseline`` picks c: "none" (c = 0),
"mean" (a bias-corrected moving average of the learning signal log p(x|z)) or "learned"
(the moving average plus an MLP b(x) regressing the centred signal, as in NVIL).
The decoder gets the ordinary gradient and the KL its exact one. All of this is one
surrogate loss whose value is the negative ELBO, so the shared ``fit()`` is unchanged.
The hooks ``posterior``/``posterior_sample``/``log_prior``/``kl_terms`` are overridden,
so the VAE's ``kl`` (the sum of the unit terms), its per-unit ``kl_per_dim`` and its
importance-weighted ``log_prob(x, k)`` with q(z|x) as proposal all hold for Bernoulli units.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from ..config import opt
from ..nn import bernoulli_log_prob, mlp
from .base import Capabilities, VariationalConfig, latent_dim_field, preprocess_field
from .vae import VAE, Posterior

BASELINES = ("none", "mean", "learned")
BASELINE_HIDDEN = 100  # width of the learned baseline's one hidden layer (NVIL used 100)


@dataclass
class BinaryVAEConfig(VariationalConfig):
    latent_dim: int = latent_dim_field(64)
    baseline: str = opt("mean", "score-function baseline c(x): none, a moving average of the "
                        "learning signal, or the moving average plus a learned MLP (NVIL)",
                        choices=BASELINES)
    baseline_decay: float = opt(0.9, "decay of the baseline's moving average", lo=0.0, hi=0.9999)
    preprocess: str = preprocess_field("dynamic")


def bernoulli_kl_half(logits: torch.Tensor) -> torch.Tensor:
    """KL(Bernoulli(sigmoid(a)) || Bernoulli(1/2)) elementwise, stable in the logits a:
    q log q + (1 - q) log(1 - q) + log 2 with log q = -softplus(-a), log(1-q) = -softplus(a)."""
    q = torch.sigmoid(logits)
    return math.log(2.0) - q * F.softplus(-logits) - (1.0 - q) * F.softplus(logits)


class BinaryVAE(VAE):
    """VAE with factorised Bernoulli latents and a uniform Bernoulli(1/2) prior, encoder
    trained by REINFORCE with a moving-average or NVIL baseline (Mnih & Gregor 2014).
    Its KL is a sum over latent units, so it reports the KL of each unit."""

    caps = Capabilities(encode=True, decode=True, prior="bernoulli", likelihood="importance",
                        kl_per_dim=True, kl_warmup=True)  # Bernoulli(1/2): no temperature,
    # and q(z|x) has no density at a continuous z (q_density None: the inherited log_q refuses)
    proposal = "q(z|x), the factorised Bernoulli encoder"
    PARAMS_PER_UNIT = 1  # the encoder gives one logit per latent unit

    def __init__(self, cfg: BinaryVAEConfig):
        super().__init__(cfg)
        self.baseline_net = (nn.Sequential(nn.Flatten(), mlp([self.D, BASELINE_HIDDEN, 1], act=nn.Tanh))
                             if cfg.baseline == "learned" else None)
        self.register_buffer("signal_ema", torch.zeros(()))  # moving average of log p(x|z)
        self.register_buffer("ema_steps", torch.zeros((), dtype=torch.long))

    # -- hooks ------------------------------------------------------------------
    def posterior(self, x: torch.Tensor) -> Posterior:
        """The logits a(x) of q(z_j = 1|x) = sigmoid(a_j(x)), (B, d)."""
        return Posterior(logits=self.encoder(x))

    def posterior_sample(self, x: torch.Tensor, k: int = 1) -> tuple[torch.Tensor, torch.Tensor, Posterior]:
        """z ~ q(z|x): z (k, B, d) in {0, 1} (no gradient), log q(z|x) (k, B), the Posterior."""
        post = self.posterior(x)
        logits = post.logits  # (B, d)
        probs = torch.sigmoid(logits).detach().expand(k, *logits.shape)
        z = torch.bernoulli(probs)  # (k, B, d)
        log_q = bernoulli_log_prob(logits.expand_as(z), z).sum(-1)  # (k, B)
        return z, log_q, post

    def log_prior(self, z: torch.Tensor) -> torch.Tensor:
        return torch.full(z.shape[:-1], -z.shape[-1] * math.log(2.0), device=z.device, dtype=z.dtype)

    def kl_terms(self, post: Posterior) -> torch.Tensor:
        """KL(q(z_j|x) || Bernoulli(1/2)) of each latent unit (B, d), closed form in the logits;
        the inherited ``kl`` sums them."""
        return bernoulli_kl_half(post.logits)

    # -- baseline -----------------------------------------------------------------
    def baseline(self, x: torch.Tensor) -> torch.Tensor:
        """c(x) (B,), independent of z: 0, the moving average, or it plus b(x)."""
        if self.cfg.baseline == "none":
            return x.new_zeros(x.shape[0])
        debias = (1.0 - self.cfg.baseline_decay ** self.ema_steps.double()).clamp(min=1e-12)
        c = (self.signal_ema / debias.float()).expand(x.shape[0])  # (B,), Adam-style debiasing
        if self.baseline_net is not None:
            c = c + self.baseline_net(x).squeeze(-1)  # (B,)
        return c

    @torch.no_grad()
    def _update_ema(self, signal: torch.Tensor) -> None:
        d = self.cfg.baseline_decay
        self.signal_ema.mul_(d).add_((1.0 - d) * signal.mean())
        self.ema_steps += 1

    # -- objective ------------------------------------------------------------------
    def loss(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        """Surrogate loss: its value is recon + beta * KL (the negative ELBO at beta = 1);
        its gradient is the decoder's ordinary gradient, the score-function gradient for
        the encoder, the KL's exact gradient and, if learned, the baseline's regression."""
        z, log_q, post = self.posterior_sample(x, 1)
        logits = post.logits  # (B, d)
        log_px_z = self.log_likelihood(x, z)[0]  # (B,)
        kl = self.kl(z, log_q, post)  # (B,)
        c = self.baseline(x)  # (B,)
        signal = log_px_z.detach()
        score = (signal - c.detach()) * log_q[0]  # (B,), grad = REINFORCE term
        recon = -log_px_z
        loss = recon + self.kl_weight * kl - (score - score.detach())  # value: recon + beta*kl
        out = {"elbo": -(recon + kl).mean(), "recon": recon.mean(), "kl": kl.mean()}
        if self.baseline_net is not None:
            mse = (signal - c) ** 2  # (B,), grad only reaches b(x)
            loss = loss + (mse - mse.detach())
            out["baseline_mse"] = mse.mean().detach()
        out.update(self._grad_variances(z[0], logits, signal, c.detach()))
        if self.training and torch.is_grad_enabled() and self.cfg.baseline != "none":
            self._update_ema(signal)
        return {"loss": loss.mean(), **out}

    @staticmethod
    def _grad_variances(z: torch.Tensor, logits: torch.Tensor, signal: torch.Tensor,
                        c: torch.Tensor) -> dict[str, torch.Tensor]:
        """Variance across the batch of the per-example score-function gradient w.r.t.
        the encoder logits, (signal - c) * (z - sigmoid(a)), summed over the d units."""
        resid = (z - torch.sigmoid(logits.detach()))  # (B, d) = d log q / d a
        with_b = ((signal - c)[:, None] * resid).var(0, unbiased=False).sum()
        without = (signal[:, None] * resid).var(0, unbiased=False).sum()
        return {"grad_var": with_b, "grad_var_nobaseline": without}

    # -- latent interface -------------------------------------------------------------
    @torch.no_grad()
    def encode(self, x: torch.Tensor) -> torch.Tensor:
        """Posterior means q(z_j = 1 | x) (B, d)."""
        return torch.sigmoid(self.posterior(x).logits)

    def sample_prior(self, n: int, temperature: float = 1.0) -> torch.Tensor:
        self.check_temperature(temperature)  # only 1: tempering Bernoulli(1/2) leaves it
        return torch.bernoulli(torch.full((n, self.cfg.latent_dim), 0.5, device=self.device))
