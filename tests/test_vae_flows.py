"""Flow-prior and flow-posterior VAEs: the flow maths against autograd Jacobians and
numerical integration, the Monte Carlo KL against the closed form, IWAE >= ELBO, the
model contract, and short real-MNIST runs."""
from __future__ import annotations

import pytest
import torch
from torch.autograd.functional import jacobian
from torch.distributions import Normal

from genlab.cli import build_parser, parse_train
from genlab.data import ImageData
from genlab.models import build_model
from genlab.models.vae import VAE

from contract import (check_checkpoint_round_trip, check_loss_finite, check_sample,
                      check_short_run_lowers_loss, check_step_changes_weights, tiny_batch)

SMALL = {"hidden": (32,), "latent_dim": 4, "flow_hidden": (16,)}
VARIANTS = [("vae-flow-prior", {}), ("vae-flow-posterior", {"flow": "planar"}),
            ("vae-flow-posterior", {"flow": "realnvp", "num_flows": 3})]
IDS = ["prior", "posterior-planar", "posterior-realnvp"]


def perturb(module: torch.nn.Module, scale: float = 0.3, seed: int = 0) -> None:
    """Move every parameter off its (identity) initialisation."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in module.parameters():
            p.add_(scale * torch.randn(p.shape, generator=g, dtype=p.dtype))


def flow_of(model) -> torch.nn.Module:
    if model.kind == "vae-flow-prior":
        return model.prior_flow
    return model.planar_params if model.cfg.flow == "planar" else model.posterior_flow


@pytest.mark.parametrize("name,cfg", VARIANTS, ids=IDS)
def test_contract(name, cfg, mnist_small, tmp_path):
    cfg = {**SMALL, **cfg}
    check_loss_finite(build_model(name, cfg))
    check_step_changes_weights(build_model(name, cfg))
    check_sample(build_model(name, cfg))
    train, _ = mnist_small
    small = ImageData(train.x[:256], train.y[:256], train.dataset, train.split)
    check_checkpoint_round_trip(name, cfg, tmp_path, small)


@pytest.mark.parametrize("flow", ["planar", "realnvp"])
def test_posterior_log_q_is_base_density_minus_autograd_log_det(flow):
    """log q_K(z_K) = log q_0(z_0) - log|det dz_K/dz_0| over the whole flow map."""
    model = build_model("vae-flow-posterior", {**SMALL, "flow": flow, "num_flows": 3}).double()
    perturb(flow_of(model))
    x = tiny_batch(model, 3).double()
    z, log_q, extras = model.posterior_sample(x, k=2)  # (2, 3, d), (2, 3)
    h = model.features(x)  # (3, F)
    base = Normal(extras.mu, torch.exp(0.5 * extras.logvar))
    for s in range(2):
        for i in range(3):
            z0 = extras.z0[s, i]  # (d,)
            zk, _ = model.transform(z0[None], h[i:i + 1])
            torch.testing.assert_close(zk[0], z[s, i])
            J = jacobian(lambda v: model.transform(v[None], h[i:i + 1])[0][0], z0)  # (d, d)
            sign, logabsdet = torch.linalg.slogdet(J)
            assert sign > 0  # orientation preserving, hence invertible
            expected = base.log_prob(extras.z0[s])[i].sum() - logabsdet
            torch.testing.assert_close(log_q[s, i], expected)


def test_planar_posterior_stays_invertible_with_large_amortised_params():
    """Under the constraint w^T u_hat > -1 every planar Jacobian has a positive determinant,
    even when the encoder proposes large u and w pointing against each other."""
    model = build_model("vae-flow-posterior", {**SMALL, "flow": "planar", "num_flows": 4}).double()
    perturb(model.planar_params, scale=5.0)
    x = tiny_batch(model, 6).double()
    h = model.features(x)
    z0 = torch.randn(6, model.cfg.latent_dim, dtype=torch.float64) * 3
    _, log_det = model.transform(z0, h)
    assert torch.isfinite(log_det).all()
    for i in range(6):
        J = jacobian(lambda v: model.transform(v[None], h[i:i + 1])[0][0], z0[i])
        sign, logabsdet = torch.linalg.slogdet(J)
        assert sign > 0
        torch.testing.assert_close(log_det[i], logabsdet)


def test_encode_is_the_posterior_mean_pushed_through_the_flows():
    model = build_model("vae-flow-posterior", {**SMALL, "flow": "realnvp"})
    perturb(model.posterior_flow)
    x = tiny_batch(model, 4)
    h = model.features(x)
    torch.testing.assert_close(model.encoder(x), model._encoder_layers[-1](h))
    mu = model.posterior(x).mu
    torch.testing.assert_close(model.encode(x), model.transform(mu, h)[0])


def test_flow_prior_is_a_normalised_density_with_matching_sampler():
    """In 2-D: log p(z) = log N(f(z); 0, I) + autograd log|det df/dz|, exp(log p)
    integrates to 1 on a grid, and z = f^{-1}(eps) has the density's mean."""
    model = build_model("vae-flow-prior", {**SMALL, "latent_dim": 2}).double()
    perturb(model.prior_flow, scale=0.2)  # peak density 0.04 (N(0, I): 0.16)
    z = torch.randn(5, 2, dtype=torch.float64)
    for zi in z:
        J = jacobian(lambda v: model.prior_flow(v[None])[0][0], zi)
        eps = model.prior_flow(zi[None])[0][0]
        expected = Normal(0.0, 1.0).log_prob(eps).sum() + torch.linalg.slogdet(J)[1]
        torch.testing.assert_close(model.log_prior(zi[None])[0], expected)
    t = torch.linspace(-15, 15, 601, dtype=torch.float64)
    grid = torch.cartesian_prod(t, t)  # (601^2, 2)
    with torch.no_grad():
        p = model.log_prior(grid).exp()
    cell = (t[1] - t[0]) ** 2
    assert abs(float(p.sum() * cell) - 1) < 5e-3
    mean_grid = (grid * p[:, None]).sum(0) * cell  # (2,)
    torch.manual_seed(0)
    samples = model.sample_prior(50000)  # (n, 2)
    se = samples.std(0) / len(samples) ** 0.5  # (2,) standard error of the sample mean
    assert ((samples.mean(0) - mean_grid).abs() < 4 * se).all(), (samples.mean(0), mean_grid, se)
    torch.manual_seed(0)
    eps = torch.randn(50000, 2, dtype=torch.float64)
    torch.testing.assert_close(model.prior_flow(samples)[0], eps)


