"""The model registry: name -> (model class, config class).

The CLI, the checkpoint loader, evaluation and the app all read this one dict.
"""
from __future__ import annotations

from .ae_gmm import AEGMM, AEGMMConfig
from .base import GenerativeModel
from .binary_vae import BinaryVAE, BinaryVAEConfig
from .gan import DCGAN, GAN, DCGANConfig, GANConfig
from .nice import NICE, NICEConfig
from .realnvp import RealNVP, RealNVPConfig
from .vae import VAE, VAEConfig
from .vae_flow_decoder import VAEFlowDecoder, VAEFlowDecoderConfig
from .vae_flow_posterior import VAEFlowPosterior, VAEFlowPosteriorConfig
from .vae_flow_prior import VAEFlowPrior, VAEFlowPriorConfig

MODELS: dict[str, tuple[type[GenerativeModel], type]] = {
    "vae": (VAE, VAEConfig),
    "binary-vae": (BinaryVAE, BinaryVAEConfig),
    "ae-gmm": (AEGMM, AEGMMConfig),
    "gan": (GAN, GANConfig),
    "dcgan": (DCGAN, DCGANConfig),
    "vae-flow-prior": (VAEFlowPrior, VAEFlowPriorConfig),
    "vae-flow-posterior": (VAEFlowPosterior, VAEFlowPosteriorConfig),
    "nice": (NICE, NICEConfig),
    "realnvp": (RealNVP, RealNVPConfig),
    "vae-flow-decoder": (VAEFlowDecoder, VAEFlowDecoderConfig),
}


def model_entry(name: str) -> tuple[type[GenerativeModel], type]:
    if name not in MODELS:
        raise ValueError(f"unknown model {name!r}; choose one of {', '.join(MODELS)}")
    return MODELS[name]


def build_model(name: str, config: dict) -> GenerativeModel:
    """Rebuild a model from its registry name and config dict (as in config.json)."""
    from ..config import from_dict

    cls, cfg_cls = model_entry(name)
    return cls(from_dict(cfg_cls, config, what=f"config of model {name!r}"))
