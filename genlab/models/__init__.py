"""The model registry: the one place a family's name lives.

Each family is one :class:`Family` entry in :data:`FAMILIES`: its name, model class and
config class, the training defaults its papers state (with their sources), and the tiny
config the tests build it with. The CLI (its options, ``train --help``), new runs, the
checkpoint loader, evaluation, the app's pages and the benchmarks all read this registry;
everything else that varies by family is asked of the model class: its ``caps``
(:class:`~genlab.models.base.Capabilities`) and its hooks. Nothing outside this module
compares a family's name.

To add a family (docs/adding-a-family.md): its model file (a config dataclass of ``opt()``
fields; a class with its own ``caps = Capabilities(...)`` and the hooks those caps promise),
one ``Family(...)`` entry below (or :func:`register` from your own code), and its test file,
which runs tests/contract.py's checks on the entry's tiny config.
"""
from __future__ import annotations

import dataclasses
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

from ..config import TRAIN_KEYS, TrainConfig, defaults, option_names
from .ae_gmm import AEGMM, AEGMMConfig
from .base import Capabilities, GenerativeModel
from .binary_vae import BinaryVAE, BinaryVAEConfig
from .cgan import CGAN, CGANConfig
from .cvae import CVAE, CVAEConfig
from .flow_cond import NICECond, NICECondConfig, RealNVPCond, RealNVPCondConfig
from .gan import DCGAN, GAN, DCGANConfig, GANConfig
from .nice import NICE, NICEConfig
from .realnvp import RealNVP, RealNVPConfig
from .vae import VAE, VAEConfig
from .vae_flow_decoder import VAEFlowDecoder, VAEFlowDecoderConfig
from .vae_flow_posterior import VAEFlowPosterior, VAEFlowPosteriorConfig
from .vae_flow_prior import VAEFlowPrior, VAEFlowPriorConfig

__all__ = ["FAMILIES", "MODELS", "Capabilities", "Family", "GenerativeModel", "build_model",
           "conditional_variants", "family", "family_defaults", "family_sources",
           "legacy_values", "model_entry", "register", "unconditional_family", "upgrade_config"]

NAME_RE = re.compile(r"[a-z][a-z0-9]*(-[a-z0-9]+)*")  # "vae-flow-prior": a CLI and file-name word


@dataclass(frozen=True)
class Family:
    """One model family. ``defaults``: the training options (OptimConfig fields and
    TrainConfig's lr, batch_size, clip_grad) its papers state, which a new run takes where
    the user sets none; ``sources``: where each value comes from, one line a claim (shown
    by ``train --help`` and the Train form). ``tiny``: model options small enough that a
    step on 8x8 images takes milliseconds (the tests). ``legacy``: the values it trained
    with before these options existed, where they differ from TrainConfig's.
    ``unconditional``: for a class-conditional variant (``caps.conditional``), the family it
    is the variant of (what the Compare page sets beside it)."""
    name: str
    model_cls: type[GenerativeModel]
    config_cls: type
    defaults: Mapping[str, Any] = field(default_factory=dict)
    sources: tuple[str, ...] = ()
    tiny: Mapping[str, Any] = field(default_factory=dict)
    legacy: Mapping[str, Any] = field(default_factory=dict)
    unconditional: str | None = None

    def __post_init__(self):
        what = f"model family {self.name!r}"
        if not isinstance(self.name, str) or not NAME_RE.fullmatch(self.name):
            raise ValueError(f"{what}: a name is lower-case words joined by hyphens, like 'vae-flow-prior'")
        if not (isinstance(self.model_cls, type) and issubclass(self.model_cls, GenerativeModel)):
            raise TypeError(f"{what}: model_cls must be a genlab.models.base.GenerativeModel subclass")
        if not dataclasses.is_dataclass(self.config_cls):
            raise TypeError(f"{what}: config_cls must be a dataclass of opt() fields")
        allowed = (*option_names(), *TRAIN_KEYS)
        for key, table in (("defaults", self.defaults), ("legacy", self.legacy)):
            wrong = [k for k in table if k not in allowed]
            if wrong:
                raise ValueError(f"{what}: {key} names {wrong[0]!r}, not a training option a "
                                 f"family sets ({', '.join(allowed)})")
        if self.defaults and not self.sources:
            raise ValueError(f"{what}: training defaults need their sources")
        if self.unconditional is not None and not self.model_cls.caps.conditional:
            raise ValueError(f"{what}: only a class-conditional model (caps.conditional) is "
                             f"the variant of an unconditional family")
        object.__setattr__(self, "sources", tuple(self.sources))


FAMILIES: dict[str, Family] = {}


