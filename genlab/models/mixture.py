"""Full-covariance Gaussian mixtures: the one scikit-learn fit, as float64 arrays
(:class:`Mixture`, what the Clusters page draws) or as tensors in a module's buffers
(:class:`GaussianMixtureBuffers`, what ae-gmm keeps in its checkpoint)."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from threadpoolctl import threadpool_limits
from torch import nn
from torch.distributions import Categorical, MixtureSameFamily, MultivariateNormal


@dataclass(frozen=True)
class Mixture:
    """A full-covariance Gaussian mixture as float64 arrays: weights (K,), means (K, d),
    covariances (K, d, d)."""
    weights: np.ndarray
    means: np.ndarray
    covariances: np.ndarray

    @property
    def n_components(self) -> int:
        return len(self.weights)

    def project(self, mean: np.ndarray, components: np.ndarray) -> "Mixture":
        """The mixture of the linear map z -> (z - mean) @ components.T, exactly:
        means P(mu - m), covariances P Sigma P^T."""
        p = np.asarray(components, dtype=np.float64)  # (2, d)
        return Mixture(self.weights, (self.means - mean) @ p.T, p @ self.covariances @ p.T)


def fit_mixture(codes: np.ndarray | torch.Tensor, n_components: int, *, seed: int = 0) -> Mixture:
    """scikit-learn's GaussianMixture (full covariances, EM from k-means) fitted on codes
    (N, d), an array or a tensor, in float64."""
    from sklearn.mixture import GaussianMixture

    x = codes.detach().double().cpu().numpy() if isinstance(codes, torch.Tensor) else codes
    gm = GaussianMixture(n_components, covariance_type="full", random_state=seed)
    with threadpool_limits(1):  # small problems: BLAS/OpenMP threads only contend (25x slower)
        gm.fit(np.asarray(x, dtype=np.float64))
    return Mixture(gm.weights_, gm.means_, gm.covariances_)


class GaussianMixtureBuffers(nn.Module):
    """A full-covariance Gaussian mixture held in buffers: weights (K,), means (K, d),
    scale_tril (K, d, d) with Sigma_k = L_k L_k^T. Loading a state dict with another K
    resizes the buffers first, so a refit mixture survives a checkpoint round trip."""

    NAMES = ("weights", "means", "scale_tril")

    def __init__(self, dim: int, n_components: int):
        super().__init__()
        self.register_buffer("weights", torch.full((n_components,), 1.0 / n_components))
        self.register_buffer("means", torch.zeros(n_components, dim))
        self.register_buffer("scale_tril", torch.eye(dim).repeat(n_components, 1, 1))

    @property
    def n_components(self) -> int:
        return self.weights.shape[0]

    def components(self) -> MultivariateNormal:
        return MultivariateNormal(self.means, scale_tril=self.scale_tril)  # batch (K,), event (d,)

    def distribution(self) -> MixtureSameFamily:
        return MixtureSameFamily(Categorical(probs=self.weights), self.components())

    def log_prob(self, z: torch.Tensor) -> torch.Tensor:
        return self.distribution().log_prob(z)  # (...,)

    def mean_std(self) -> torch.Tensor:
        """sqrt of the weighted mean per-dimension variance of the components (scalar)."""
        var = (self.scale_tril ** 2).sum((-2, -1)) / self.means.shape[-1]  # (K,) = tr(Sigma_k)/d
        return (self.weights * var).sum().sqrt()

    def fit(self, codes: torch.Tensor, n_components: int, *, seed: int = 0) -> None:
        """:func:`fit_mixture` on codes (N, d); the result kept as tensors."""
        mix = fit_mixture(codes, n_components, seed=seed)
        like = dict(device=self.means.device, dtype=self.means.dtype)
        cov = torch.as_tensor(mix.covariances, dtype=torch.float64)  # (K, d, d)
        self.weights = torch.as_tensor(mix.weights, **like)
        self.means = torch.as_tensor(mix.means, **like)
        self.scale_tril = torch.linalg.cholesky(cov).to(**like)

    def as_mixture(self) -> Mixture:
        """The mixture as float64 arrays (covariances L L^T)."""
        tril = self.scale_tril.detach().double().cpu()  # (K, d, d)
        return Mixture(self.weights.detach().double().cpu().numpy(),
                       self.means.detach().double().cpu().numpy(),
                       (tril @ tril.transpose(-1, -2)).numpy())

    def _load_from_state_dict(self, state_dict, prefix, local_metadata, strict,
                              missing_keys, unexpected_keys, error_msgs):
        for name in self.NAMES:  # take the stored number of components
            stored = state_dict.get(prefix + name)
            if isinstance(stored, torch.Tensor):
                current = getattr(self, name)
                setattr(self, name, torch.empty(stored.shape, dtype=current.dtype, device=current.device))
        super()._load_from_state_dict(state_dict, prefix, local_metadata, strict,
                                      missing_keys, unexpected_keys, error_msgs)