@pytest.mark.parametrize("num_flows", [0, 3])
def test_flow_prior_mc_kl_matches_closed_form_at_identity(num_flows):
    """A new flow prior is N(0, I), so the Monte Carlo KL averages to the closed form."""
    model = build_model("vae-flow-prior", {**SMALL, "num_flows": num_flows}).double()
    x = tiny_batch(model, 5).double()
    z, log_q, extras = model.posterior_sample(x, k=4000)
    torch.testing.assert_close(model.log_prior(z), Normal(0.0, 1.0).log_prob(z).sum(-1))
    mc = model.kl(z, log_q, extras)  # (B,)
    exact = VAE.kl(model, z, log_q, extras)  # (B,) closed form
    se = (log_q - model.log_prior(z)).std(0) / 4000 ** 0.5
    assert (mc - exact).abs().max() < 4 * se.max() + 1e-6, (mc, exact, se)


@pytest.mark.parametrize("name,cfg", VARIANTS, ids=IDS)
def test_iwae_log_prob_is_finite_and_above_the_elbo(name, cfg):
    model = build_model(name, {**SMALL, **cfg}).eval()
    perturb(flow_of(model), scale=0.2)
    x = tiny_batch(model, 16)
    torch.manual_seed(0)
    with torch.no_grad():
        elbo = model.log_weights(x, 500).mean(0)  # (B,) Monte Carlo ELBO
        log_px = model.log_prob(x, k=500, chunk=100)  # (B,) IWAE
    assert torch.isfinite(log_px).all()
    assert log_px.mean() > elbo.mean()
    assert (log_px >= elbo - 0.5).all()


@pytest.mark.parametrize("name,cfg", VARIANTS, ids=IDS)
def test_latent_stats_leave_out_the_gaussian_kl_per_dim(name, cfg, mnist_small):
    from genlab.evaluation.metrics import latent_stats

    _, val = mnist_small
    stats = latent_stats(build_model(name, {**SMALL, **cfg}), val, batch_size=250)
    assert "kl_per_dim" not in stats and stats["latent_dim"] == SMALL["latent_dim"]


def test_cli_builds_the_flow_options():
    ns = build_parser().parse_args(["train", "--model", "vae-flow-posterior", "--flow", "realnvp",
                                    "--num-flows", "2", "--flow-hidden", "64,64"])
    cfg = parse_train(ns).model_config
    assert (cfg.flow, cfg.num_flows, cfg.flow_hidden) == ("realnvp", 2, (64, 64))
    assert build_model("vae-flow-posterior", {"flow": "realnvp", "num_flows": 2}).posterior_flow


@pytest.mark.parametrize("name,cfg", VARIANTS, ids=IDS)
def test_short_run_lowers_validation_loss(name, cfg, mnist_small):
    train, val = mnist_small
    train = ImageData(train.x[:1000], train.y[:1000], train.dataset, train.split)
    # the amortised planar maps take (u, w, b) from planar_params(h): the layer's own
    # parameters stay in the checkpoint but are not used
    unused = ("planar.",) if cfg.get("flow") == "planar" else ()
    before, after = check_short_run_lowers_loss(name, {"hidden": (256,), **cfg}, train, val,
                                                epochs=1, batch_size=32, unused=unused)
    print(f"{name} {cfg}: val loss {before:.1f} -> {after:.1f}")