def register(fam: Family) -> Family:
    """Add ``fam`` to the registry, so that the CLI, new runs, the checkpoint loader, the
    pages and the benchmarks know it; its model class's ``kind`` becomes the family's name.
    The class must declare its own ``caps`` (a subclass that changed a hook cannot silently
    inherit its parent's promise) and belong to no other family."""
    cls = fam.model_cls
    if fam.name in FAMILIES:
        raise ValueError(f"model family {fam.name!r} is registered already")
    if "caps" not in vars(cls):
        raise TypeError(f"{cls.__name__} (family {fam.name!r}) must declare its own caps")
    if vars(cls).get("kind") not in (None, fam.name):
        raise ValueError(f"{cls.__name__} is family {cls.kind!r}'s class already; "
                         f"subclass it for {fam.name!r}")
    base = FAMILIES.get(fam.unconditional) if fam.unconditional is not None else None
    if fam.unconditional is not None and (base is None or base.model_cls.caps.conditional):
        raise ValueError(f"model family {fam.name!r}: its unconditional family "
                         f"{fam.unconditional!r} is not a registered unconditional family")
    cls.kind = fam.name
    FAMILIES[fam.name] = fam
    return fam


class _Pairs(Mapping):
    """name -> (model class, config class), read from FAMILIES (read-only)."""

    def __getitem__(self, name: str) -> tuple[type[GenerativeModel], type]:
        fam = FAMILIES[name]
        return fam.model_cls, fam.config_cls

    def __iter__(self) -> Iterator[str]:
        return iter(FAMILIES)

    def __len__(self) -> int:
        return len(FAMILIES)

    def __repr__(self) -> str:
        return f"MODELS({', '.join(FAMILIES)})"


MODELS: Mapping[str, tuple[type[GenerativeModel], type]] = _Pairs()


def family(name: str) -> Family:
    """The registry entry of ``name``; ValueError in one line naming the known families."""
    if name not in FAMILIES:
        raise ValueError(f"unknown model {name!r}; choose one of {', '.join(FAMILIES)}")
    return FAMILIES[name]


def model_entry(name: str) -> tuple[type[GenerativeModel], type]:
    """(model class, config class) of family ``name``; ValueError when unknown."""
    fam = family(name)
    return fam.model_cls, fam.config_cls


def unconditional_family(name: str) -> str | None:
    """The family that class-conditional family ``name`` is the variant of (None for the
    others)."""
    return family(name).unconditional


def conditional_variants(name: str) -> list[str]:
    """The class-conditional families that are variants of family ``name``."""
    family(name)
    return [f.name for f in FAMILIES.values() if f.unconditional == name]


def family_defaults(name: str) -> dict:
    """The option overrides for model ``name`` that its papers state: OptimConfig fields
    plus the TrainConfig fields lr, batch_size and clip_grad."""
    if name not in FAMILIES:
        raise ValueError(f"no training defaults for model {name!r}; known: {', '.join(FAMILIES)}")
    return dict(FAMILIES[name].defaults)


def family_sources(name: str) -> tuple[str, ...]:
    """Where each of :func:`family_defaults`'s values for ``name`` comes from."""
    family_defaults(name)
    return FAMILIES[name].sources


def legacy_values(name: str) -> dict:
    """The values genlab trained ``name`` with before these options existed, for each
    option :func:`family_defaults` sets: passing them reproduces an old run's recipe (the
    CLI fills unset options from the family defaults)."""
    plain = defaults(TrainConfig)
    return {k: family(name).legacy.get(k, plain[k]) for k in family_defaults(name)}


def upgrade_config(model: str, model_config: dict, train: dict) -> tuple[dict, dict]:
    """A run's model and training config dicts as an older genlab wrote them, in today's
    fields (config.json and a checkpoint's config are read through this): the model class's
    ``upgrade_config`` hook (a GAN's adam_beta1 becomes train.betas). ValueError in one
    line when they contradict."""
    return family(model).model_cls.upgrade_config(model_config, train)


def build_model(name: str, config: dict) -> GenerativeModel:
    """Rebuild a model from its registry name and config dict (as in config.json, or a
    checkpoint's, older fields included: :func:`upgrade_config`)."""
    from ..config import from_dict

    cls, cfg_cls = model_entry(name)
    config = upgrade_config(name, config, {})[0]
    return cls(from_dict(cfg_cls, config, what=f"config of model {name!r}"))


