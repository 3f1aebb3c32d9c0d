"""Conditional VAE: q(z|x, y), p(x|z, y) and the prior p(z) = N(0, I), for class labels y.

Reference:
> K. Sohn, H. Lee, X. Yan. Learning Structured Output Representation using Deep
> Conditional Generative Models. NeurIPS 2015.
> D. P. Kingma, D. J. Rezende, S. Mohamed, M. Welling. Semi-Supervised Learning with Deep
> Generative Models. NeurIPS 2014 (model M2, here without its unlabelled part).

genlab's :class:`~genlab.models.vae.VAE` with the label's one-hot vector beside the
encoder's input and beside the decoder's latent; the rest (ELBO, IWAE bound, KL warm-up,
the per-unit KL, the Gaussian or Bernoulli decoder) is VAE's, unchanged. The label reaches
VAE's two network hooks, ``posterior`` and ``decoder_params``, through a context variable
that each public method below sets for the length of its own call; context variables are
per thread, so app sessions sharing one model never see each other's labels.
"""
from __future__ import annotations

import math
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass

import torch
from torch import nn

from ..nn import ConvEncoder, image_decoder, log_normal, mlp
from .base import Capabilities
from .conditional import ClassConditional, num_classes_field
from .vae import VAE, Posterior, VAEConfig

_LABELS: ContextVar[torch.Tensor | None] = ContextVar("genlab_cvae_labels", default=None)


@dataclass
class CVAEConfig(VAEConfig):
    num_classes: int = num_classes_field()


class LabelledEncoder(nn.Module):
    """Images (B, C, H, W) and one-hot labels (B, K) -> (B, out_dim): the MLP reads
    [x flattened, y]; the conv net reads y as K constant channels beside the image's."""

    def __init__(self, arch: str, shape: tuple[int, int, int], hidden: tuple[int, ...],
                 out_dim: int, classes: int):
        super().__init__()
        c, h, w = shape
        self.flat = arch == "mlp"
        self.net = (mlp([c * h * w + classes, *hidden, out_dim]) if self.flat
                    else ConvEncoder((c + classes, h, w), out_dim))

    def forward(self, x: torch.Tensor, onehot: torch.Tensor) -> torch.Tensor:
        if self.flat:
            return self.net(torch.cat([x.flatten(1), onehot], dim=1))  # (B, D + K) in
        planes = onehot[:, :, None, None].expand(-1, -1, *x.shape[2:])  # (B, K, H, W)
        return self.net(torch.cat([x, planes], dim=1))


