"""ae-gmm: the mixture against scikit-learn, refits, ancestral sampling frequencies,
checkpoints that hold another component count, log p(x) against quadrature, contract."""
from __future__ import annotations

import math

import pytest
import torch
from scipy.stats import chisquare
from sklearn.mixture import GaussianMixture

from contract import (check_checkpoint_round_trip, check_loss_finite, check_sample,
                      check_short_run_lowers_loss, check_step_changes_weights)
from genlab.data import ImageData
from genlab.models.ae_gmm import AEGMM, AEGMMConfig
from genlab.runs.store import load_model

TRUE_MEANS = torch.tensor([[-3.0, 0.0], [2.0, 2.0], [2.0, -2.5]])


def three_clusters(n: int = 3000) -> torch.Tensor:
    """Codes from three well separated Gaussians with weights 0.5, 0.3, 0.2: (n, 2)."""
    g = torch.Generator().manual_seed(0)
    y = torch.multinomial(torch.tensor([0.5, 0.3, 0.2]), n, replacement=True, generator=g)
    return TRUE_MEANS[y] + 0.4 * torch.randn(n, 2, generator=g)


def tiny(**kw) -> AEGMM:
    return AEGMM(AEGMMConfig(image_shape=(1, 2, 3), hidden=(8,), **kw))


@pytest.mark.parametrize("n", [1, 3, 7])
def test_refit_gives_n_components_with_sklearns_density(n):
    model, codes = tiny(), three_clusters()
    model.gmm.fit(codes, n, seed=0)
    gm = GaussianMixture(n, covariance_type="full", random_state=0).fit(codes.double().numpy())
    assert model.gmm.n_components == n
    assert model.gmm.means.shape == (n, 2) and model.gmm.scale_tril.shape == (n, 2, 2)
    torch.testing.assert_close(model.gmm.weights.sum(), torch.tensor(1.0))
    ours = model.gmm.log_prob(codes[:200])
    torch.testing.assert_close(ours, torch.as_tensor(gm.score_samples(codes[:200].double().numpy()),
                                                     dtype=torch.float32), atol=1e-4, rtol=1e-4)
    model.refit_gmm(codes, n)
    assert model.gmm.n_components == n


def test_refit_recovers_the_clusters():
    model = tiny()
    model.refit_gmm(three_clusters(), 3)
    order = model.gmm.means[:, 0].argsort()  # (-3, 0) first; then the two at x = 2 by y
    means = model.gmm.means[order]
    means = torch.cat([means[:1], means[1:][means[1:, 1].argsort(descending=True)]])
    torch.testing.assert_close(means, TRUE_MEANS, atol=0.1, rtol=0)


def test_sample_frequencies_follow_the_weights():
    model = tiny(n_components=4)
    model.refit_gmm(three_clusters(), 4)
    torch.manual_seed(3)
    n = 20000
    z, y = model.sample_latent(n)
    counts = torch.bincount(y, minlength=4).double()
    expected = model.gmm.weights.double() * n
    assert chisquare(counts.numpy(), expected.numpy() * counts.sum().item() / expected.sum().item()).pvalue > 1e-3
    k = int(model.gmm.weights.argmax())  # z given y = k is N(mu_k, Sigma_k)
    zk = z[y == k]
    cov = model.gmm.scale_tril[k] @ model.gmm.scale_tril[k].T
    se = (cov.diagonal() / len(zk)).sqrt()
    assert ((zk.mean(0) - model.gmm.means[k]).abs() < 4 * se).all()
    torch.testing.assert_close(zk.T.cov(), cov, atol=0.05 * cov.abs().max().item(), rtol=0)
    assert model.sample_component(k, 6).shape == (6, 1, 2, 3)


def test_state_dict_with_another_component_count_loads(tmp_path):
    model = tiny()  # config: 30 components
    model.refit_gmm(three_clusters(), 4)
    torch.save(model.state_dict(), tmp_path / "m.pt")
    fresh = tiny()
    assert fresh.gmm.n_components == 30
    fresh.load_state_dict(torch.load(tmp_path / "m.pt", weights_only=True))
    assert fresh.gmm.n_components == 4
    for name in ("weights", "means", "scale_tril"):
        assert torch.equal(getattr(fresh.gmm, name), getattr(model.gmm, name))
    z = torch.randn(10, 2)
    assert torch.equal(fresh.gmm.log_prob(z), model.gmm.log_prob(z))


def test_log_prob_matches_quadrature():
    """p(x) = int p(x|z) GMM(z) dz in 2-D on a fine grid vs the importance-sampled estimate."""
    torch.manual_seed(0)
    model = tiny()
    model.refit_gmm(three_clusters() * 0.5, 3)
    with torch.no_grad():
        for p in model.decoder.parameters():
            p.mul_(3.0)  # a sharper p(x|z), so the proposal matters
    x = torch.tensor([[[[1.0, 0.0, 1.0], [0.0, 1.0, 1.0]]], [[[0.0, 0.0, 0.0], [1.0, 1.0, 1.0]]]])
    side = torch.linspace(-6, 6, 401)
    grid = torch.cartesian_prod(side, side)  # (G, 2)
    dz = (side[1] - side[0]) ** 2
    with torch.no_grad():
        log_joint = model.log_likelihood(x, grid[:, None, :].expand(-1, 2, -1)) + model.gmm.log_prob(grid)[:, None]
    exact = torch.logsumexp(log_joint, 0) + dz.log()  # (2,)
    est = model.log_prob(x, k=20000, chunk=5000)
    assert (est - exact).abs().max() < 0.05, (est, exact)


# -- contract ----------------------------------------------------------------------------
SMALL = {"hidden": [128], "n_components": 5}


@pytest.mark.parametrize("cfg", [SMALL, {**SMALL, "arch": "conv", "latent_dim": 3}])
def test_contract(cfg):
    model = AEGMM(AEGMMConfig(**{**cfg, "hidden": tuple(cfg["hidden"])}))
    check_loss_finite(model)
    check_step_changes_weights(model)
    check_sample(model)
    assert model.encode(torch.zeros(3, 1, 28, 28)).shape == (3, cfg.get("latent_dim", 2))
    assert model.log_prob(torch.zeros(3, 1, 28, 28), k=10).shape == (3,)


def test_short_mnist_run_lowers_val_loss(mnist_small):
    train, val = mnist_small
    check_short_run_lowers_loss("ae-gmm", SMALL, train, val, epochs=2)


def test_checkpoint_round_trip_holds_the_fitted_mixture(mnist_small, tmp_path):
    train = mnist_small[0]
    train = ImageData(train.x[:500], train.y[:500], train.dataset, train.split)
    check_checkpoint_round_trip("ae-gmm", SMALL, tmp_path, train)
    model, _, _ = load_model(tmp_path)
    assert model.gmm.n_components == 5
    # fit() called on_epoch_end: after EM's M-step the mixture mean is the codes' mean
    codes = model.codes(train)
    mix_mean = (model.gmm.weights[:, None] * model.gmm.means).sum(0)
    torch.testing.assert_close(mix_mean, codes.mean(0), atol=1e-3 * codes.std().item(), rtol=0)
    assert math.isfinite(model.log_prob(model.decode(codes[:2]).bernoulli(), k=50).sum().item())
