"""genlab.evaluation.posterior: quadrature over a 2-D latent against a linear-Gaussian model whose
marginal and posterior are known in closed form, flow posteriors' grid density against
their own sampler, the step-halving criterion against a much finer grid on the shipped
vae-2d-mnist, and the IW-convergence warning."""
from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch
from torch.distributions import MultivariateNormal

from genlab.data import load_split, preprocess
from genlab.evaluation import posterior as P
from genlab.evaluation.images import model_inputs
from genlab.models import build_model
from genlab.models.vae import VAE, Posterior, VAEConfig
from genlab.nn import log_normal

SHIPPED = Path(__file__).resolve().parents[1] / "checkpoints" / "vae-2d-mnist"


class LinearGaussian(VAE):
    """p(z) = N(0, I), p(x|z) = N(W z + b, s^2 I) on D values (an image (1, 1, D)), and
    q(z|x) = N(A x + c, diag exp(logvar)) from a linear encoder set by the test."""

    def __init__(self, W, b, s, A, c, logvar):
        D = W.shape[0]
        super().__init__(VAEConfig(image_shape=(1, 1, D), latent_dim=2, hidden=(4,),
                                   preprocess="dequantize"))
        for name, t in dict(W=W, b=b, A=A, c=c, q_logvar=logvar).items():
            self.register_buffer(name, t.clone())
        self.s = s
        self.double()

    def posterior(self, x):
        mu = x.flatten(1) @ self.A.T + self.c  # (B, 2)
        return Posterior(mu=mu, logvar=self.q_logvar.expand_as(mu))

    def log_likelihood(self, x, z):
        mean = z @ self.W.T + self.b  # (k, B, D)
        return log_normal(x.flatten(1), mean, torch.tensor(2 * math.log(self.s))).sum(-1)

    # closed forms
    def exact_log_px(self, x):
        D = self.W.shape[0]
        cov = self.W @ self.W.T + self.s ** 2 * torch.eye(D, dtype=self.W.dtype)
        return MultivariateNormal(self.b, cov).log_prob(x.flatten(1))

    def exact_posterior(self, x):
        """Mean (B, 2) and covariance (2, 2) of p(z|x)."""
        prec = torch.eye(2, dtype=self.W.dtype) + self.W.T @ self.W / self.s ** 2
        cov = torch.linalg.inv(prec)
        return (x.flatten(1) - self.b) @ self.W @ cov.T / self.s ** 2, cov

    def exact_kl(self, x):
        """KL(q(z|x) || p(z|x)) between the Gaussians, (B,)."""
        mean, cov = self.exact_posterior(x)
        q = self.posterior(x)
        V = torch.diag_embed(q.logvar.exp())
        return torch.distributions.kl_divergence(MultivariateNormal(q.mu, V),
                                                 MultivariateNormal(mean, cov))


def linear_gaussian(s: float = 0.3, offset=(0.05, -0.03), var_scale: float = 0.8, D: int = 6,
                    seed: int = 0) -> LinearGaussian:
    """q is the mean-field posterior, shifted by ``offset`` and its variances scaled."""
    g = torch.Generator().manual_seed(seed)
    W = torch.randn(D, 2, generator=g, dtype=torch.float64)
    b = 0.5 * torch.randn(D, generator=g, dtype=torch.float64)
    prec = torch.eye(2, dtype=torch.float64) + W.T @ W / s ** 2
    M = torch.linalg.inv(prec) @ W.T / s ** 2  # posterior mean = M (x - b)
    c = -M @ b + torch.tensor(offset, dtype=torch.float64)
    logvar = torch.log(var_scale / torch.diagonal(prec))
    return LinearGaussian(W, b, s, M, c, logvar)


def sample_x(model: LinearGaussian, n: int, seed: int = 1, z=None) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    z = torch.randn(n, 2, generator=g, dtype=torch.float64) if z is None else z
    x = z @ model.W.T + model.b + model.s * torch.randn(n, model.W.shape[0], generator=g,
                                                        dtype=torch.float64)
    return x.view(n, 1, 1, -1)


