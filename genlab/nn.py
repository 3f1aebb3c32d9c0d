"""Shared network blocks (MLPs, a small conv encoder/decoder and the one builder of the
autoencoders' encoder/decoder pairs, a ResNet block, the gated residual net of flow
couplings), the elementwise log-densities and the bits/dim conversion every model and the
evaluation use."""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn


def mlp(sizes: list[int] | tuple[int, ...], act: type[nn.Module] = nn.ReLU,
        out_act: nn.Module | None = None) -> nn.Sequential:
    """Linear layers of the given widths with ``act`` between them."""
    layers: list[nn.Module] = []
    for i, (a, b) in enumerate(zip(sizes[:-1], sizes[1:])):
        layers.append(nn.Linear(a, b))
        if i < len(sizes) - 2:
            layers.append(act())
    if out_act is not None:
        layers.append(out_act)
    return nn.Sequential(*layers)


def _down(size: int) -> int:
    return (size + 1) // 2  # a k=4, s=2, p=1 conv halves a side, rounding up


class ConvEncoder(nn.Module):
    """Two stride-2 convolutions and a linear head: (B, C, H, W) -> (B, out_dim)."""

    def __init__(self, shape: tuple[int, int, int], out_dim: int, width: int = 32, hidden: int = 256):
        super().__init__()
        c, h, w = shape
        self.net = nn.Sequential(
            nn.Conv2d(c, width, 4, 2, 1), nn.ReLU(),
            nn.Conv2d(width, 2 * width, 4, 2, 1), nn.ReLU(),
            nn.Flatten(),
            nn.Linear(2 * width * _down(_down(h)) * _down(_down(w)), hidden), nn.ReLU(),
            nn.Linear(hidden, out_dim),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


class ConvDecoder(nn.Module):
    """Mirror of :class:`ConvEncoder`: (B, in_dim) -> (B, out_channels, H, W)."""

    def __init__(self, in_dim: int, shape: tuple[int, int, int], out_channels: int,
                 width: int = 32, hidden: int = 256):
        super().__init__()
        _, h, w = shape
        self.h4, self.w4, self.width = _down(_down(h)), _down(_down(w)), width
        self.shape = (h, w)
        self.fc = nn.Sequential(nn.Linear(in_dim, hidden), nn.ReLU(),
                                nn.Linear(hidden, 2 * width * self.h4 * self.w4), nn.ReLU())
        self.net = nn.Sequential(
            nn.ConvTranspose2d(2 * width, width, 4, 2, 1), nn.ReLU(),
            nn.ConvTranspose2d(width, out_channels, 4, 2, 1),
        )

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        h = self.fc(z).view(-1, 2 * self.width, self.h4, self.w4)
        out = self.net(h)  # (B, out, 4*h4, 4*w4), cropped when H or W is not a multiple of 4
        return out[..., :self.shape[0], :self.shape[1]]


ARCHS = ("mlp", "conv")


def image_encoder(arch: str, shape: tuple[int, int, int], hidden: tuple[int, ...],
                  out_dim: int) -> nn.Module:
    """(B, C, H, W) -> (B, out_dim): an MLP through ``hidden`` (arch "mlp") or
    :class:`ConvEncoder` ("conv"). The encoder of vae, its variants, binary-vae, ae-gmm."""
    if arch == "mlp":
        return nn.Sequential(nn.Flatten(), mlp([math.prod(shape), *hidden, out_dim]))
    return ConvEncoder(shape, out_dim)


def image_decoder(arch: str, in_dim: int, shape: tuple[int, int, int], hidden: tuple[int, ...],
                  out_channels: int) -> nn.Module:
    """(B, in_dim) -> (B, out_channels, H, W): the mirror of :func:`image_encoder` (the MLP
    runs through ``hidden`` reversed)."""
    _, h, w = shape
    if arch == "mlp":
        return nn.Sequential(mlp([in_dim, *reversed(hidden), out_channels * h * w]),
                             nn.Unflatten(1, (out_channels, h, w)))
    return ConvDecoder(in_dim, shape, out_channels)


class ResBlock(nn.Module):
    """Pre-activation residual block with two 3x3 convolutions (He et al. 2016)."""

    def __init__(self, channels: int, norm: bool = True):
        super().__init__()
        Norm = nn.BatchNorm2d if norm else nn.Identity  # noqa: N806
        self.net = nn.Sequential(Norm(channels), nn.ReLU(), nn.Conv2d(channels, channels, 3, padding=1),
                                 Norm(channels), nn.ReLU(), nn.Conv2d(channels, channels, 3, padding=1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.net(x)


class ConcatELU(nn.Module):
    """ELU of x and of -x side by side along dimension 1: (B, C, ...) -> (B, 2C, ...), so no
    input is cut off (Salimans et al. 2017, PixelCNN++; Flow++)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.elu(torch.cat([x, -x], dim=1))


class ChannelNorm(nn.Module):
    """LayerNorm over the features (dimension 1) of vectors (B, C) or of every pixel of
    images (B, C, H, W), with a learned gain and bias per feature."""

    def __init__(self, channels: int, eps: float = 1e-5):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(channels))
        self.bias = nn.Parameter(torch.zeros(channels))
        self.eps = eps

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        shape = (1, -1, *([1] * (x.dim() - 2)))
        mean = x.mean(1, keepdim=True)
        var = x.var(1, unbiased=False, keepdim=True)
        return (x - mean) * torch.rsqrt(var + self.eps) * self.weight.view(shape) + self.bias.view(shape)


def _layer(c_in: int, c_out: int, conv: bool, kernel: int = 3) -> nn.Module:
    return nn.Conv2d(c_in, c_out, kernel, padding=kernel // 2) if conv else nn.Linear(c_in, c_out)


class GatedResBlock(nn.Module):
    """x + a * sigmoid(b), [a, b] = W2 concat_elu(W1 concat_elu(x)): the gated residual block
    of Flow++ (Ho et al. 2019) as the UvA deep-learning course's tutorial 11 writes it (W1 a
    3x3 convolution, W2 1x1; ``conv=False``: linear layers, for vectors)."""

    def __init__(self, channels: int, conv: bool = True):
        super().__init__()
        self.net = nn.Sequential(ConcatELU(), _layer(2 * channels, channels, conv),
                                 ConcatELU(), _layer(2 * channels, 2 * channels, conv, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        a, b = self.net(x).chunk(2, dim=1)  # (B, C, ...) each
        return x + a * torch.sigmoid(b)


def gated_net(c_in: int, width: int, c_out: int, blocks: int, conv: bool = True) -> nn.Sequential:
    """The gated coupling network (Flow++; UvA tutorial 11's GatedConvNet): a layer to
    ``width`` features, ``blocks`` x [GatedResBlock, ChannelNorm], ConcatELU and a last
    layer to ``c_out`` that starts at zero, so a coupling built on it starts as the
    identity. (B, c_in, H, W) -> (B, c_out, H, W), or (B, c_in) -> (B, c_out) with
    ``conv=False``."""
    layers: list[nn.Module] = [_layer(c_in, width, conv)]
    for _ in range(blocks):
        layers += [GatedResBlock(width, conv), ChannelNorm(width)]
    layers += [ConcatELU(), _layer(2 * width, c_out, conv)]
    nn.init.zeros_(layers[-1].weight)
    nn.init.zeros_(layers[-1].bias)
    return nn.Sequential(*layers)


LOG_2PI = math.log(2 * math.pi)


def bits_per_dim(nll_nats: float | torch.Tensor, num_dims: int) -> float | torch.Tensor:
    """bits/dim on 8-bit data from -log p(x) in nats (a float or a tensor) of a density on
    [0, 1]-scaled pixels: the 8-bit bins have width 1/256, so each of the D dimensions
    adds log 256 nats, and nats become bits by dividing by log 2,
    bpd = (nll + D ln 256) / (D ln 2)."""
    return (nll_nats + num_dims * math.log(256)) / (num_dims * math.log(2))


def log_normal(x: torch.Tensor, mu: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
    """Elementwise log N(x; mu, exp(logvar))."""
    return -0.5 * (LOG_2PI + logvar + (x - mu) ** 2 * torch.exp(-logvar))


def log_std_normal(x: torch.Tensor) -> torch.Tensor:
    """Elementwise log N(x; 0, 1)."""
    return -0.5 * (LOG_2PI + x ** 2)


def bernoulli_log_prob(logits: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """Elementwise log Bernoulli(x; sigmoid(logits)) = x l - softplus(l) for x in [0, 1], the
    negative of ``binary_cross_entropy_with_logits``; x broadcasts against the logits.

    Written as (x - 1/2) l - |l|/2 + log sigmoid(|l|), which is stable for any l and has the
    right gradient x - sigmoid(l) everywhere (l = 0 included). On CPU, sigmoid and log are
    vectorised where softplus and log1p are not: this is about twice as fast as the
    built-in, and it decides the speed of the importance-weighted log p(x) of the
    Bernoulli decoders. Error: a few float32 roundings per element (checked in
    tests/test_metrics.py against float64)."""
    a = logits.abs()
    out = torch.log(torch.sigmoid(a))  # log sigmoid(|l|) = -log(1 + exp(-|l|)), in (-log 2, 0]
    return out.sub_(a, alpha=0.5).addcmul_(x - 0.5, logits)
