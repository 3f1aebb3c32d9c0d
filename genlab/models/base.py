"""The one model contract every genlab model follows (see DESIGN.md).

A model is an ``nn.Module`` built from a dataclass config. ``loss(x)`` returns a dict
with "loss" and named parts (per-image means, nats); ``sample(n)`` returns images in
[0, 1]. Latent models add ``encode``/``decode``; likelihood models add
``log_prob(x, k)``. Models with several optimisers (GANs) override
``configure_optimizers`` and ``train_step``, so :func:`genlab.train.fit` stays the one loop.
"""
from __future__ import annotations

import math
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
    # how log_prob gets log p(x): "exact (change of variables)" for flows, else the
    # proposal of its importance-weighted estimate (written to eval.json)
    proposal: ClassVar[str | None] = None

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


class LatentVariableModel(GenerativeModel):
    """p(x) = integral of p(x|z) p(z) dz, with log p(x) estimated by importance sampling
    (Burda et al. 2016): for z_1..z_k ~ r(z|x),

        log p(x) ~= logsumexp_l log w_l - log k,   w_l = p(x|z_l) p(z_l) / r(z_l|x),

    low in expectation (Jensen) and tightening as k grows. Subclasses give
    ``log_weights(x, k)`` and say what r is in ``proposal``; the one ``log_prob`` here
    draws the samples in passes of about ``SAMPLES_PER_PASS`` (k x images) decoder rows."""

    has_latent = True
    has_likelihood = True
    # decoder rows per pass: enough for efficient matrix products, few enough that a pass's
    # temporaries (1024 x 784 float32 logits = 3.2 MB) are reused by the C allocator: from
    # 2048 rows on, glibc hands them out as fresh pages, and the page faults cost a third
    # of the time on CPU (benchmarks/eval_speed.py); memory stays bounded for any k
    SAMPLES_PER_PASS: ClassVar[int] = 1024

    def log_weights(self, x: torch.Tensor, k: int) -> torch.Tensor:
        """log p(x, z) - log r(z|x) for k draws z ~ r(z|x): (k, B)."""
        raise NotImplementedError

    @torch.inference_mode()
    def log_prob(self, x: torch.Tensor, k: int = 1, chunk: int | None = None) -> torch.Tensor:
        """Importance-weighted estimate of log p(x) in nats per image (B,) from k samples,
        ``chunk`` at a time (default: SAMPLES_PER_PASS // B, so memory stays bounded)."""
        chunk = chunk or max(1, self.SAMPLES_PER_PASS // len(x))
        parts = [self.log_weights(x, min(chunk, k - i)) for i in range(0, k, chunk)]
        return torch.logsumexp(torch.cat(parts, 0), 0) - math.log(k)