class CVAE(ClassConditional, VAE):
    """Conditional VAE (Sohn et al. 2015): encoder q(z|x, y) and decoder p(x|z, y) both read
    the one-hot label, the prior is N(0, I) for every class, so z holds what the label does
    not say (the style) and decoding one z under every label changes the class alone.
    log p(x|y) is the importance-weighted estimate with q(z|x, y) as proposal."""

    caps = Capabilities(encode=True, decode=True, prior="normal", likelihood="importance",
                        kl_per_dim=True, temperature=1.0, kl_warmup=True, conditional=True)
    log_prob_method = "importance sampling with q(z|x, y) as proposal (Burda et al. 2016)"
    proposal = "q(z|x, y), the label-conditioned Gaussian encoder (diagonal covariance)"

    def __init__(self, cfg: CVAEConfig):
        super().__init__(cfg)
        self.init_classes(cfg.num_classes)

    def networks(self, cfg: CVAEConfig, out_channels: int) -> tuple[nn.Module, nn.Module]:
        d, K = cfg.latent_dim, cfg.num_classes
        return (LabelledEncoder(cfg.arch, cfg.image_shape, cfg.hidden, self.PARAMS_PER_UNIT * d, K),
                image_decoder(cfg.arch, d + K, cfg.image_shape, cfg.hidden, out_channels))

    # -- the label of the call in progress ------------------------------------------------
    @contextmanager
    def given(self, y: torch.Tensor) -> Iterator[None]:
        """VAE's hooks inside see labels y (B,) (checked by the caller)."""
        token = _LABELS.set(y)
        try:
            yield
        finally:
            _LABELS.reset(token)

    def _labels(self) -> torch.Tensor:
        y = _LABELS.get()
        if y is None:
            raise ValueError("cvae's networks read the class label: call loss(x, y), "
                             "log_prob(x, y), encode(x, y) or decode(z, y)")
        return y

    # -- VAE's network hooks, with the label -------------------------------------------------
    def posterior(self, x: torch.Tensor) -> Posterior:
        mu, logvar = self.encoder(x, self.one_hot(self._labels(), x)).chunk(2, dim=-1)  # (B, d)
        return Posterior(mu=mu, logvar=logvar)

    def decoder_params(self, z: torch.Tensor) -> torch.Tensor:
        """(..., B, d) latents, labels (B,) or one per latent (..., B) -> decoder output
        (..., B, C', H, W)."""
        lead = z.shape[:-1]
        onehot = self.one_hot(self._labels(), z).expand(*lead, self.num_classes)  # (..., B, K)
        h = torch.cat([z, onehot], dim=-1).reshape(-1, z.shape[-1] + self.num_classes)
        out = self.decoder(h)
        return out.view(*lead, *out.shape[1:])

    # -- the contract, labels in ----------------------------------------------------------------
    def loss(self, x: torch.Tensor, y: torch.Tensor | None = None) -> dict[str, torch.Tensor]:
        """VAE's loss (ELBO or IWAE bound) of log p(x|y)."""
        with self.given(self.labels(self.needs_labels(y), len(x))):
            return super().loss(x)

    def log_prob_given(self, x: torch.Tensor, y: torch.Tensor, k: int = 1,
                       chunk: int | None = None) -> torch.Tensor:
        with self.given(y):
            return VAE.log_prob(self, x, k=k, chunk=chunk)

    @torch.inference_mode()
    def log_prob_marginal(self, x: torch.Tensor, k: int, log_r: torch.Tensor) -> torch.Tensor:
        """log p(x) (B,) by importance sampling over (y, z) (Kingma et al. 2014's M2 marginal
        with a proposal in place of its inference net): k draws y_l ~ r(y|x) (log_r (B, K)),
        z_l ~ q(z|x, y_l), weights p(y_l) p(z_l) p(x|z_l, y_l) / (r(y_l|x) q(z_l|x, y_l)),
        drawn in passes of about SAMPLES_PER_PASS decoder rows like ``log_prob``'s."""
        B, K, d = len(x), self.num_classes, self.cfg.latent_dim
        classes = torch.arange(K, device=x.device).repeat_interleave(B)  # (K*B,) class-major
        mu, logvar = self.encoder(x.repeat(K, *[1] * (x.dim() - 1)),
                                  self.one_hot(classes, x)).view(K, B, -1).chunk(2, dim=-1)
        cdf = torch.cumsum(log_r.exp().to(mu.dtype), -1).contiguous()  # (B, K)
        rows = torch.arange(B, device=x.device)
        chunk = max(1, self.SAMPLES_PER_PASS // B)
        parts = []
        for i in range(0, k, chunk):
            n = min(chunk, k - i)
            u = torch.rand(B, n, device=x.device, dtype=cdf.dtype) * cdf[:, -1:]
            y = torch.searchsorted(cdf, u).clamp(max=K - 1).T  # (n, B)
            m, lv = mu[y, rows], logvar[y, rows]  # (n, B, d) each
            z = m + torch.exp(0.5 * lv) * torch.randn(n, B, d, device=x.device, dtype=m.dtype)
            log_q = log_normal(z, m, lv).sum(-1) + log_r.to(m.dtype).gather(1, y.T).T  # (n, B)
            with self.given(y):  # the decoder reads each sample's own label
                log_joint = self.log_likelihood(x, z) + self.log_prior(z)
            parts.append(log_joint + self.log_class_prior.to(m.dtype)[y] - log_q)
        return torch.logsumexp(torch.cat(parts, 0), 0) - math.log(k)

    @torch.no_grad()
    def encode(self, x: torch.Tensor, y: torch.Tensor | int | None = None) -> torch.Tensor:
        """The mean of q(z|x, y) (B, d); without y, of the class the model predicts."""
        with self.given(self.infer(x, y)):
            return super().encode(x)

    def kl_per_dim(self, x: torch.Tensor, y: torch.Tensor | int | None = None) -> torch.Tensor:
        with self.given(self.infer(x, y)):
            return super().kl_per_dim(x)

    def decode_given(self, z: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        with self.given(y):
            return VAE.decode(self, z)

    def sample_given(self, n: int, temperature: float, y: torch.Tensor) -> torch.Tensor:
        return self.decode_given(self.sample_prior(n, temperature), y)

    def mlp_decoder(self) -> None:
        """Not exported: the decoder reads [z, one-hot label], not z alone."""
        return None
