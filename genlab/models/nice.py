"""NICE: additive coupling layers and a diagonal scaling on dequantised pixels.

Reference:
> L. Dinh, D. Krueger, Y. Bengio. NICE: Non-linear Independent Components Estimation.
> ICLR 2015 workshop (arXiv:1410.8516).

What every flow model shares (exact log-likelihood, sampling, the flow latent as
encode/decode, the priors, the dequantisation) is :class:`genlab.models.flow.FlowModel`.
Options (off by default) from J. Ho et al., Flow++, ICML 2019: gated coupling nets
(``coupling_net``) and variational dequantisation (``dequantization``).
"""
from __future__ import annotations

import math
from dataclasses import dataclass

from ..config import opt
from ..flows import COUPLING_NETS, Bijection, Compose, DiagonalScaling, vector_coupling
from .base import image_shape_field
from .flow import (FLOW_PRIORS, FlowModel, dequant_couplings_field, dequant_width_field,
                   dequantization_field, dequantize_field, flow_caps)


class _Flatten(Bijection):
    """(B, C, H, W) <-> (B, C*H*W), volume preserving."""

    def __init__(self, shape: tuple[int, ...]):
        super().__init__()
        self.shape = tuple(shape)

    def forward(self, x, context=None):
        return x.reshape(len(x), -1), x.new_zeros(len(x))

    def inverse(self, y, context=None):
        return y.reshape(len(y), *self.shape), y.new_zeros(len(y))


@dataclass
class NICEConfig:
    image_shape: tuple[int, ...] = image_shape_field()
    couplings: int = opt(4, "number of coupling layers (partitions alternate)", lo=2, hi=32)
    hidden: tuple[int, ...] = opt((1000, 1000, 1000), "MLP hidden widths of each coupling net, "
                                  "comma-separated", lo=1, hi=8192)
    coupling_net: str = opt("plain", "coupling nets: plain (ReLU MLP) or gated (Flow++'s gated "
                            "residual blocks with LayerNorm: the first hidden width, then one "
                            "block per further width; the widths must be equal)",
                            choices=COUPLING_NETS)
    prior: str = opt("logistic", "latent prior", choices=FLOW_PRIORS)
    dequantization: str = dequantization_field()
    dequant_couplings: int = dequant_couplings_field()
    dequant_width: int = dequant_width_field()
    preprocess: str = dequantize_field()


PRIOR_STD = {"logistic": math.pi / math.sqrt(3), "gaussian": 1.0}


def nice_flow(shape: tuple[int, ...], couplings: int, hidden: tuple[int, ...],
              init_std: float | None = None, context: int = 0, *, net: str = "plain") -> Compose:
    """Flatten, additive couplings on odd/even pixels in turn, then the diagonal scaling
    (data-initialised to outputs of std ``init_std`` when given); the coupling nets (``net``:
    plain MLPs or gated, genlab.flows.vector_coupling) take ``context`` features beside
    their input (0: none)."""
    dim = math.prod(shape)
    layers = [vector_coupling(dim, hidden, i % 2, context, additive=True, mask_kind="alternate",
                              net=net)
              for i in range(couplings)]
    return Compose([_Flatten(shape), *layers, DiagonalScaling(dim, init_std)])


class NICE(FlowModel):
    """NICE (Dinh et al. 2014): additive couplings with MLP nets on alternating halves of
    the pixels, a diagonal scaling exp(s), and a logistic or Gaussian prior;
    log p(x) = log p_Z(f(x)) + sum_i s_i."""

    # the class-level prior is the default config's; an instance reports its own choice
    # through ``prior_family`` (a Gaussian-prior NICE has the standard normal prior)
    caps = flow_caps("logistic")

    def __init__(self, cfg: NICEConfig, *, context: int = 0):
        if cfg.preprocess != "dequantize":
            raise ValueError("nice models continuous pixels: preprocess must be dequantize")
        super().__init__(cfg, nice_flow(cfg.image_shape, cfg.couplings, cfg.hidden,
                                        PRIOR_STD[cfg.prior], context, net=cfg.coupling_net))
        self.prior = cfg.prior

    def _flow_shape(self, shape: tuple[int, ...]) -> tuple[int, ...]:
        return (math.prod(shape),)