def test_quadrature_equals_the_closed_form_marginal_elbo_and_kl():
    model = linear_gaussian()
    x = sample_x(model, 5)
    q = P.quadrature(model, x)
    exact = model.exact_log_px(x)
    kl = model.exact_kl(x)
    assert q.converged.all()
    torch.testing.assert_close(q.log_px, exact, atol=1e-3, rtol=0)
    torch.testing.assert_close(q.kl, kl, atol=1e-3, rtol=0)
    torch.testing.assert_close(q.elbo, exact - kl, atol=1e-3, rtol=0)
    torch.testing.assert_close(q.q_mass, torch.ones(5, dtype=torch.float64), atol=1e-4, rtol=0)
    assert (kl > 0.05).all()  # q is wrong enough for the KL check to mean something
    assert (q.edge_mass < 1e-8).all()
    mean, cov = model.exact_posterior(x)
    torch.testing.assert_close(q.post_mean, mean, atol=1e-6, rtol=0)
    torch.testing.assert_close(q.post_std, torch.diagonal(cov).sqrt().expand(5, 2), atol=1e-6, rtol=1e-4)
    qp = model.posterior(x)
    torch.testing.assert_close(q.q_mean, qp.mu, atol=1e-6, rtol=0)
    torch.testing.assert_close(q.q_std, qp.logvar.mul(0.5).exp(), atol=1e-6, rtol=1e-4)
    sep = ((mean - qp.mu) / qp.logvar.mul(0.5).exp()).norm(dim=-1)
    torch.testing.assert_close(q.separation, sep, atol=1e-4, rtol=1e-4)


def test_posterior_view_is_the_exact_posterior_and_its_numbers_agree():
    model = linear_gaussian()
    x = sample_x(model, 1, seed=3)
    v = P.posterior_view(model, x[0], ks=(1, 100), elbo_samples=20000)
    p = v.log_post.exp() * v.cell_area  # (n, n) cell probabilities
    assert abs(float(p.sum()) - 1) < 1e-9
    Z1, Z2 = torch.meshgrid(v.z1, v.z2, indexing="ij")
    pts = torch.stack([Z1, Z2], -1)  # (n, n, 2)
    mean = (p[..., None] * pts).sum((0, 1))
    cov = (p[..., None, None] * (pts - mean)[..., :, None] * (pts - mean)[..., None, :]).sum((0, 1))
    exact_mean, exact_cov = model.exact_posterior(x)
    torch.testing.assert_close(mean, exact_mean[0], atol=1e-5, rtol=0)
    torch.testing.assert_close(cov, exact_cov, atol=1e-5, rtol=1e-3)
    # q on the grid is the encoder's Gaussian
    qp = model.posterior(x)
    expected_q = log_normal(pts, qp.mu[0], qp.logvar[0]).sum(-1)
    torch.testing.assert_close(v.log_q, expected_q)
    # KL = log p(x) - ELBO = the direct quadrature of E_q[log q - log p(z|x)] = closed form
    assert abs(v.kl - v.kl_direct) < 1e-9
    assert abs(v.kl - float(model.exact_kl(x)[0])) < 1e-3
    # the quadrature ELBO against the model's own Monte Carlo estimator
    assert abs(v.elbo - v.elbo_mc) < 4 * v.elbo_mc_sem
    assert v.elbo_mc_sem < 0.02  # and that check is tight
    assert v.history[-1]["n"] == int(v.grid.n[0]) and len(v.z1) == int(v.grid.n[0])
    assert v.code.shape == (2,)


def test_iw_estimate_climbs_toward_the_exact_value():
    model = linear_gaussian(offset=(0.15, -0.1), var_scale=0.5)
    x = sample_x(model, 64, seed=5)
    exact = float(model.exact_log_px(x).mean())
    torch.manual_seed(0)
    est = [float(model.log_prob(x, k=k).mean()) for k in (1, 10, 100, 1000)]
    assert est[0] < est[1] < est[2] < est[3] <= exact + 0.01
    assert exact - est[0] > 0.3  # a real gap at k = 1 ...
    assert exact - est[3] < (exact - est[0]) / 10  # ... mostly closed at k = 1000
    # and the view reports the same estimates, seeded
    v = P.posterior_view(model, x[0], ks=(1, 1000), elbo_samples=1000)
    assert abs(v.iw[1000] - v.log_px) < abs(v.iw[1] - v.log_px) + 0.05
    assert v.iw == P.posterior_view(model, x[0], ks=(1, 1000), elbo_samples=1000).iw