# -- the training defaults, from the papers ------------------------------------------------
# Each: the option values and the sources, one line per claim. "verified" names what the
# value was read from (the authors' code, a reimplementation, the paper's text as quoted);
# a value without it says why it was chosen.
_VAE_SOURCES = (
    "Burda et al. 2016 (IWAE), verified in the authors' code (yburda/iwae experiments.py, "
    "optimizers.py): Adam with lr 1e-3 and eps 1e-4. beta1 0.9, beta2 0.999 as reproductions "
    "quote the paper (martinigoyanes/iwae); the authors' code defaults to beta1 0.99. Their "
    "decay (lr 1e-3 * 10^(-i/7) for 3^i epochs, 3280 epochs in all) is --lr-schedule burda; "
    "it is not the default because it is made for 3280 epochs: at CPU budgets of minutes a "
    "constant rate did better (benchmarks/results/learning_curves-cpu.md: Burda's decay and "
    "x 0.97 per epoch both stayed behind it at equal CPU time).",
    "Minibatch 100 as in Kingma & Welling 2014 (M = 100), not Burda's 20: on one CPU thread "
    "20 trains half the images per second and stayed 3.8-4.4 nats behind today's batch 128 "
    "at equal CPU time (benchmarks/results/learning_curves-paper-vae.md).",
    "Polyak averaging as in Glow's code (openai/glow optim.py, verified): decay 1 - 1/(steps "
    "per epoch) = 1 - 1/550 at minibatch 100 on 55,000 images.",
)
_KL_WARMUP = "KL warm-up: Sonderby et al. 2016 (deterministic warm-up, linear from 0)"
_VAE = {
    "defaults": {"optimizer": "adam", "lr": 1e-3, "betas": (0.9, 0.999), "eps": 1e-4,
                 "lr_schedule": "constant", "batch_size": 100, "ema_decay": 0.9982,
                 "kl_warmup_epochs": 10.0},
    "sources": (*_VAE_SOURCES,
                _KL_WARMUP + ", over 10 epochs, a length chosen for CPU budgets: on MNIST, paired "
                "at one thread each, the 784-512-512-20 VAE reached 87.74 nats against the old "
                "recipe's 89.60 after 10 CPU-minutes (averaging alone: 89.21 against 89.33; "
                "benchmarks/results/learning_curves-vae-warmup.md)."),
}
_VAE_WARMUP = {  # the flow-augmented and binary VAEs: a short warm-up (not measured longer)
    "defaults": {**_VAE["defaults"], "kl_warmup_epochs": 2.0},
    "sources": (*_VAE_SOURCES, _KL_WARMUP + "; the length, 2 epochs, is chosen for CPU budgets, "
                "not taken from a paper."),
}
_NICE = {
    "defaults": {"optimizer": "adam", "lr": 1e-3, "batch_size": 128, "lr_schedule": "constant",
                 "ema_decay": 0.9977},
    "sources": (
        "Dinh et al. 2014, verified in the authors' MNIST config (laurent-dinh/nice "
        "exp/nice_mnist.yaml): lr 1e-3. That config's optimiser is RMSProp with momentum, "
        "which genlab does not offer: Adam with its usual betas instead. Its minibatch 200 and "
        "decay (lr divided by 1.0005 every update down to 1e-4: --lr-schedule exponential "
        "--lr-gamma 0.8825 --lr-floor 0.1) are made for 1500 epochs: at CPU budgets the decay "
        "stayed 0.13 bits/dim behind a constant rate at batch 128 (4.686 against 4.560 after "
        "11.5 paired CPU-minutes) and minibatch 200 with averaging 0.06 behind (4.620 against "
        "4.560; benchmarks/results/learning_curves-cpu.md), so the default is batch 128 at a "
        "constant rate.",
        "Polyak averaging as in Glow's code (openai/glow optim.py, verified): decay 1 - 1/(steps "
        "per epoch) = 1 - 1/430 at minibatch 128 on 55,000 images: with it, batch 128 at a "
        "constant rate reached 4.504 bits/dim against the old recipe's 4.573 after 9.6 paired "
        "CPU-minutes, ahead from 2.6 minutes on (benchmarks/results/learning_curves-cpu.md).",),
}
_REALNVP = {
    "defaults": {"optimizer": "adam", "lr": 1e-3, "weight_decay": 5e-5, "batch_size": 64,
                 "clip_grad": 100.0, "warmup_steps": 200, "lr_schedule": "exponential",
                 "lr_gamma": 0.93, "lr_floor": 0.05, "ema_decay": 0.9988},
    "sources": (
        "Dinh et al. 2017 as the chrischute/real-nvp reimplementation sets it (train.py; "
        "verified there, the paper's text not checked): Adam, lr 1e-3, minibatch 64, L2 5e-5 "
        "on the weight-norm scales (genlab has no weight norm: on all weights), gradient norm "
        "clipped at 100.",
        "Warm-up, then a gentle decay: Glow's code (openai/glow train.py, verified) warms lr "
        "up linearly over 10 epochs and keeps it constant; here over 200 steps, then x 0.93 an "
        "epoch (floor 0.05), measured over 30 paired CPU-minutes "
        "(benchmarks/results/learning_curves-cpu.md): the constant rate rose once, 1.436 to "
        "1.455 bits/dim between 25 and 30 minutes; x 0.93 fell at every snapshot to 1.441 at "
        "29.2 (x 0.9: 1.457 at 29.9, behind it at each; x 0.8 reached its floor at epoch 13 "
        "and ended at 1.499).",
        "Polyak averaging as in Glow's code: decay 1 - 1/(steps per epoch) = 1 - 1/860 at "
        "minibatch 64 on 55,000 images. Against the old recipe (constant Adam 1e-3, no "
        "averaging), paired: ahead at every snapshot, 1.441 against 1.467 bits/dim after 30 "
        "CPU-minutes (the old one rose from 1.61 to 1.72 between 10 and 14 minutes).",),
}
_GAN = {
    "defaults": {"optimizer": "adam", "lr": 2e-4, "betas": (0.5, 0.999), "batch_size": 128,
                 "ema_decay": 0.999},
    "sources": (
        "Radford et al. 2016 (DCGAN), verified in the paper's text as quoted: Adam, lr 2e-4 "
        "(0.001 was too high), beta1 0.5 (0.9 oscillated), minibatch 128.",
        "Averaging the weights (decay 0.999) as commonly used for GAN generators; not from "
        "the DCGAN paper.",),
    # before the optimiser options a GAN's Adam beta1 was its model option adam_beta1 = 0.5
    "legacy": {"betas": (0.5, 0.999)},
}
_AE = {
    "defaults": {"optimizer": "adam", "lr": 1e-3},
    "sources": ("Adam, lr 1e-3, constant, as commonly used (no paper recipe for the AE + GMM).",),
}
_FLOW_TINY = {"num_flows": 2, "flow_hidden": (8,)}


