"""Deterministic autoencoder with a Gaussian mixture fitted on its codes.

Reference:
> P. Ghosh, M. S. M. Sajjadi, A. Vergari, M. Black, B. Schölkopf. From Variational to
> Deterministic Autoencoders. ICLR 2020 (ex-post density estimation with a GMM).

The autoencoder is trained on reconstruction alone (Bernoulli NLL on binarised pixels).
After every epoch ``fit()`` calls :meth:`AEGMM.on_epoch_end`, which fits scikit-learn's
``GaussianMixture`` (full covariances) on the training codes. The mixture is kept as
tensors (weights, means, Cholesky factors of the covariances) in a submodule's buffers,
so the checkpoint holds no pickled sklearn object and loads with ``weights_only=True``.
Generation: y ~ Cat(pi), z ~ N(mu_y, Sigma_y), x = decoder(z).
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch.distributions import Categorical, MultivariateNormal, Normal

from ..config import opt
from ..data import ImageData, batches, prepare, preprocess
from ..nn import bernoulli_log_prob, image_decoder, image_encoder
from .base import AutoencoderConfig, Capabilities, LatentVariableModel, latent_dim_field
from .mixture import GaussianMixtureBuffers

DEFENSIVE = 0.5  # share of log_prob's proposal that is the local Gaussian (rest: the GMM)


@dataclass
class AEGMMConfig(AutoencoderConfig):
    latent_dim: int = latent_dim_field(2)
    n_components: int = opt(30, "Gaussian mixture components fitted on the training codes", lo=1, hi=1000)
    proposal_scale: float = opt(0.3, "log_prob proposal: std of the Gaussian around the code, "
                                "relative to the mixture's mean component std", lo=0.0, lo_open=True, hi=10.0)
    preprocess: str = opt("dynamic", "how uint8 pixels become inputs: dynamic or static binarisation",
                          choices=("dynamic", "static"))


class AEGMM(LatentVariableModel):
    """Autoencoder + Gaussian mixture on the codes (ex-post density estimation, Ghosh et
    al. 2020).

    ``log_prob(x, k)`` estimates log p(x) of the generative model p(z) = GMM,
    p(x|z) = Bernoulli(sigmoid(decoder(z))) by importance sampling with the defensive
    proposal (Hesterberg 1995)
        r(z|x) = a N(z; encode(x), s^2 I) + (1 - a) GMM(z),  a = 0.5,
        s = proposal_scale * (mixture's mean component std),
    log p(x) ~= logsumexp_l [log p(x|z_l) + log GMM(z_l) - log r(z_l|x)] - log k.
    The GMM share bounds the weights by p(x|z) / (1 - a), so no sample can blow up the
    estimate; like the IWAE bound it is low in expectation and tightens as k grows.
    """

    caps = Capabilities(encode=True, decode=True, prior="learned", likelihood="importance",
                        mixture=True, temperature=1.0)
    log_prob_method = "importance sampling with a defensive mixture proposal (Hesterberg 1995)"

    def __init__(self, cfg: AEGMMConfig):
        super().__init__(cfg)
        c, h, w = cfg.image_shape
        self.D = c * h * w
        d = cfg.latent_dim
        self.encoder = image_encoder(cfg.arch, cfg.image_shape, cfg.hidden, d)
        self.decoder = image_decoder(cfg.arch, d, cfg.image_shape, cfg.hidden, c)
        self.gmm = GaussianMixtureBuffers(d, cfg.n_components)

    # -- autoencoder ------------------------------------------------------------------
    def decoder_logits(self, z: torch.Tensor) -> torch.Tensor:
        """(..., d) -> Bernoulli logits (..., C, H, W)."""
        out = self.decoder(z.reshape(-1, z.shape[-1]))
        return out.view(*z.shape[:-1], *out.shape[1:])

    def log_likelihood(self, x: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
        """log p(x|z) summed over pixels: x (B, C, H, W), z (k, B, d) -> (k, B)."""
        logits = self.decoder_logits(z)  # (k, B, C, H, W)
        return bernoulli_log_prob(logits, x).flatten(2).sum(-1)

    def loss(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        recon = -self.log_likelihood(x, self.encoder(x)[None])[0]  # (B,)
        return {"loss": recon.mean(), "recon": recon.mean()}

    # -- the mixture --------------------------------------------------------------------
    @torch.no_grad()
    def codes(self, data: ImageData, *, batch_size: int = 1000, seed: int = 0) -> torch.Tensor:
        """Codes of a whole split (N, d), inputs preprocessed as in training (seeded)."""
        was_training = self.training
        self.eval()
        data = prepare(data, self.preprocess)
        g = torch.Generator(device=data.x.device).manual_seed(seed)
        out = [self.encoder(preprocess(data.x[idx], self.preprocess, generator=g).to(self.device))
               for idx in batches(len(data), batch_size, shuffle=False, device=data.x.device)]
        self.train(was_training)
        return torch.cat(out)

    def refit_gmm(self, codes: torch.Tensor, n_components: int | None = None) -> None:
        """Refit the mixture on codes (N, d) with n_components (default: the config's;
        at most N, as EM needs a code per component)."""
        seed = int(torch.randint(2 ** 31 - 1, ()))  # from torch's seeded generator
        self.gmm.fit(codes, min(n_components or self.cfg.n_components, len(codes)), seed=seed)

    def on_epoch_end(self, train: ImageData) -> None:
        self.refit_gmm(self.codes(train))

    # -- latent interface ----------------------------------------------------------------
    @torch.no_grad()
    def encode(self, x: torch.Tensor) -> torch.Tensor:
        return self.encoder(x)  # (B, d)

    @torch.no_grad()
    def decode(self, z: torch.Tensor) -> torch.Tensor:
        return torch.sigmoid(self.decoder_logits(z))

    def mlp_decoder(self) -> tuple[torch.nn.Module, str]:
        return self.decoder, "sigmoid"  # Bernoulli logits

    @torch.no_grad()
    def sample_latent(self, n: int, temperature: float = 1.0) -> tuple[torch.Tensor, torch.Tensor]:
        """Ancestral sampling: y ~ Cat(pi) (n,), z ~ N(mu_y, T^2 Sigma_y) (n, d): at
        temperature T each component's spread is scaled by T around its mean."""
        t = self.check_temperature(temperature)
        y = Categorical(probs=self.gmm.weights).sample((n,))  # (n,)
        eps = torch.randn(n, self.cfg.latent_dim, 1, device=self.gmm.means.device)
        z = self.gmm.means[y] + t * (self.gmm.scale_tril[y] @ eps).squeeze(-1)  # (n, d)
        return z, y

    def sample_prior(self, n: int, temperature: float = 1.0) -> torch.Tensor:
        """z (n, d) from the mixture (components scaled by T)."""
        return self.sample_latent(n, temperature)[0]

    @torch.no_grad()
    def sample(self, n: int, temperature: float = 1.0) -> torch.Tensor:
        return self.decode(self.sample_prior(n, temperature))  # (n, C, H, W)

    @torch.no_grad()
    def sample_component(self, k: int, n: int) -> torch.Tensor:
        """n images decoded from z ~ N(mu_k, Sigma_k), component k alone."""
        comp = MultivariateNormal(self.gmm.means[k], scale_tril=self.gmm.scale_tril[k])
        return self.decode(comp.sample((n,)))

    # -- likelihood ------------------------------------------------------------------------
    @property
    def proposal(self) -> str:
        return (f"defensive mixture r(z|x) = {DEFENSIVE:g} N(z; encode(x), s^2 I) + "
                f"{1 - DEFENSIVE:g} GMM(z), s = {self.cfg.proposal_scale:g} x the mixture's mean "
                f"component std = {float(self._proposal_std()):.4g}")

    def _proposal_std(self) -> torch.Tensor:
        return self.cfg.proposal_scale * self.gmm.mean_std()

    def log_weights(self, x: torch.Tensor, k: int) -> torch.Tensor:
        """log p(x|z) + log GMM(z) - log r(z|x) for k draws from the defensive proposal:
        (k, B). The inherited ``log_prob(x, k)`` is the estimate from these."""
        centre = self.encoder(x)  # (B, d)
        s = self._proposal_std()
        local = Normal(centre, s)
        z_loc = local.sample((k,))  # (k, B, d)
        z_gmm = self.gmm.distribution().sample(z_loc.shape[:-1])  # (k, B, d)
        pick = torch.rand(z_loc.shape[:-1], device=x.device) < DEFENSIVE  # (k, B)
        z = torch.where(pick[..., None], z_loc, z_gmm)
        log_prior = self.gmm.log_prob(z)  # (k, B)
        log_r = torch.logaddexp(math.log(DEFENSIVE) + local.log_prob(z).sum(-1),
                                math.log(1 - DEFENSIVE) + log_prior)
        return self.log_likelihood(x, z) + log_prior - log_r
