"""binary-vae: the score-function gradient against exact enumeration of the latent
states, the baselines' effect on its variance, the closed-form KL, the IWAE estimate
against the exact marginal, and the model contract."""
from __future__ import annotations

import itertools
import math

import pytest
import torch
from torch.distributions import Bernoulli, kl_divergence

from contract import (check_checkpoint_round_trip, check_loss_finite, check_sample,
                      check_short_run_lowers_loss, check_step_changes_weights)
from genlab.data import ImageData
from genlab.models.binary_vae import BinaryVAE, BinaryVAEConfig
from genlab.models.vae import Posterior

D_LAT = 3  # 2^3 latent states: exact sums are cheap
X = torch.tensor([[[[1.0, 0.0, 1.0], [1.0, 1.0, 0.0]]]])  # one 6-pixel binary image


def tiny(baseline: str = "none", seed: int = 0) -> BinaryVAE:
    torch.manual_seed(seed)
    return BinaryVAE(BinaryVAEConfig(image_shape=(1, 2, 3), latent_dim=D_LAT, hidden=(8,),
                                     baseline=baseline))


def all_states(d: int) -> torch.Tensor:
    return torch.tensor(list(itertools.product((0.0, 1.0), repeat=d)))  # (2^d, d)


def exact_neg_elbo(model: BinaryVAE, x: torch.Tensor) -> torch.Tensor:
    """-ELBO by enumerating every z: -sum_z q(z|x) [log p(x|z) + log p(z) - log q(z|x)]."""
    z = all_states(D_LAT)[:, None, :]  # (S, 1, d)
    q = Bernoulli(logits=model.posterior(x).logits)  # batch (1, d)
    log_q = q.log_prob(z).sum(-1)  # (S, 1)
    log_joint = model.log_likelihood(x, z) + D_LAT * math.log(0.5)  # (S, 1)
    return -(log_q.exp() * (log_joint - log_q)).sum()


def model_params(model: BinaryVAE) -> list[torch.nn.Parameter]:
    return [*model.encoder.parameters(), *model.decoder.parameters()]


def flat_grad(model: BinaryVAE, loss: torch.Tensor) -> torch.Tensor:
    return torch.cat([g.flatten() for g in torch.autograd.grad(loss, model_params(model))])


def mc_gradients(model: BinaryVAE, repeats: int, batch: int) -> torch.Tensor:
    """(repeats, P): each row the gradient of the surrogate loss averaged over ``batch``
    independent latent samples for the same image (train mode: the baseline updates)."""
    model.train()
    xb = X.expand(batch, *X.shape[1:])
    return torch.stack([flat_grad(model, model.loss(xb)["loss"]) for _ in range(repeats)])


# -- the estimator ----------------------------------------------------------------------
@pytest.mark.parametrize("baseline", ["none", "mean", "learned"])
def test_score_function_gradient_matches_exact_enumeration(baseline):
    model = tiny(baseline)
    exact = flat_grad(model, exact_neg_elbo(model, X))  # (P,)
    g = mc_gradients(model, repeats=40, batch=2000)  # (R, P)
    mean, se = g.mean(0), g.std(0) / math.sqrt(len(g))
    zscores = (mean - exact) / (se + 1e-7)
    assert zscores.abs().max() < 5.0, zscores.abs().max()
    assert (zscores ** 2).mean() < 2.0  # about 1 for an unbiased estimator
    assert (se < 0.05 * exact.abs().max()).all()  # the tolerance is tight enough to matter


def test_baseline_lowers_variance_and_keeps_the_mean():
    ref = tiny("mean")
    ref.train()
    xb = X.expand(500, *X.shape[1:])
    for _ in range(30):  # warm the moving average up to E[log p(x|z)]
        ref.loss(xb)
    plain = tiny("none")
    plain.load_state_dict(ref.state_dict())
    n_enc = sum(p.numel() for p in ref.encoder.parameters())
    g_mean = mc_gradients(ref, repeats=40, batch=500)[:, :n_enc]
    g_none = mc_gradients(plain, repeats=40, batch=500)[:, :n_enc]
    var_mean, var_none = g_mean.var(0).sum(), g_none.var(0).sum()
    assert var_mean < 0.2 * var_none, (var_mean, var_none)
    se = (g_mean.var(0) / 40 + g_none.var(0) / 40).sqrt()
    assert ((g_mean.mean(0) - g_none.mean(0)).abs() / (se + 1e-7)).max() < 5.0