def test_sharp_posterior_needs_a_finer_grid_and_gets_it():
    """Posterior std ~ 0.01, below the search step: the step halving goes on past the
    first grids and still lands on the closed form."""
    model = linear_gaussian(s=0.02)
    x = sample_x(model, 3, seed=7)
    q = P.quadrature(model, x)
    assert q.converged.all() and (q.n >= 128).all()
    assert (q.change < 0.01).all() and (q.elbo_change < 0.01).all()
    torch.testing.assert_close(q.log_px, model.exact_log_px(x), atol=1e-3, rtol=0)
    torch.testing.assert_close(q.kl, model.exact_kl(x), atol=1e-3, rtol=0)
    with pytest.raises(AssertionError):  # the first grid alone would not have met the tolerance
        coarse = P.quadrature(model, x, P.GridSpec(n_start=32, n_max=32))
        torch.testing.assert_close(coarse.log_px, model.exact_log_px(x), atol=1e-2, rtol=0)


def test_posterior_far_from_q_and_beyond_the_search_box():
    """p(z|x) centred near (7.5, -1), outside [-6, 6]^2: the search box grows; and q sits
    20 of its standard deviations away, so one box must hold both."""
    model = linear_gaussian(s=0.1, offset=(0.0, 0.0))
    x = sample_x(model, 2, seed=9, z=torch.tensor([[7.5, -1.0], [7.4, -0.8]], dtype=torch.float64))
    q = P.quadrature(model, x)
    assert (q.search_box[:, 1] > 6).all() and q.converged.all()
    torch.testing.assert_close(q.log_px, model.exact_log_px(x), atol=1e-3, rtol=0)
    far = linear_gaussian(s=0.1, offset=(0.6, 0.0))
    sd = float(far.q_logvar[0].mul(0.5).exp())
    assert 0.6 / sd > 20
    xf = sample_x(far, 2, seed=10)
    qf = P.quadrature(far, xf)
    assert qf.converged.all() and (qf.separation > 20).all()
    assert qf.summary()["share_separated_5sd"] == 1.0
    torch.testing.assert_close(qf.log_px, far.exact_log_px(xf), atol=1e-3, rtol=0)
    torch.testing.assert_close(qf.kl, far.exact_kl(xf), atol=1e-3, rtol=1e-4)


def perturb(module: torch.nn.Module, scale: float, seed: int = 0) -> None:
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in module.parameters():
            p.add_(scale * torch.randn(p.shape, generator=g, dtype=p.dtype))


@pytest.mark.parametrize("flow", ["planar", "realnvp"])
def test_flow_posterior_density_on_the_grid(flow):
    """q_K by inverse flow + change of variables: equals the sampler's log q_K at its own
    samples, integrates to 1 over the grid, and gives the Monte Carlo ELBO."""
    model = build_model("vae-flow-posterior", {"hidden": (32,), "latent_dim": 2, "flow": flow,
                                               "num_flows": 3, "flow_hidden": (16,),
                                               "image_shape": (1, 6, 6)}).double()
    perturb(model.planar_params if flow == "planar" else model.posterior_flow, 0.3)
    g = torch.Generator().manual_seed(0)
    x = preprocess(torch.randint(0, 256, (3, 1, 6, 6), generator=g, dtype=torch.uint8),
                   "dynamic", generator=g).double()
    with torch.no_grad():
        z, log_q_sampler, _ = model.posterior_sample(x, k=5)  # (5, 3, 2), (5, 3)
        torch.testing.assert_close(model.log_q(x, z), log_q_sampler, atol=1e-8, rtol=1e-8)
        zk0 = model.encode(x)  # the mean pushed through: far from a plain Gaussian's mean
    assert (zk0 - model.posterior(x).mu).abs().max() > 0.05  # the flows do something
    q = P.quadrature(model, x)
    assert q.converged.all()
    torch.testing.assert_close(q.q_mass, torch.ones(3, dtype=torch.float64), atol=1e-3, rtol=0)
    v = P.posterior_view(model, x[1], ks=(1,), elbo_samples=20000)
    assert abs(v.elbo - v.elbo_mc) < 4 * v.elbo_mc_sem
    assert float(v.kl) > 0


def test_iw_convergence_warns_only_past_the_threshold():
    lp_k = torch.full((10,), -100.0, dtype=torch.float64)
    moved = P.iw_convergence(lp_k, lp_k - 0.3, 100)
    assert moved["k_tenth"] == 10 and abs(moved["nll_gap_k_tenth"] - 0.3) < 1e-9
    assert "k=10" in moved["nll_warning"] and "k=100" in moved["nll_warning"]
    settled = P.iw_convergence(lp_k, lp_k - 0.1, 100)
    assert settled["nll_warning"] is None
    with pytest.raises(ValueError, match="k must be >= 10"):
        P.iw_convergence(lp_k, lp_k, 5)


