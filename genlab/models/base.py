"""The one model contract every genlab model follows.

A model is an ``nn.Module`` built from a dataclass config. ``loss(x)`` returns a dict
with "loss" and named parts (per-image means, nats); ``sample(n)`` returns images in
[0, 1]. Models with several optimisers (GANs) override ``param_groups`` (the parameters
of each optimiser) and ``train_step``, so :func:`genlab.training.loop.fit` stays the one loop.

What a model can do beyond that is declared once per model class, in its ``caps``
(a :class:`Capabilities`): evaluation, exploration, the comparison code and the app read
that declaration and never probe a model for methods. What varies by family beyond the
declaration is a hook the class overrides (``log_q``, ``mlp_decoder``, ``upgrade_config``),
never a comparison of the family's name. Each registered class states its own ``caps`` in
its class body (a subclass that changes a hook cannot silently inherit a promise its parent
made); :func:`genlab.models.register` enforces it and gives the class its ``kind``.
"""
from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

import torch
from torch import nn

from ..config import OptimConfig, opt
from ..data import PREPROCESS, DatasetInfo, ImageData
from ..nn import ARCHS

LIKELIHOODS = ("exact", "importance")
PRIORS = ("normal", "bernoulli", "logistic", "learned")
Q_DENSITIES = ("gaussian", "flow")


# -- optimisers (the default configure_optimizers; the loop and the 2-D lab build theirs here)
_CLASSES = {"adam": torch.optim.Adam, "adamw": torch.optim.AdamW, "adamax": torch.optim.Adamax}


def _fused_supported(name: str, device: torch.device) -> bool:
    """Whether PyTorch has a fused step for optimiser ``name`` on ``device`` (Adam and
    AdamW on CPU, CUDA, MPS...; Adamax has none)."""
    if name == "adamax":
        return False
    try:
        p = nn.Parameter(torch.zeros(1, device=device))
        _CLASSES[name]([p], lr=1e-3, fused=True)
        return True
    except (RuntimeError, TypeError, ValueError):
        return False


def build_optimizers(groups: Sequence[Iterable[nn.Parameter]], cfg: OptimConfig, device: torch.device | str,
                     *, lr: float) -> list[torch.optim.Optimizer]:
    """One optimiser per parameter group (a GAN: [discriminator, generator]), all with
    ``cfg``'s optimizer, betas, eps and weight decay and learning rate ``lr``; fused where
    the device has a fused kernel for it, else foreach. ``cfg``: an OptimConfig or a config
    with its fields."""
    device = torch.device(device)
    cls = _CLASSES[cfg.optimizer]
    step = {"fused": True} if _fused_supported(cfg.optimizer, device) else {"foreach": True}
    return [cls(list(g), lr=lr, betas=tuple(cfg.betas), eps=cfg.eps,
                weight_decay=cfg.weight_decay, **step) for g in groups]


def step_kind(optimizer: torch.optim.Optimizer) -> str:
    """How the optimiser steps: "fused", "foreach" or "for-loop"."""
    if optimizer.defaults.get("fused"):
        return "fused"
    return "foreach" if optimizer.defaults.get("foreach") else "for-loop"