def test_logged_gradient_variances():
    model = tiny("mean")
    model.train()
    xb = X.expand(500, *X.shape[1:])
    for _ in range(30):
        out = model.loss(xb)
    assert out["grad_var"] < 0.2 * out["grad_var_nobaseline"]
    out = tiny("none").loss(xb)
    assert torch.equal(out["grad_var"], out["grad_var_nobaseline"])


def test_logged_variance_is_of_the_score_wrt_the_logits():
    """(signal - c) * (z - sigmoid(a)) is the per-example gradient of the surrogate
    (signal - c) log q(z|x) with respect to the encoder logits a."""
    model = tiny("none")
    torch.manual_seed(1)
    z, log_q, post = model.posterior_sample(X.expand(7, *X.shape[1:]), 1)
    logits = post.logits
    (g,) = torch.autograd.grad(log_q.sum(), logits)
    torch.testing.assert_close(g, z[0] - torch.sigmoid(logits))


# -- distributions -----------------------------------------------------------------------
def test_kl_and_log_q_match_torch_distributions():
    model = tiny()
    logits = torch.cat([torch.randn(5, D_LAT) * 4, torch.tensor([[-30.0, 0.0, 30.0]])])
    q, p = Bernoulli(logits=logits), Bernoulli(probs=torch.full_like(logits, 0.5))
    torch.testing.assert_close(model.kl(None, None, Posterior(logits=logits)), kl_divergence(q, p).sum(-1))
    # one value per latent unit: each unit's own Bernoulli KL
    torch.testing.assert_close(model.kl_terms(Posterior(logits=logits)), kl_divergence(q, p))
    z, log_q, post = model.posterior_sample(X.expand(4, *X.shape[1:]), 3)
    a = post.logits
    torch.testing.assert_close(log_q, Bernoulli(logits=a).log_prob(z).sum(-1))
    assert ((z == 0) | (z == 1)).all()
    torch.testing.assert_close(model.log_prior(z), Bernoulli(probs=0.5 * torch.ones_like(z)).log_prob(z).sum(-1))


def test_iwae_log_prob_approaches_exact_marginal():
    model = tiny()
    model.eval()
    z = all_states(D_LAT)[:, None, :]  # (S, 1, d)
    exact = torch.logsumexp(model.log_likelihood(X, z) + model.log_prior(z), 0)  # (1,)
    torch.manual_seed(2)
    est = model.log_prob(X, k=5000)
    assert (est - exact).abs().item() < 0.01
    elbo = -exact_neg_elbo(model, X)
    assert elbo < exact  # the bound is not tight, so the estimate did some work


# -- contract ---------------------------------------------------------------------------------
SMALL = {"latent_dim": 16, "hidden": [128]}


@pytest.mark.parametrize("cfg", [SMALL, {**SMALL, "baseline": "learned"}, {**SMALL, "arch": "conv"}])
def test_contract(cfg):
    model = BinaryVAE(BinaryVAEConfig(**{**cfg, "hidden": tuple(cfg["hidden"])}))
    out = check_loss_finite(model)
    assert {"grad_var", "grad_var_nobaseline", "elbo", "kl"} <= set(out)
    torch.testing.assert_close(out["loss"], -out["elbo"])  # surrogate value = -ELBO (beta 1)
    check_step_changes_weights(model)
    check_sample(model)
    assert model.encode(torch.zeros(3, 1, 28, 28)).shape == (3, 16)


def test_short_mnist_run_lowers_val_loss(mnist_small):
    train, val = mnist_small
    before, after = check_short_run_lowers_loss("binary-vae", SMALL, train, val, epochs=2)
    assert after < 0.5 * before  # -ELBO: about 543 nats at init, well under 270 after


def test_checkpoint_round_trip(mnist_small, tmp_path):
    train = mnist_small[0]
    small = ImageData(train.x[:500], train.y[:500], train.dataset, train.split)
    check_checkpoint_round_trip("binary-vae", {**SMALL, "baseline": "learned"}, tmp_path, small)
