"""Class-conditional RealNVP and NICE: the label enters every coupling network, and the
base distribution has a learned mean and log-scale per class.

Reference:
> L. Dinh, J. Sohl-Dickstein, S. Bengio. Density estimation using Real NVP. ICLR 2017.
> L. Dinh, D. Krueger, Y. Bengio. NICE: Non-linear Independent Components Estimation.
> ICLR 2015 workshop (arXiv:1410.8516).
> D. P. Kingma, P. Dhariwal. Glow: Generative Flow with Invertible 1x1 Convolutions.
> NeurIPS 2018 (the class-conditional prior, ``ycond`` in openai/glow model.py).

log p(x|y) = log p_base(f(x; y) | y) + log|det df/dx|, with the one-hot y beside every
coupling net's input (RealNVP: K constant channels; NICE: K more MLP inputs), and
p_base(z|y) the family's prior (standard normal; NICE also the logistic) moved to a mean
mu_y and scaled by exp(s_y) per dimension, as Glow's ycond learns them (from zero: at
initialisation every class has the unconditional prior). The change of variables is exact,
so log p(x|y), log p(x) = logsumexp_y log p(x|y) + log p(y) and the classifier are exact.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import torch
from torch import nn

from ..nn import bits_per_dim
from .base import Capabilities
from .conditional import ClassConditional, num_classes_field
from .flow import flow_caps, prior_log_prob, prior_sample
from .nice import NICE, NICEConfig
from .realnvp import RealNVP, RealNVPConfig


class ClassBase(nn.Module):
    """Glow's ycond: a learned mean and log-scale per class and dimension, (K, 2D) from 0."""

    def __init__(self, classes: int, dim: int):
        super().__init__()
        self.table = nn.Embedding(classes, 2 * dim)
        nn.init.zeros_(self.table.weight)

    def forward(self, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        mu, log_scale = self.table(y).chunk(2, dim=-1)  # (B, D) each
        return mu, log_scale


class ConditionalFlow(ClassConditional):
    """What the class-conditional flows share (placed before RealNVP or NICE)."""

    class_base: ClassBase

    def init_conditional(self, num_classes: int) -> None:
        self.init_classes(num_classes)
        self.class_base = ClassBase(num_classes, self.D)

    def log_prob_given(self, x: torch.Tensor, y: torch.Tensor, k: int = 1, **_) -> torch.Tensor:
        """Exact log p(x|y) (B,); k is ignored."""
        z, log_det = self(x, self.one_hot(y, x))  # (B, D), (B,)
        mu, log_scale = self.class_base(y)  # (B, D) each
        u = (z - mu) * torch.exp(-log_scale)
        return prior_log_prob(u, self.prior) - log_scale.sum(-1) + log_det

    def loss(self, x: torch.Tensor, y: torch.Tensor | None = None) -> dict[str, torch.Tensor]:
        nll = -self.log_prob_given(x, self.labels(self.needs_labels(y), len(x)))  # (B,)
        return {"loss": nll.mean(), "bpd": bits_per_dim(nll, self.D).mean()}

    def sample_given(self, n: int, temperature: float, y: torch.Tensor) -> torch.Tensor:
        """u ~ the prior at temperature T, z = mu_y + exp(s_y) u, x = f^-1(z; y)."""
        u = prior_sample(n, self.D, self.prior, self.log_class_prior, temperature)  # (n, D)
        mu, log_scale = self.class_base(y)
        z = mu + torch.exp(log_scale) * u.to(mu.dtype)
        return self.inverse(z, self.one_hot(y, z)).clamp(0, 1)

    @torch.no_grad()
    def encode(self, x: torch.Tensor, y: torch.Tensor | int | None = None) -> torch.Tensor:
        """z = f(x; y) (B, D); without y, under the class the model predicts (exact)."""
        y = self.infer(x, y)
        return self(x, self.one_hot(y, x))[0]

    def decode_given(self, z: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return self.inverse(z, self.one_hot(y, z)).clamp(0, 1)


def _flow_caps(prior: str) -> Capabilities:
    """A flow's capabilities (genlab.models.flow.flow_caps), class-conditional."""
    return dataclasses.replace(flow_caps(prior), conditional=True)


@dataclass
class RealNVPCondConfig(RealNVPConfig):
    num_classes: int = num_classes_field()


class RealNVPCond(ConditionalFlow, RealNVP):
    """Class-conditional RealNVP: the one-hot label as K more input channels of every
    coupling's ResNet, and Glow's per-class base N(mu_y, diag exp(2 s_y))."""

    caps = _flow_caps("normal")

    def __init__(self, cfg: RealNVPCondConfig):
        super().__init__(cfg, context=cfg.num_classes)
        self.init_conditional(cfg.num_classes)


@dataclass
class NICECondConfig(NICEConfig):
    num_classes: int = num_classes_field()


class NICECond(ConditionalFlow, NICE):
    """Class-conditional NICE: the one-hot label as K more inputs of every additive
    coupling's MLP, and the prior (logistic or normal) moved and scaled per class."""

    caps = _flow_caps("logistic")

    def __init__(self, cfg: NICECondConfig):
        super().__init__(cfg, context=cfg.num_classes)
        self.init_conditional(cfg.num_classes)