@dataclass(frozen=True)
class Capabilities:
    """What a model class offers besides ``loss`` and ``sample``.

    encode: ``encode(x)`` gives codes (B, d) of images (and ``decode`` maps them back).
    decode: ``decode(z)`` gives images in [0, 1] from latents (B, d) (a GAN's generator).
    prior: what ``sample_prior(n)`` draws latents (n, d) from: "normal" (N(0, I)),
        "bernoulli" (Bernoulli(1/2) units, latents in {0, 1}), "logistic" (standard
        logistic), "learned" (a flow or a fitted mixture); None: no latent prior.
    likelihood: how ``log_prob(x, k)`` gets log p(x) in nats per image: "exact" (change
        of variables; k is ignored) or "importance" (an importance-weighted estimate from
        k samples, low in expectation); None: no ``log_prob``.
    bijective: ``encode`` and ``decode`` invert each other (flows): the code is x
        transformed, so latent statistics (active units) say nothing about it.
    kl_per_dim: ``kl_per_dim(x)`` gives the KL of each latent unit (B, d), one value per
        unit, summing to the "kl" of the loss (factorised posterior and prior, KL in
        closed form). Opt-in: a model whose KL does not split over units leaves it False.
    mixture: the model carries a Gaussian mixture on its codes (``gmm``, and
        ``sample_component``), which the Clusters page draws.
    temperature: ``sample(n, temperature=T)`` tempers the prior (flows and Gaussian latents:
        z ~ N(0, T^2 I), Kingma & Dhariwal 2018; other priors scaled the same way, the GAN
        truncated: see each model's ``sample_prior``), and this is the family's default T
        for sample grids (1: the model as trained); None: the prior has no scale to temper
        (Bernoulli(1/2) units), so only T = 1 is accepted.
    max_temperature: the highest T ``sample`` takes (None: no bound; the GAN's truncation
        only narrows its noise: 1).
    kl_warmup: the loss weights its KL term by the model's ``kl_weight`` (its config's beta
        unless fit's KL warm-up sets it for the next step); "elbo" stays at weight 1.
    q_density: ``log_q(x, z)`` gives log q(z|x) at any latents z of a continuous latent
        space, next to ``log_likelihood(x, z)`` and ``log_prior(z)`` (what the true
        posterior's quadrature integrates): "gaussian" (the encoder's diagonal Gaussian,
        closed form) or "flow" (a Gaussian pushed through flows, which ``log_q`` inverts: a
        grid costs more); None: no density at a given z (no encoder distribution, or
        discrete units).
    conditional: class-conditional (genlab.models.conditional): ``loss(x, y)``,
        ``sample(n, temperature, y=...)``, ``log_prob(x, y, k=...)`` and, where it
        encodes or decodes, ``encode(x, y)``, ``decode(z, y)`` take class labels y (int64
        (B,) in 0..num_classes-1, num_classes from the dataset); ``class_log_probs(x, k)``
        gives log p(x|y) of every class (B, K) and ``log_class_prior`` log p(y). Without y,
        log_prob is log p(x) = logsumexp_y log p(x|y) + log p(y) and sample draws y ~ p(y).
        Callers that hold labels pass them through :meth:`GenerativeModel.label_kwargs`
        (``batch_loss`` in training), so no caller asks which kind of model it has.
    """
    encode: bool = False
    decode: bool = False
    prior: str | None = None
    likelihood: str | None = None
    bijective: bool = False
    kl_per_dim: bool = False
    mixture: bool = False
    temperature: float | None = None
    max_temperature: float | None = None
    kl_warmup: bool = False
    q_density: str | None = None
    conditional: bool = False

    def __post_init__(self):
        if self.likelihood not in (None, *LIKELIHOODS):
            raise ValueError(f"likelihood must be one of {', '.join(LIKELIHOODS)} or None "
                             f"(got {self.likelihood!r})")
        if self.prior not in (None, *PRIORS):
            raise ValueError(f"prior must be one of {', '.join(PRIORS)} or None (got {self.prior!r})")
        if self.encode and not self.decode:
            raise ValueError("a model that encodes must also decode")
        if self.q_density not in (None, *Q_DENSITIES):
            raise ValueError(f"q_density must be one of {', '.join(Q_DENSITIES)} or None "
                             f"(got {self.q_density!r})")
        if (self.kl_per_dim or self.bijective or self.mixture or self.q_density) and not self.encode:
            raise ValueError("kl_per_dim, bijective, mixture and q_density need encode")
        if self.bijective and self.likelihood != "exact":
            raise ValueError("a bijective model has an exact likelihood")
        if self.temperature is not None and (self.prior is None or not self.temperature > 0):
            raise ValueError("a default temperature needs a prior and must be > 0")

    @property
    def latent_stats(self) -> bool:
        """The codes are a latent variable's (active units, code variance make sense)."""
        return self.encode and not self.bijective


def image_shape_field() -> Any:
    return opt((1, 28, 28), "image shape (C, H, W); set from the dataset", lo=1, cli=False)


def preprocess_field(default: str) -> Any:
    return opt(default, "how uint8 pixels become inputs: dynamic/static binarisation or "
               "uniform dequantisation to [0, 1]", choices=PREPROCESS)


def latent_dim_field(default: int) -> Any:
    return opt(default, "size of the latent z", lo=1, hi=1024)


@dataclass
class AutoencoderConfig:
    """The fields every encoder/decoder model shares (vae and its variants, binary-vae,
    ae-gmm); each model's config extends it and sets its own ``latent_dim`` default."""
    image_shape: tuple[int, ...] = image_shape_field()
    latent_dim: int = latent_dim_field(20)
    arch: str = opt("mlp", "encoder/decoder: MLP or a small convolutional net", choices=ARCHS)
    hidden: tuple[int, ...] = opt((512, 512), "MLP hidden widths, comma-separated (arch=mlp)",
                                  lo=1, hi=8192)


@dataclass
class VariationalConfig(AutoencoderConfig):
    """An autoencoder trained on the ELBO: adds the KL weight."""
    beta: float = opt(1.0, "weight on the KL term (1 = the ELBO)", lo=0.0, hi=100.0)


