"""The one model contract every genlab model follows (see DESIGN.md).

A model is an ``nn.Module`` built from a dataclass config. ``loss(x)`` returns a dict
with "loss" and named parts (per-image means, nats); ``sample(n)`` returns images in
[0, 1]. Latent models add ``encode``/``decode``; likelihood models add
``log_prob(x, k)``. Models with several optimisers (GANs) override
``configure_optimizers`` and ``train_step``, so :func:`genlab.train.fit` stays the one loop.
"""
from __future__ import annotations

from typing import ClassVar

import torch
from torch import nn

from ..config import opt
from ..data import PREPROCESS, ImageData


def image_shape_field():
    return opt((1, 28, 28), "image shape (C, H, W); set from the dataset", lo=1, cli=False)


def preprocess_field(default: str):
    return opt(default, "how uint8 pixels become inputs: dynamic/static binarisation or "
               "uniform dequantisation to [0, 1]", choices=PREPROCESS)


class GenerativeModel(nn.Module):
    """Base class: holds the config, a default single-optimiser step, and the flags
    the CLI, evaluation and the app use to decide what a model can do."""

    kind: ClassVar[str] = ""           # registry name, e.g. "vae"
    has_latent: ClassVar[bool] = False  # encode/decode available
    has_likelihood: ClassVar[bool] = False  # log_prob available

    def __init__(self, cfg):
        super().__init__()
        self.cfg = cfg

    # -- the contract ---------------------------------------------------------
    def loss(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        raise NotImplementedError

    def sample(self, n: int) -> torch.Tensor:
        raise NotImplementedError

    @property
    def preprocess(self) -> str:
        """How the data pipeline turns uint8 pixels into this model's inputs."""
        return self.cfg.preprocess

    @property
    def device(self) -> torch.device:
        return next(self.parameters()).device

    # -- training -------------------------------------------------------------
    def configure_optimizers(self, lr: float) -> list[torch.optim.Optimizer]:
        return [torch.optim.Adam(self.parameters(), lr=lr)]

    def train_step(self, x: torch.Tensor, optimizers: list[torch.optim.Optimizer], *,
                   clip_grad: float | None = None) -> dict[str, torch.Tensor]:
        """One optimisation step on batch x; returns the detached loss parts."""
        (optimizer,) = optimizers
        out = self.loss(x)
        optimizer.zero_grad(set_to_none=True)
        out["loss"].backward()
        if clip_grad:
            nn.utils.clip_grad_norm_(self.parameters(), clip_grad)
        optimizer.step()
        return {k: v.detach() for k, v in out.items()}

    def on_epoch_end(self, train: ImageData) -> None:
        """Called by fit() after each epoch's training steps, before validation and the
        checkpoint, with the prepared training split (e.g. to fit a mixture on the codes)."""

    @torch.no_grad()
    def eval_metrics(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        """Per-batch metrics for validation and test (the loss parts by default)."""
        return self.loss(x)