def _conditional(recipe: dict, family: str) -> dict:
    """A class-conditional variant of ``family``: it trains with that family's recipe."""
    return {**recipe, "unconditional": family,
            "sources": (*recipe["sources"], f"The class-conditional variant keeps "
                        f"{family}'s recipe above; not tuned for it separately.")}


# -- the families ----------------------------------------------------------------------------
for _fam in (
    Family("vae", VAE, VAEConfig, **_VAE, tiny={"latent_dim": 3, "hidden": (16,)}),
    Family("binary-vae", BinaryVAE, BinaryVAEConfig, **_VAE_WARMUP,
           tiny={"latent_dim": 6, "hidden": (16,), "baseline": "learned"}),
    Family("ae-gmm", AEGMM, AEGMMConfig, **_AE,
           tiny={"latent_dim": 2, "hidden": (16,), "n_components": 3}),
    Family("gan", GAN, GANConfig, **_GAN,  # no dropout: the same step on every process
           tiny={"latent_dim": 5, "hidden": (16,), "d_hidden": (16,), "dropout": 0.0}),
    Family("dcgan", DCGAN, DCGANConfig, **_GAN, tiny={"latent_dim": 5, "width": 4}),
    Family("vae-flow-prior", VAEFlowPrior, VAEFlowPriorConfig, **_VAE_WARMUP,
           tiny={"latent_dim": 3, "hidden": (16,), **_FLOW_TINY}),
    Family("vae-flow-posterior", VAEFlowPosterior, VAEFlowPosteriorConfig, **_VAE_WARMUP,
           tiny={"latent_dim": 3, "hidden": (16,), **_FLOW_TINY}),
    Family("nice", NICE, NICEConfig, **_NICE, tiny={"couplings": 2, "hidden": (16,)}),
    Family("realnvp", RealNVP, RealNVPConfig, **_REALNVP,
           tiny={"scales": 2, "couplings": 1, "width": 8, "res_blocks": 0}),
    Family("vae-flow-decoder", VAEFlowDecoder, VAEFlowDecoderConfig, **_VAE_WARMUP,
           tiny={"latent_dim": 3, "hidden": (16,), "couplings": 2, "flow_hidden": (8,), "width": 4}),
    # class-conditional variants (caps.conditional; genlab/models/conditional.py)
    Family("cvae", CVAE, CVAEConfig, **_conditional(_VAE, "vae"),
           tiny={"latent_dim": 3, "hidden": (16,)}),
    Family("realnvp-cond", RealNVPCond, RealNVPCondConfig, **_conditional(_REALNVP, "realnvp"),
           tiny={"scales": 2, "couplings": 1, "width": 8, "res_blocks": 0}),
    Family("nice-cond", NICECond, NICECondConfig, **_conditional(_NICE, "nice"),
           tiny={"couplings": 2, "hidden": (16,)}),
    Family("cgan", CGAN, CGANConfig, **_conditional(_GAN, "gan"),
           tiny={"latent_dim": 5, "hidden": (16,), "d_hidden": (16,), "dropout": 0.0,
                 "label_dim": 3}),
):
    register(_fam)
del _fam