class GenerativeModel(nn.Module):
    """Base class: holds the config, a default single-optimiser step, and ``caps``."""

    kind: ClassVar[str] = ""  # the registry name ("vae"), set by genlab.models.register
    caps: ClassVar[Capabilities] = Capabilities()
    # how log_prob gets log p(x) and with what proposal (written to eval.json); a model
    # whose proposal depends on its config or state makes ``proposal`` a property
    log_prob_method: ClassVar[str | None] = None
    proposal: ClassVar[str | None] = None
    # how a model of 8-bit data fills each pixel's bin (eval.json: genlab.evaluation.metrics.
    # DEQUANTIZATION_BOUNDS); the flows make it a property of their config
    dequantization: ClassVar[str] = "uniform"

    def __init__(self, cfg: Any):
        super().__init__()
        self.cfg = cfg

    # -- the contract ---------------------------------------------------------
    def loss(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        raise NotImplementedError

    def sample(self, n: int, temperature: float = 1.0) -> torch.Tensor:
        raise NotImplementedError

    def label_kwargs(self, y: torch.Tensor | int | None) -> dict:
        """The keyword arguments that hand class labels ``y`` to this model's ``loss``,
        ``sample``, ``log_prob``, ``encode`` and ``decode``: ``{"y": y}`` for a class-conditional
        model (``caps.conditional``), ``{}`` for the others, which ignore labels. A caller
        holding labels writes ``model.log_prob(x, k=k, **model.label_kwargs(y))``."""
        return {"y": y} if self.caps.conditional else {}

    def batch_loss(self, x: torch.Tensor, y: torch.Tensor | None) -> dict[str, torch.Tensor]:
        """The loss of a batch x with its class labels y (B,): ``loss(x, y)`` for a
        class-conditional model, ``loss(x)`` for the others (the training loop, validation
        and the distributed step call this, so they hand every model its batch's labels)."""
        return self.loss(x, **self.label_kwargs(y))

    @torch.no_grad()
    def seeded_sample(self, n: int, temperature: float = 1.0, *, seed: int = 0,
                      y: torch.Tensor | int | None = None) -> torch.Tensor:
        """``sample(n, temperature)`` drawn with ``seed``, the global RNG left as it was (the
        epoch grids, ``genlab sample`` and the app's draws); images (n, C, H, W) in [0, 1] on
        the model's device. A temperature the model cannot take is a one-line ValueError.
        ``y``: class labels for a class-conditional model (ignored by the others)."""
        t = self.check_temperature(temperature)
        with torch.random.fork_rng(devices=[self.device] if self.device.type == "cuda" else []):
            torch.manual_seed(seed)
            return self.sample(n, temperature=t, **self.label_kwargs(y))

    def sample_grid(self, n: int, temperature: float = 1.0, *,
                    seed: int = 0) -> tuple[torch.Tensor, int]:
        """The epoch's sample grid: (images, images per row), ``n`` seeded samples in rows
        of about sqrt(n); a class-conditional model makes one row per class instead."""
        return self.seeded_sample(n, temperature, seed=seed), int(math.ceil(math.sqrt(n)))

    def temperature_range(self) -> tuple[float, float, float] | None:
        """(lowest, highest, default) temperature a slider offers for this model's samples
        (highest: ``caps.max_temperature``, else 1.5); None when it samples at T = 1 only."""
        if self.caps.temperature is None:
            return None
        return 0.05, self.caps.max_temperature or 1.5, self.caps.temperature

    def check_temperature(self, temperature: float) -> float:
        """``temperature`` if this model can sample at it, else ValueError in one line."""
        t = float(temperature)
        if not (math.isfinite(t) and t > 0):
            raise ValueError(f"temperature must be a number > 0 (got {temperature})")
        if self.caps.temperature is None and t != 1.0:
            raise ValueError(f"{self.kind} has no sampling temperature (its {self.caps.prior} "
                             f"prior has no scale to temper): only temperature 1 (got {t:g})")
        top = self.caps.max_temperature
        if top is not None and t > top:
            raise ValueError(f"{self.kind}'s temperature must be > 0 and <= {top:g} (got {t:g})")
        return t

    @classmethod
    def dataset_options(cls, info: DatasetInfo) -> dict:
        """The model options a dataset sets, not the user (new runs take them from the
        dataset's :class:`~genlab.data.DatasetInfo`): its image shape; a class-conditional
        model also its number of classes."""
        return {"image_shape": info.shape}

    @classmethod
    def upgrade_config(cls, model_config: dict, train: dict) -> tuple[dict, dict]:
        """A run's model and training config dicts as an older genlab wrote them, in today's
        fields (config.json and checkpoints are read through this); ValueError in one line
        when they contradict. Nothing changed here; a family whose fields moved overrides it."""
        return model_config, train

    def mlp_decoder(self) -> tuple[nn.Module, str] | None:
        """The network that maps latents (B, d) to the decoder's output, and how that output
        becomes pixels in [0, 1], for runtimes that evaluate the decoder as a plain MLP
        (genlab.evaluation.mlp_export, the browser's live decoder): "sigmoid" (logits), "tanh01"
        ((tanh(t) + 1) / 2 of a network ending in tanh) or "clamp" (its first C*H*W outputs
        are the pixel means, clamped). None: decode is more than one network (a flow)."""
        return None

    @property
    def preprocess(self) -> str:
        """How the data pipeline turns uint8 pixels into this model's inputs."""
        return self.cfg.preprocess

    @property
    def prior_family(self) -> str | None:
        """``caps.prior``, or what this instance's config chose (NICE: logistic/normal)."""
        return self.caps.prior

    @property
    def device(self) -> torch.device:
        return next(self.parameters()).device

    # -- training -------------------------------------------------------------
    def param_groups(self) -> list[list[nn.Parameter]]:
        """The parameters of each optimiser, in the order ``train_step`` takes the
        optimisers (one group by default; a GAN: discriminator, generator)."""
        return [list(self.parameters())]

    def configure_optimizers(self, lr: float, options: OptimConfig | None = None) -> list[torch.optim.Optimizer]:
        """One optimiser per :meth:`param_groups` group, as ``options`` (a TrainConfig or
        OptimConfig; default: Adam with PyTorch's betas) says: build_optimizers."""
        return build_optimizers(self.param_groups(), options or OptimConfig(), self.device, lr=lr)

    def train_step(self, x: torch.Tensor, optimizers: list[torch.optim.Optimizer], *,
                   clip_grad: float | None = None,
                   y: torch.Tensor | None = None) -> dict[str, torch.Tensor]:
        """One optimisation step on batch x (with its labels y, which only a class-conditional
        model reads: :meth:`batch_loss`); returns the detached loss parts."""
        (optimizer,) = optimizers
        out = self.batch_loss(x, y)
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
    def eval_metrics(self, x: torch.Tensor, y: torch.Tensor | None = None) -> dict[str, torch.Tensor]:
        """Per-batch metrics for validation and test (the loss parts of :meth:`batch_loss`
        by default; y: the batch's labels)."""
        return self.batch_loss(x, y)


class LatentVariableModel(GenerativeModel):
    """p(x) = integral of p(x|z) p(z) dz, with log p(x) estimated by importance sampling
    (Burda et al. 2016): for z_1..z_k ~ r(z|x),

        log p(x) ~= logsumexp_l log w_l - log k,   w_l = p(x|z_l) p(z_l) / r(z_l|x),

    low in expectation (Jensen) and tightening as k grows. Subclasses give
    ``log_weights(x, k)`` and say what r is in ``proposal``; the one ``log_prob`` here
    draws the samples in passes of about ``SAMPLES_PER_PASS`` (k x images) decoder rows."""

    # decoder rows per pass: enough for efficient matrix products, few enough that a pass's
    # temporaries (1024 x 784 float32 logits = 3.2 MB) are reused by the C allocator: from
    # 2048 rows on, glibc hands them out as fresh pages, and the page faults cost a third
    # of the time on CPU (benchmarks/eval_speed.py); memory stays bounded for any k
    SAMPLES_PER_PASS: ClassVar[int] = 1024

    def log_weights(self, x: torch.Tensor, k: int) -> torch.Tensor:
        """log p(x, z) - log r(z|x) for k draws z ~ r(z|x): (k, B)."""
        raise NotImplementedError

    def kl_per_dim(self, x: torch.Tensor) -> torch.Tensor:
        """KL of each latent unit (B, d), for models that declare ``caps.kl_per_dim``."""
        raise TypeError(f"{type(self).__name__} declares no per-dimension KL "
                        "(caps.kl_per_dim is False)")

    def log_q(self, x: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
        """log q(z|x) at latents z (G, B, d) for images x (B, C, H, W): (G, B), for models
        that declare ``caps.q_density``."""
        raise TypeError(f"{type(self).__name__} declares no posterior density at a given z "
                        "(caps.q_density is None)")

    @torch.inference_mode()
    def log_prob(self, x: torch.Tensor, k: int = 1, chunk: int | None = None) -> torch.Tensor:
        """Importance-weighted estimate of log p(x) in nats per image (B,) from k samples,
        ``chunk`` at a time (default: SAMPLES_PER_PASS // B, so memory stays bounded)."""
        chunk = chunk or max(1, self.SAMPLES_PER_PASS // len(x))
        parts = [self.log_weights(x, min(chunk, k - i)) for i in range(0, k, chunk)]
        return torch.logsumexp(torch.cat(parts, 0), 0) - math.log(k)
