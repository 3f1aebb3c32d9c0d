"""VAE whose Gaussian decoder lives in the space of a flow on the data.

p(x|z) = N(f(x); mu(z), diag sigma(z)^2) |det df/dx|, with f a NICE or RealNVP flow
on dequantised pixels in [0, 1]. The flow gives the decoder dependencies between pixels
that a factorised Gaussian lacks; its log-determinant makes p(x|z) a density on
[0, 1]-scaled pixels, so the bound's bits/dim compare with `nice`, `realnvp` and the
Gaussian-decoder `vae`.

Reference:
> D. P. Kingma, M. Welling. Auto-Encoding Variational Bayes. ICLR 2014.
> L. Dinh, D. Krueger, Y. Bengio. NICE. 2014; L. Dinh et al. Real NVP. ICLR 2017.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch

from ..config import opt
from ..flows import COUPLING_NETS, Bijection, Compose, Logit
from ..nn import log_normal
from .base import Capabilities
from .flow import dequantize_field
from .nice import nice_flow
from .realnvp import RealNVPConfig, realnvp_flow
from .vae import MIN_LOGVAR, VAE, VAEConfig


@dataclass
class VAEFlowDecoderConfig(VAEConfig):
    decoder_flow: str = opt("nice", "flow f from data space to the decoder's Gaussian",
                            choices=("nice", "realnvp"))
    couplings: int = opt(4, "coupling layers of the flow (realnvp: per mask type per scale)",
                         lo=1, hi=32)
    flow_hidden: tuple[int, ...] = opt((256, 256), "MLP hidden widths of the NICE coupling nets",
                                       lo=1, hi=8192)
    width: int = opt(16, "channels of the RealNVP coupling nets", lo=1, hi=1024)
    coupling_net: str = opt("plain", "coupling nets of the flow: plain (NICE: ReLU MLPs; RealNVP: "
                            "ReLU ResNets) or gated (Flow++'s gated residual blocks; NICE: equal "
                            "flow-hidden widths)", choices=COUPLING_NETS)
    preprocess: str = dequantize_field()


def decoder_flow(cfg: VAEFlowDecoderConfig) -> tuple[Bijection, tuple[int, ...]]:
    """The data-space flow and the shape of its output (before flattening)."""
    c, h, w = cfg.image_shape
    if cfg.decoder_flow == "nice":
        return (nice_flow(cfg.image_shape, cfg.couplings, cfg.flow_hidden, net=cfg.coupling_net),
                (c * h * w,))
    flow_cfg = RealNVPConfig(image_shape=cfg.image_shape, scales=2, couplings=cfg.couplings,
                             width=cfg.width, coupling_net=cfg.coupling_net)
    if h % 2 or w % 2:
        raise ValueError(f"decoder_flow=realnvp needs even image sides (got {h}x{w})")
    flow = Compose([Logit(flow_cfg.logit_alpha), realnvp_flow((c, h, w), flow_cfg)])
    return flow, (4 * c, h // 2, w // 2)


class VAEFlowDecoder(VAE):
    """VAE with a flow-transformed Gaussian decoder: overrides only the likelihood hook
    (and decode/sample, which invert the flow). Posterior and prior are the VAE's, so the
    KL and its per-unit terms are too."""

    caps = Capabilities(encode=True, decode=True, prior="normal", likelihood="importance",
                        kl_per_dim=True, temperature=1.0, kl_warmup=True, q_density="gaussian")

    def __init__(self, cfg: VAEFlowDecoderConfig):
        if cfg.preprocess != "dequantize":
            raise ValueError("vae-flow-decoder models continuous pixels: preprocess must be dequantize")
        super().__init__(cfg)
        self.flow, self.flow_shape = decoder_flow(cfg)

    def _gaussian(self, z: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """z (..., d) -> mean and log-variance in flow space, (..., D) each."""
        mu, logvar = self.decoder_params(z).chunk(2, dim=-3)  # (..., C, H, W) each
        return mu.flatten(-3), logvar.flatten(-3).clamp(min=MIN_LOGVAR)

    def log_likelihood(self, x: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
        """log N(f(x); mu(z), sigma(z)^2) + log|det df/dx|: x (B, C, H, W), z (k, B, d) -> (k, B)."""
        y, log_det = self.flow(x)  # once per image, shared by the k samples
        mu, logvar = self._gaussian(z)  # (k, B, D)
        return log_normal(y.reshape(len(x), -1), mu, logvar).sum(-1) + log_det

    def _to_data(self, y: torch.Tensor) -> torch.Tensor:
        x, _ = self.flow.inverse(y.reshape(len(y), *self.flow_shape))
        return x.clamp(0, 1)

    def mlp_decoder(self) -> None:
        """None: the decoder network's output goes through the inverse flow."""
        return None

    @torch.no_grad()
    def decode(self, z: torch.Tensor) -> torch.Tensor:
        """f^{-1}(mu(z)) clamped to [0, 1]: (n, d) -> (n, C, H, W)."""
        return self._to_data(self._gaussian(z)[0])

    @torch.no_grad()
    def sample(self, n: int, temperature: float = 1.0) -> torch.Tensor:
        """x = f^{-1}(mu(z) + T sigma(z) eps), z ~ N(0, T^2 I), clamped to [0, 1]: the
        flow-space noise is a flow's base Gaussian, tempered like the prior (as in Glow)."""
        mu, logvar = self._gaussian(self.sample_prior(n, temperature))
        return self._to_data(mu + temperature * torch.exp(0.5 * logvar) * torch.randn_like(mu))