def test_rejects_models_it_cannot_integrate():
    assert P.can_integrate(linear_gaussian())
    assert not P.can_integrate(build_model("vae", {"hidden": (8,)}))  # 20-d
    assert not P.can_integrate(build_model("ae-gmm", {"hidden": (8,), "latent_dim": 2}))
    with pytest.raises(ValueError, match="latent_dim=20"):
        P.quadrature(build_model("vae", {"hidden": (8,)}), torch.zeros(1, 1, 28, 28))
    with pytest.raises(ValueError, match="'nice'"):
        P.check_model(build_model("nice", {}))
    with pytest.raises(ValueError, match="one image"):
        P.posterior_view(linear_gaussian(), torch.zeros(2, 1, 1, 6, dtype=torch.float64))
    with pytest.raises(ValueError, match="n_start"):
        P.GridSpec(n_start=64, n_max=32)


def test_split_inputs_are_the_images_eval_scores(data_root):
    """exact_log_px binarises a split in one call (explore.model_inputs); eval does it batch
    by batch with the same seeded generator (metrics.log_prob_split): the same images."""
    model = build_model("vae", {"latent_dim": 2, "hidden": (8,)})
    data = load_split("mnist", "test", data_root, download=False, limit=64)
    whole = model_inputs(model, data.x, seed=0)
    g = torch.Generator().manual_seed(0)
    parts = torch.cat([preprocess(data.x[i:i + 10], "dynamic", generator=g) for i in range(0, 64, 10)])
    assert torch.equal(whole, parts)


@pytest.mark.skipif(not (SHIPPED / "checkpoint.pt").exists(), reason="shipped vae-2d-mnist absent")
def test_shipped_vae_2d_grid_meets_the_step_halving_criterion(data_root):
    """On real images: the chosen grid is within tol of a grid 3-6x finer found by a wider,
    finer search with a looser mass threshold."""
    from genlab.runs.store import load_model

    model, _, _ = load_model(SHIPPED)
    data = load_split("mnist", "test", data_root, download=False, limit=4)
    q = P.exact_log_px(model, data)
    fine = P.exact_log_px(model, data, spec=P.GridSpec(radius=8.0, n_search=96, tau=25.0,
                                                       n_start=192, n_max=192))
    assert q.converged.all() and (q.change < 0.01).all()
    torch.testing.assert_close(q.log_px, fine.log_px, atol=0.01, rtol=0)
    torch.testing.assert_close(q.elbo, fine.elbo, atol=0.01, rtol=0)
    assert (q.kl > 0).all() and (q.elbo < q.log_px).all()
    entries = P.exact_eval_entries(q)
    assert entries["nll_exact_nats"] == pytest.approx(float(-q.log_px.mean()))
    assert entries["nll_exact_converged"] == 4


@pytest.mark.skipif(not (SHIPPED / "checkpoint.pt").exists(), reason="shipped vae-2d-mnist absent")
def test_log_px_does_not_depend_on_q(data_root):
    """The shipped vae-2d's encoder and decoder under a RealNVP flow posterior: q changes,
    so the ELBO and KL change, but p(x) = integral of p(x|z) p(z) does not."""
    import dataclasses

    from genlab.runs.store import load_model

    vae, _, _ = load_model(SHIPPED)
    flowed = build_model("vae-flow-posterior", {**dataclasses.asdict(vae.cfg), "flow": "realnvp",
                                                "num_flows": 2, "flow_hidden": (32,)})
    flowed.load_state_dict(vae.state_dict(), strict=False)  # the couplings start as the identity
    perturb(flowed.posterior_flow, 0.02)
    flowed.eval()
    data = load_split("mnist", "test", data_root, download=False, limit=3)
    a, b = P.exact_log_px(vae, data), P.exact_log_px(flowed, data)
    assert a.converged.all() and b.converged.all()
    torch.testing.assert_close(b.log_px, a.log_px, atol=0.01, rtol=0)
    assert ((b.kl - a.kl).abs() > 0.1).all()
    torch.testing.assert_close(b.q_mass, torch.ones(3, dtype=torch.float64), atol=1e-3, rtol=0)
