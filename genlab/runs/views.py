"""Which runs each of the app's views can show, decided from what the run's model class
declares (its ``caps``) and its model config as stored: one predicate per view, taking
(model class, model_config dict). A view's run picker lists the runs its predicate accepts,
and Home offers a link into the view for exactly those runs (pages.PAGES names each page's
predicate), so the two never disagree and no family name is compared here.
No streamlit and nothing heavy imported here: pages/__init__.py reads this module."""
from __future__ import annotations


def latent_explorer(cls: type, cfg: dict | None = None) -> bool:
    """Random latents can be drawn and decoded: a prior (or mixture) and a decoder."""
    return cls.caps.decode and cls.caps.prior is not None


def clusters(cls: type, cfg: dict | None = None) -> bool:
    """Codes of test images to fit a mixture on, and a decoder to show its components."""
    return cls.caps.encode and cls.caps.decode


def interpolation(cls: type, cfg: dict | None = None) -> bool:
    """Two latents to walk between (encoded images or prior draws) and a decoder."""
    return cls.caps.decode and (cls.caps.encode or cls.caps.prior is not None)


def integrable(cls: type, latent_dim: object) -> bool:
    """Whether genlab.evaluation.posterior can integrate p(x|z) p(z) over a grid for a model class and
    a latent size (a run's stored config: the pages list runs without building their
    models): a declared q(z|x) density and a 2-D latent."""
    return cls.caps.q_density is not None and latent_dim == 2


def posterior(cls: type, cfg: dict | None = None) -> bool:
    """A VAE whose q(z|x) genlab.evaluation.posterior can evaluate, with a 2-D latent to integrate over."""
    return integrable(cls, (cfg or {}).get("latent_dim"))


def likelihood(cls: type, cfg: dict | None = None) -> bool:
    """A model with log p(x) (exact or importance-weighted)."""
    return cls.caps.likelihood is not None
