"""Conditional GAN: a generator G(z, y) and a discriminator D(x, y) that both read a
learned embedding of the class label.

Reference:
> M. Mirza, S. Osindero. Conditional Generative Adversarial Nets. arXiv:1411.1784, 2014.
> I. Goodfellow et al. Generative Adversarial Nets. NeurIPS 2014.

genlab's MLP :class:`~genlab.models.gan.GAN` (its two-player step, losses and truncation
untouched) with the label's embedding concatenated to z at the generator's input and to
the flattened image at the discriminator's (Mirza & Osindero feed y to both players; an
embedding in place of their one-hot, as common implementations do). The fakes of a
training step get the real batch's labels, so their classes follow the data's. Each
player's embedding sits inside that player's network, so it trains with that player's
optimiser.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import torch
from torch import nn

from ..config import opt
from .conditional import ClassConditional, num_classes_field
from .gan import GAN, GENERATOR_CAPS, GANConfig


@dataclass
class CGANConfig(GANConfig):
    label_dim: int = opt(10, "size of each player's learned label embedding", lo=1, hi=1024)
    num_classes: int = num_classes_field()


class LabelledInput(nn.Module):
    """net([h flattened, embedding(y)]): a player that also reads the label."""

    def __init__(self, net: nn.Module, classes: int, dim: int):
        super().__init__()
        self.embed = nn.Embedding(classes, dim)
        self.net = net

    def forward(self, h: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return self.net(torch.cat([h.flatten(1), self.embed(y)], dim=1))


class CGAN(ClassConditional, GAN):
    """Conditional MLP GAN (Mirza & Osindero 2014): G(z, y), D(x, y); no likelihood, so no
    generative classifier (its caps say so)."""

    caps = dataclasses.replace(GENERATOR_CAPS, conditional=True)

    def __init__(self, cfg: CGANConfig):
        super().__init__(cfg, label_dim=cfg.label_dim)
        self.generator = LabelledInput(self.generator, cfg.num_classes, cfg.label_dim)
        self.discriminator = LabelledInput(self.discriminator, cfg.num_classes, cfg.label_dim)
        self.init_classes(cfg.num_classes)

    def loss(self, x: torch.Tensor, y: torch.Tensor | None = None) -> dict[str, torch.Tensor]:
        return super().loss(x, self.labels(self.needs_labels(y), len(x)))

    def train_step(self, x: torch.Tensor, optimizers: list[torch.optim.Optimizer], *,
                   clip_grad: float | None = None,
                   y: torch.Tensor | None = None) -> dict[str, torch.Tensor]:
        return super().train_step(x, optimizers, clip_grad=clip_grad,
                                  y=self.labels(self.needs_labels(y, "train_step"), len(x)))

    def generate(self, z: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        return self.generator(z, self.labels(self.needs_labels(y, "generate"), len(z)))

    def critic(self, x: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        return self.discriminator(x, self.labels(self.needs_labels(y), len(x)))

    def decode_given(self, z: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return (self.generate(z, y) + 1) / 2

    def sample_given(self, n: int, temperature: float, y: torch.Tensor) -> torch.Tensor:
        return self.decode_given(self.sample_prior(n, temperature), y)

    def mlp_decoder(self) -> None:
        """Not exported: the generator reads [z, label embedding], not z alone."""
        return None
