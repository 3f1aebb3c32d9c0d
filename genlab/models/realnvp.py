"""RealNVP: multi-scale affine coupling flow on logit-transformed dequantised pixels.

Reference:
> L. Dinh, J. Sohl-Dickstein, S. Bengio. Density estimation using Real NVP. ICLR 2017.
> (ActNorm from D. P. Kingma, P. Dhariwal. Glow. NeurIPS 2018.)

Options (off by default) from: D. P. Kingma, P. Dhariwal, Glow: Generative Flow with
Invertible 1x1 Convolutions, NeurIPS 2018 (the 1x1 convolution); J. Ho, X. Chen, A. Srinivas,
Y. Duan, P. Abbeel, Flow++, ICML 2019 (gated coupling nets, variational dequantisation).

x in [0, 1] -> Logit(alpha) -> per scale: checkerboard couplings, squeeze, channel
couplings, factor out half the channels -> last scale: checkerboard couplings (``scales=1``:
a single scale of checkerboard couplings). Every coupling is followed by an ActNorm
(``actnorm``) and, with ``permute=conv1x1``, preceded by an invertible 1x1 convolution; its
net is a ReLU ResNet or Flow++'s gated net (``coupling_net``). The Logit's log-determinant
is part of log p(x), so log p(x) is a density on [0, 1]-scaled pixels and bits/dim on 8-bit
data is exact (with ``dequantization=variational``, a bound: genlab.models.flow).
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from ..config import opt
from ..flows import (COUPLING_NETS, ActNorm, AffineCoupling, Bijection, Compose, FactorOut,
                     Inverse, InvertibleLinear, Logit, Squeeze, channel_mask, checkerboard_mask)
from ..nn import ResBlock, gated_net
from .base import image_shape_field
from .flow import (FlowModel, dequant_couplings_field, dequant_width_field, dequantization_field,
                   dequantize_field, flow_caps)

PERMUTES = ("alternate", "conv1x1")


@dataclass
class RealNVPConfig:
    image_shape: tuple[int, ...] = image_shape_field()
    scales: int = opt(2, "number of scales (each but the last squeezes and factors out half)",
                      lo=1, hi=5)
    couplings: int = opt(3, "coupling layers per mask type per scale (the last scale has one more)",
                         lo=1, hi=16)
    width: int = opt(32, "channels of the ResNet coupling nets", lo=1, hi=1024)
    res_blocks: int = opt(1, "residual blocks per coupling net", lo=0, hi=16)
    coarse_nets: bool = opt(True, "coupling nets of even-sized scales run on the squeezed input "
                            "(half resolution, 4x cheaper; the masks are unchanged)")
    coupling_net: str = opt("plain", "coupling nets: plain (ReLU ResNet) or gated (Flow++'s "
                            "gated residual blocks with LayerNorm, last layer at zero)",
                            choices=COUPLING_NETS)
    actnorm: bool = opt(True, "an ActNorm (Glow: per-channel affine, initialised from the first "
                        "batch) after every coupling")
    permute: str = opt("alternate", "between couplings: alternate (the masks alternate) or "
                       "conv1x1 (also Glow's invertible 1x1 convolution, LU-parametrised, "
                       "before each coupling on more than one channel)", choices=PERMUTES)
    logit_alpha: float = opt(0.05, "logit preprocessing: x -> logit(alpha + (1 - 2 alpha) x)",
                             lo=0.0, lo_open=True, hi=0.49)
    dequantization: str = dequantization_field()
    dequant_couplings: int = dequant_couplings_field()
    dequant_width: int = dequant_width_field()
    preprocess: str = dequantize_field()


class ConvConditioner(nn.Module):
    """Conv conditioner: (B, C, H, W) -> (B, 2C, H, W) = [raw log-scale, shift], a ReLU
    ResNet (``net="plain"``) or Flow++'s gated net (``"gated"``, genlab.nn.gated_net); the
    output convolution starts at zero so each coupling starts as the identity.
    ``context`` features (B, K) (a class-conditional flow's one-hot label), when the net
    takes them, enter as K constant input channels."""

    def __init__(self, channels: int, width: int, blocks: int, coarse: bool = False,
                 context: int = 0, net: str = "plain"):
        super().__init__()
        self.coarse = coarse  # run at half resolution on the squeezed input (4x cheaper)
        c_in = 4 * channels if coarse else channels
        if net == "gated":
            self.net = gated_net(c_in + context, width, 2 * c_in, blocks)
            return
        self.net = nn.Sequential(
            nn.Conv2d(c_in + context, width, 3, padding=1),
            *[ResBlock(width, norm=False) for _ in range(blocks)],
            nn.ReLU(), nn.Conv2d(width, 2 * c_in, 3, padding=1))
        nn.init.zeros_(self.net[-1].weight)
        nn.init.zeros_(self.net[-1].bias)

    def forward(self, x: torch.Tensor, context: torch.Tensor | None = None) -> torch.Tensor:
        h = F.pixel_unshuffle(x, 2) if self.coarse else x  # (B, 4C, H/2, W/2) or (B, C, H, W)
        if context is not None:  # (B, K) -> K constant planes
            h = torch.cat([h, context[:, :, None, None].expand(-1, -1, *h.shape[2:])], dim=1)
        if not self.coarse:
            return self.net(h)  # (B, 2C, H, W)
        s, t = self.net(h).chunk(2, dim=1)  # (B, 4C, H/2, W/2) each
        return torch.cat([F.pixel_shuffle(s, 2), F.pixel_shuffle(t, 2)], dim=1)  # (B, 2C, H, W)


def _couplings(masks: list[torch.Tensor], cfg: RealNVPConfig, context: int = 0,
               seed: int = 0) -> list[Bijection]:
    """A coupling per mask, each with the ActNorm after it and the 1x1 convolution before it
    that ``cfg`` asks for (the convolutions' random rotations seeded from ``seed`` on)."""
    layers: list[Bijection] = []
    for i, mask in enumerate(masks):
        c, h, w = mask.shape[1:]
        coarse = cfg.coarse_nets and h % 2 == 0 and w % 2 == 0 and h * w > 1
        net = ConvConditioner(c, cfg.width, cfg.res_blocks, coarse, context, cfg.coupling_net)
        if cfg.permute == "conv1x1" and c > 1:  # of one channel it is a scale: ActNorm's
            layers.append(InvertibleLinear(c, seed=seed + i))
        layers.append(AffineCoupling(mask, net))
        if cfg.actnorm:
            layers.append(ActNorm(c))
    return layers


def realnvp_flow(shape: tuple[int, ...], cfg: RealNVPConfig, level: int = 0,
                 context: int = 0) -> Bijection:
    """The multi-scale flow on (C, H, W) (without the Logit), built recursively; its
    coupling nets take ``context`` features beside their input (0: none)."""
    c, h, w = shape
    n = cfg.couplings
    seed = 1000 * level  # the 1x1 convolutions' seeds: distinct across the whole flow
    if level == cfg.scales - 1:
        masks = [checkerboard_mask(c, h, w, i % 2) for i in range(n + 1)]
        return Compose(_couplings(masks, cfg, context, seed))
    checker = [checkerboard_mask(c, h, w, i % 2) for i in range(n)]
    channel = [channel_mask(4 * c, i % 2) for i in range(n)]
    head = Compose([*_couplings(checker, cfg, context, seed), Squeeze(),
                    *_couplings(channel, cfg, context, seed + n)])
    scale = FactorOut(head, realnvp_flow((2 * c, h // 2, w // 2), cfg, level + 1, context))
    # the output has the squeezed shape; inner scales unsqueeze it back so it matches
    # the half of the outer scale's channels it stands for
    return scale if level == 0 else Compose([scale, Inverse(Squeeze())])


class RealNVP(FlowModel):
    """RealNVP (Dinh et al. 2017): affine couplings with tanh-stabilised scales, checkerboard
    and channel masks, squeeze and factor-out across scales, conv ResNet (or Flow++ gated)
    coupling nets, ActNorm, optionally Glow's 1x1 convolutions, and a counted logit
    preprocessing; Gaussian prior on the latent."""

    caps = flow_caps("normal")
    prior = "gaussian"

    def __init__(self, cfg: RealNVPConfig, *, context: int = 0):
        if cfg.preprocess != "dequantize":
            raise ValueError("realnvp models continuous pixels: preprocess must be dequantize")
        c, h, w = cfg.image_shape
        side = 2 ** (cfg.scales - 1)
        if h % side or w % side:
            raise ValueError(f"scales={cfg.scales} needs image sides divisible by {side} "
                             f"(got {h}x{w}); use fewer scales")
        super().__init__(cfg, Compose([Logit(cfg.logit_alpha), realnvp_flow((c, h, w), cfg,
                                                                             context=context)]))

    def _flow_shape(self, shape: tuple[int, ...]) -> tuple[int, ...]:
        c, h, w = shape
        return (4 * c, h // 2, w // 2) if self.cfg.scales > 1 else (c, h, w)
