"""Generative adversarial networks: an MLP GAN and a DCGAN.

Reference:
> I. Goodfellow et al. Generative Adversarial Nets. NeurIPS 2014.
> A. Radford, L. Metz, S. Chintala. Unsupervised Representation Learning with Deep
> Convolutional Generative Adversarial Networks. ICLR 2016.

Both models share :class:`_GAN`: two optimisers (discriminator first, generator
second), the discriminator's binary cross-entropy on logits and the non-saturating
generator loss -E[log D(G(z))]. Images are [0, 1] in and out; the networks work in
[-1, 1] (tanh generator output). There is no encoder and no likelihood (their ``caps``
say so), but ``sample_prior`` and ``decode`` expose the generator so latents can be
interpolated.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from ..config import opt
from .base import Capabilities, GenerativeModel, image_shape_field, preprocess_field

# a generator from N(0, I) latents: decode and a prior, no encoder, no log p(x); sample
# grids at T = 1 only (the untruncated noise it was trained on)
GENERATOR_CAPS = Capabilities(decode=True, prior="normal", temperature=1.0, max_temperature=1.0)
LEGACY_BETA1 = "adam_beta1"  # a model option before genlab had train.betas (both players' beta1)


def _latent_field():
    return opt(100, "size of the latent z", lo=1, hi=1024)


def fold_adam_beta1(model_config: dict, train: dict) -> tuple[dict, dict]:
    """A GAN config as genlab wrote it before train.betas existed, in today's fields: its
    model option adam_beta1 was the beta1 of both players' Adam (beta2 0.999), which is now
    train.betas. ValueError (one line) when a config has both and they disagree."""
    if LEGACY_BETA1 not in model_config:
        return model_config, train
    model_config = dict(model_config)
    beta1 = model_config.pop(LEGACY_BETA1)
    train = dict(train)
    if "betas" not in train:
        train["betas"] = [beta1, 0.999]
    elif not isinstance(train["betas"], (list, tuple)) or not train["betas"] or \
            train["betas"][0] != beta1:
        raise ValueError(f"model_config.adam_beta1 ({beta1}) and train.betas ({train['betas']}) "
                         "disagree: adam_beta1 is now the first of train.betas; remove it")
    return model_config, train


def truncated_noise(n: int, d: int, temperature: float,
                    device: torch.device | str) -> torch.Tensor:
    """(n, d) standard normal draws truncated to [-tau, tau] where the truncated normal's
    standard deviation is ``temperature`` T <= 1 (T = 1: no truncation). The truncation
    trick of Brock et al. 2019 (BigGAN), its threshold picked so that T means what it means
    for flows (the noise's std); drawn by the inverse CDF, so no value lies beyond tau."""
    if temperature >= 1.0:
        return torch.randn(n, d, device=device)
    tau = truncation_threshold(temperature)
    lo = torch.special.ndtr(torch.tensor(-tau, dtype=torch.float64))
    u = torch.rand(n, d, dtype=torch.float64, device=device)
    z = torch.special.ndtri(lo + u * (1 - 2 * lo))  # (n, d) in [-tau, tau]
    return z.clamp(-tau, tau).float()


def truncation_threshold(std: float) -> float:
    """tau with Var(Z | |Z| <= tau) = std^2 for Z ~ N(0, 1), 0 < std < 1 (bisection on
    1 - 2 tau phi(tau) / (2 Phi(tau) - 1), which rises from 0 to 1)."""
    def var(tau: float) -> float:
        mass = math.erf(tau / math.sqrt(2))  # P(|Z| <= tau)
        return 1 - 2 * tau * math.exp(-tau * tau / 2) / math.sqrt(2 * math.pi) / mass
    lo, hi = 1e-9, 40.0
    for _ in range(200):
        mid = (lo + hi) / 2
        lo, hi = (mid, hi) if var(mid) < std * std else (lo, mid)
    return (lo + hi) / 2


@dataclass
class GANConfig:
    image_shape: tuple[int, ...] = image_shape_field()
    latent_dim: int = _latent_field()
    hidden: tuple[int, ...] = opt((128, 256, 512, 1024), "generator MLP hidden widths, "
                                  "comma-separated", lo=1, hi=8192)
    d_hidden: tuple[int, ...] = opt((512, 256), "discriminator MLP hidden widths", lo=1, hi=8192)
    dropout: float = opt(0.3, "dropout after each discriminator hidden layer", lo=0.0, hi=0.9)
    preprocess: str = preprocess_field("dequantize")


@dataclass
class DCGANConfig:
    image_shape: tuple[int, ...] = image_shape_field()
    latent_dim: int = _latent_field()
    width: int = opt(64, "channels at the finest resolution; doubled at each coarser level",
                     lo=1, hi=1024)
    preprocess: str = preprocess_field("dequantize")


class _GAN(GenerativeModel):
    """Shared adversarial training; subclasses build ``generator`` (z (B, d) -> (B, C, H, W)
    in [-1, 1]) and ``discriminator`` ((B, C, H, W) in [-1, 1] -> logits (B,))."""

    generator: nn.Module
    discriminator: nn.Module

    def param_groups(self) -> list[list[nn.Parameter]]:
        """[discriminator's, generator's] parameters: two optimisers, in the order
        train_step uses them (their betas are train.betas; 0.5, 0.999 per DCGAN)."""
        return [list(self.discriminator.parameters()), list(self.generator.parameters())]

    @staticmethod
    def _bce(logits: torch.Tensor, target: float) -> torch.Tensor:
        return F.binary_cross_entropy_with_logits(logits, torch.full_like(logits, target))

    def _parts(self, real_logit, fake_logit, g_logit) -> dict[str, torch.Tensor]:
        d_loss = self._bce(real_logit, 1.0) + self._bce(fake_logit, 0.0)  # optimum log 4
        g_loss = self._bce(g_logit, 1.0)  # non-saturating: -E log D(G(z)); optimum log 2
        return {"loss": d_loss + g_loss, "d_loss": d_loss, "g_loss": g_loss,
                "d_real": torch.sigmoid(real_logit).mean(), "d_fake": torch.sigmoid(fake_logit).mean()}

    def generate(self, z: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        """G: latents (B, d) -> images (B, C, H, W) in [-1, 1]; y: class labels (B,), which
        only a class-conditional GAN's generator reads."""
        return self.generator(z)

    def critic(self, x: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        """D: images (B, C, H, W) in [-1, 1] -> logits (B,); y as in :meth:`generate`."""
        return self.discriminator(x)

    def loss(self, x: torch.Tensor, y: torch.Tensor | None = None) -> dict[str, torch.Tensor]:
        """Both players' losses on batch x (B, C, H, W) in [0, 1] and fresh z (the fakes of a
        class-conditional GAN get the batch's labels y).

        "loss" is L_D + L_G, the sum of the two players' objectives (log 4 + log 2 =
        log 8 at the equilibrium p_G = p_data); neither player minimises it alone, it is
        one number for progress bars and the NaN guard. "d_loss" = -E log D(x) -
        E log(1 - D(G(z))), "g_loss" = -E log D(G(z)), "d_real" = mean D(x),
        "d_fake" = mean D(G(z))."""
        real = 2 * x - 1  # (B, C, H, W) in [-1, 1]
        fake = self.generate(self.sample_prior(len(x)), y)  # (B, C, H, W)
        fake_logit = self.critic(fake, y)  # (B,)
        return self._parts(self.critic(real, y), fake_logit, fake_logit)

    def train_step(self, x: torch.Tensor, optimizers: list[torch.optim.Optimizer], *,
                   clip_grad: float | None = None,
                   y: torch.Tensor | None = None) -> dict[str, torch.Tensor]:
        """One discriminator step, then one generator step on the same fake batch (y: the
        batch's labels, for a class-conditional GAN: its fakes get the same labels).

        Returns the detached parts of :meth:`loss`: "loss" = L_D + L_G, "d_loss",
        "g_loss", "d_real" = mean D(x), "d_fake" = mean D(G(z)) (both before the D step)."""
        opt_d, opt_g = optimizers
        real = 2 * x - 1  # (B, C, H, W) in [-1, 1]
        fake = self.generate(self.sample_prior(len(x)), y)  # (B, C, H, W)
        real_logit = self.critic(real, y)  # (B,)
        fake_logit = self.critic(fake.detach(), y)  # (B,)
        d_loss = self._bce(real_logit, 1.0) + self._bce(fake_logit, 0.0)
        self._step(opt_d, d_loss, self.discriminator, clip_grad)

        self.discriminator.requires_grad_(False)  # G's step needs gradients w.r.t. fake only
        try:
            g_logit = self.critic(fake, y)  # (B,), the updated D
            g_loss = self._bce(g_logit, 1.0)
            self._step(opt_g, g_loss, self.generator, clip_grad)
        finally:
            self.discriminator.requires_grad_(True)
        with torch.no_grad():
            out = self._parts(real_logit, fake_logit, g_logit)
        return {k: v.detach() for k, v in out.items()}

    @staticmethod
    def _step(optimizer, loss: torch.Tensor, net: nn.Module, clip_grad: float | None) -> None:
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        if clip_grad:
            nn.utils.clip_grad_norm_(net.parameters(), clip_grad)
        optimizer.step()

    @torch.no_grad()
    def eval_metrics(self, x: torch.Tensor, y: torch.Tensor | None = None) -> dict[str, torch.Tensor]:
        """D and G losses on a validation batch (no dropout, batch-norm running stats)."""
        return self.batch_loss(x, y)

    # -- generator interface ----------------------------------------------------------
    def sample_prior(self, n: int, temperature: float = 1.0) -> torch.Tensor:
        """z (n, d): N(0, I), truncated below temperature 1 (:func:`truncated_noise`: the
        GAN was trained on N(0, I) noise, so it is narrowed, never scaled; T <= 1)."""
        t = self.check_temperature(temperature)  # <= caps.max_temperature = 1
        return truncated_noise(n, self.cfg.latent_dim, t, self.device)  # (n, d)

    @torch.no_grad()
    def decode(self, z: torch.Tensor) -> torch.Tensor:
        """The generator: latents (n, d) -> images (n, C, H, W) in [0, 1]."""
        return (self.generator(z) + 1) / 2

    def mlp_decoder(self) -> tuple[nn.Module, str]:
        """The generator, whose last layer is tanh (the DCGAN's is convolutional: the export
        finds it is not an MLP)."""
        return self.generator, "tanh01"

    @classmethod
    def upgrade_config(cls, model_config: dict, train: dict) -> tuple[dict, dict]:
        """An older GAN's model option adam_beta1 becomes train.betas (:func:`fold_adam_beta1`)."""
        return fold_adam_beta1(model_config, train)

    @torch.no_grad()
    def sample(self, n: int, temperature: float = 1.0) -> torch.Tensor:
        return self.decode(self.sample_prior(n, temperature))


# -- the MLP GAN ----------------------------------------------------------------------
def _mlp_generator(d: int, widths: tuple[int, ...], out_dim: int) -> nn.Sequential:
    """z -> widths[0] (LeakyReLU) -> widths[1:] (Linear, BatchNorm, LeakyReLU) -> tanh."""
    layers: list[nn.Module] = []
    for i, (a, b) in enumerate(zip((d, *widths[:-1]), widths)):
        layers.append(nn.Linear(a, b))
        if i > 0:  # no batch norm on the first layer, as in the usual MLP GAN
            layers.append(nn.BatchNorm1d(b))
        layers.append(nn.LeakyReLU(0.2))
    layers += [nn.Linear(widths[-1], out_dim), nn.Tanh()]
    return nn.Sequential(*layers)


def _mlp_discriminator(in_dim: int, widths: tuple[int, ...], dropout: float) -> nn.Sequential:
    layers: list[nn.Module] = [nn.Flatten()]
    for a, b in zip((in_dim, *widths[:-1]), widths):
        layers += [nn.Linear(a, b), nn.LeakyReLU(0.2), nn.Dropout(dropout)]
    layers += [nn.Linear(widths[-1], 1), nn.Flatten(0)]  # (B,) logits
    return nn.Sequential(*layers)


class GAN(_GAN):
    """MLP GAN (Goodfellow et al. 2014) in the fully connected form commonly used on MNIST:
    generator latent -> 128 -> 256 -> 512 -> 1024 -> C*H*W with LeakyReLU(0.2), batch norm
    and a tanh output; discriminator C*H*W -> 512 -> 256 -> 1 logit with LeakyReLU(0.2)
    and dropout."""

    caps = GENERATOR_CAPS

    def __init__(self, cfg: GANConfig, *, label_dim: int = 0):
        super().__init__(cfg)
        shape = tuple(cfg.image_shape)
        D = math.prod(shape)  # label_dim: inputs beside z and x (a label embedding's)
        self.generator = nn.Sequential(_mlp_generator(cfg.latent_dim + label_dim, cfg.hidden, D),
                                       nn.Unflatten(1, shape))
        self.discriminator = _mlp_discriminator(D + label_dim, cfg.d_hidden, cfg.dropout)


# -- DCGAN -----------------------------------------------------------------------------
def _levels(h: int, w: int) -> int:
    """Stride-2 levels above 4x4 so that the padded side 4 * 2**L covers H and W."""
    return max(1, math.ceil(math.log2(max(h, w) / 4)))


def _dcgan_init(m: nn.Module) -> None:
    """Weights N(0, 0.02), batch-norm scales N(1, 0.02), as in Radford et al."""
    if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d)):
        nn.init.normal_(m.weight, 0.0, 0.02)
    elif isinstance(m, nn.BatchNorm2d):
        nn.init.normal_(m.weight, 1.0, 0.02)
        nn.init.zeros_(m.bias)


class _ConvGenerator(nn.Module):
    """z (B, d) -> 4x4 -> ... -> (B, C, S, S) by transposed convs, then the centre crop to (H, W)."""

    def __init__(self, d: int, shape: tuple[int, int, int], width: int):
        super().__init__()
        c, self.h, self.w = shape
        L = _levels(self.h, self.w)
        ch = [width * 2 ** i for i in reversed(range(L))]  # e.g. [256, 128, 64]
        layers: list[nn.Module] = [nn.ConvTranspose2d(d, ch[0], 4, 1, 0, bias=False),
                                   nn.BatchNorm2d(ch[0]), nn.ReLU()]  # (B, ch0, 4, 4)
        for a, b in zip(ch[:-1], ch[1:]):
            layers += [nn.ConvTranspose2d(a, b, 4, 2, 1, bias=False), nn.BatchNorm2d(b), nn.ReLU()]
        layers += [nn.ConvTranspose2d(ch[-1], c, 4, 2, 1), nn.Tanh()]  # (B, C, S, S)
        self.net = nn.Sequential(*layers)
        self.side = 4 * 2 ** L

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        out = self.net(z[:, :, None, None])  # (B, C, S, S)
        top, left = (self.side - self.h) // 2, (self.side - self.w) // 2
        return out[:, :, top:top + self.h, left:left + self.w]  # (B, C, H, W)


class _ConvDiscriminator(nn.Module):
    """(B, C, H, W) -> pad with -1 (black) to (B, C, S, S) -> stride-2 convs -> logits (B,)."""

    def __init__(self, shape: tuple[int, int, int], width: int):
        super().__init__()
        c, self.h, self.w = shape
        L = _levels(self.h, self.w)
        self.side = 4 * 2 ** L
        ch = [width * 2 ** i for i in range(L)]  # e.g. [64, 128, 256]
        layers: list[nn.Module] = [nn.Conv2d(c, ch[0], 4, 2, 1), nn.LeakyReLU(0.2)]
        for a, b in zip(ch[:-1], ch[1:]):
            layers += [nn.Conv2d(a, b, 4, 2, 1, bias=False), nn.BatchNorm2d(b), nn.LeakyReLU(0.2)]
        layers += [nn.Conv2d(ch[-1], 1, 4, 1, 0), nn.Flatten(0)]  # (B,) logits
        self.net = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        top, left = (self.side - self.h) // 2, (self.side - self.w) // 2
        pad = (left, self.side - self.w - left, top, self.side - self.h - top)
        return self.net(F.pad(x, pad, value=-1.0))  # (B, C, S, S) -> (B,)


class DCGAN(_GAN):
    """Deep convolutional GAN (Radford et al. 2016) for 32x32 images such as SVHN:
    transposed-conv generator with batch norm and ReLU, strided-conv discriminator with
    LeakyReLU(0.2) and batch norm. Smaller images (28x28 MNIST) are padded to 32x32
    inside the discriminator and the generator's output is cropped back."""

    caps = GENERATOR_CAPS

    def __init__(self, cfg: DCGANConfig):
        super().__init__(cfg)
        shape = tuple(cfg.image_shape)
        self.generator = _ConvGenerator(cfg.latent_dim, shape, cfg.width)
        self.discriminator = _ConvDiscriminator(shape, cfg.width)
        self.apply(_dcgan_init)
