"""The model registry: name -> (model class, config class).

The CLI, the checkpoint loader, evaluation and the app all read this one dict.

To add a model: a config dataclass of ``opt()`` fields (an encoder/decoder model extends
``base.AutoencoderConfig``, or ``base.VariationalConfig`` for an ELBO with a KL weight);
a class with ``kind`` and its own ``caps = Capabilities(...)`` saying what it offers
(everything else - eval.json, the pages, the Compare bound - follows from that); the
hooks those caps promise (a VAE variant overrides a few of ``vae.VAE``'s: ``posterior``,
``posterior_sample``, ``log_prior``, ``kl_terms`` or ``kl``, ``log_likelihood``); one line
below; and a test file that runs tests/contract.py's checks on a tiny config.
"""
from __future__ import annotations

from .ae_gmm import AEGMM, AEGMMConfig
from .base import GenerativeModel
from .binary_vae import BinaryVAE, BinaryVAEConfig
from .gan import DCGAN, GAN, DCGANConfig, GANConfig, fold_adam_beta1
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


def upgrade_config(model: str, model_config: dict, train: dict) -> tuple[dict, dict]:
    """A run's model and training config dicts as an older genlab wrote them, in today's
    fields (config.json and a checkpoint's config are read through this): a GAN's
    adam_beta1 becomes train.betas. ValueError in one line when they contradict."""
    if model in ("gan", "dcgan"):
        return fold_adam_beta1(model_config, train)
    return model_config, train


def build_model(name: str, config: dict) -> GenerativeModel:
    """Rebuild a model from its registry name and config dict (as in config.json, or a
    checkpoint's, older fields included: :func:`upgrade_config`)."""
    from ..config import from_dict

    cls, cfg_cls = model_entry(name)
    config = upgrade_config(name, config, {})[0]
    return cls(from_dict(cfg_cls, config, what=f"config of model {name!r}"))
