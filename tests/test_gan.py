"""GAN and DCGAN: shapes, the two players' losses against torch.distributions, each
optimiser moving only its own player, the model contract, and a short real-MNIST run
that moves the generator's samples toward the data."""
from __future__ import annotations

import math

import pytest
import torch
from torch.distributions import Bernoulli

from genlab.data import ImageData
from genlab.models import build_model
from genlab.training.train import TrainConfig, fit

from contract import (check_checkpoint_round_trip, check_loss_finite, check_sample,
                      check_step_changes_weights, tiny_batch)

TINY = {"gan": {"latent_dim": 8, "hidden": (16, 32), "d_hidden": (32, 16)},
        "dcgan": {"latent_dim": 8, "width": 4}}
SHAPES = [(1, 28, 28), (3, 32, 32)]


def tiny(name: str, shape=(1, 28, 28)):
    return build_model(name, {**TINY[name], "image_shape": shape})


def params(net: torch.nn.Module) -> list[torch.Tensor]:
    return [p.detach().clone() for p in net.parameters()]


def changed(before: list[torch.Tensor], net: torch.nn.Module) -> bool:
    return any(not torch.equal(a, b) for a, b in zip(before, net.parameters()))


@pytest.mark.parametrize("name", ["gan", "dcgan"])
@pytest.mark.parametrize("shape", SHAPES)
def test_shapes_and_ranges(name, shape):
    model = tiny(name, shape).eval()
    z = model.sample_prior(5)
    assert z.shape == (5, model.cfg.latent_dim)
    fake = model.generator(z)
    assert fake.shape == (5, *shape) and fake.min() >= -1 and fake.max() <= 1
    assert model.discriminator(fake).shape == (5,)
    img = model.decode(z)
    assert torch.allclose(img, (fake + 1) / 2) and img.min() >= 0 and img.max() <= 1
    assert not model.caps.encode and model.caps.likelihood is None


@pytest.mark.parametrize("name", ["gan", "dcgan"])
def test_losses_are_bernoulli_log_likelihoods(name):
    """d_loss = -E log D(x) - E log(1 - D(G(z))), g_loss = -E log D(G(z)) (non-saturating)."""
    model = tiny(name).eval()
    x = tiny_batch(model, 16)
    torch.manual_seed(3)
    out = model.loss(x)
    torch.manual_seed(3)
    fake = model.generator(model.sample_prior(16))
    real_logit, fake_logit = model.discriminator(2 * x - 1), model.discriminator(fake)
    d_real, d_fake = Bernoulli(logits=real_logit), Bernoulli(logits=fake_logit)
    d_loss = -d_real.log_prob(torch.ones(16)).mean() - d_fake.log_prob(torch.zeros(16)).mean()
    g_loss = -d_fake.log_prob(torch.ones(16)).mean()
    torch.testing.assert_close(out["d_loss"], d_loss)
    torch.testing.assert_close(out["g_loss"], g_loss)
    torch.testing.assert_close(out["loss"], d_loss + g_loss)
    torch.testing.assert_close(out["d_real"], d_real.probs.mean())
    torch.testing.assert_close(out["d_fake"], d_fake.probs.mean())


@pytest.mark.parametrize("name", ["gan", "dcgan"])
def test_train_step_moves_both_players_each_with_its_own_optimiser(name):
    model = tiny(name).train()
    x = tiny_batch(model, 16)
    g0, d0 = params(model.generator), params(model.discriminator)
    out = model.train_step(x, model.configure_optimizers(1e-3))
    assert set(out) == {"loss", "d_loss", "g_loss", "d_real", "d_fake"}
    assert 0 < out["d_real"] < 1 and 0 < out["d_fake"] < 1
    assert changed(g0, model.generator) and changed(d0, model.discriminator)
    assert all(p.requires_grad for p in model.discriminator.parameters())
    # with one player's learning rate at zero, only the other player moves
    for frozen in ("discriminator", "generator"):
        opt_d, opt_g = model.configure_optimizers(1e-3)
        (opt_d if frozen == "discriminator" else opt_g).param_groups[0]["lr"] = 0.0
        g0, d0 = params(model.generator), params(model.discriminator)
        model.train_step(x, [opt_d, opt_g])
        assert changed(d0, model.discriminator) == (frozen == "generator")
        assert changed(g0, model.generator) == (frozen == "discriminator")


@pytest.mark.parametrize("name", ["gan", "dcgan"])
def test_contract(name, mnist_small, tmp_path):
    check_loss_finite(tiny(name))
    check_step_changes_weights(tiny(name))
    check_sample(tiny(name))
    check_sample(tiny(name, (3, 32, 32)))
    train, _ = mnist_small
    small = ImageData(train.x[:256], train.y[:256], train.dataset, train.split)
    check_checkpoint_round_trip(name, {**TINY[name], "image_shape": (1, 28, 28)}, tmp_path, small)


def mmd2(a: torch.Tensor, b: torch.Tensor) -> float:
    """Squared maximum mean discrepancy, Gaussian kernel with the median bandwidth."""
    xy = torch.cat([a.flatten(1), b.flatten(1)])  # (2n, D)
    d2 = torch.cdist(xy, xy) ** 2
    k = torch.exp(-d2 / d2[d2 > 0].median())
    n = len(a)
    return float(k[:n, :n].mean() + k[n:, n:].mean() - 2 * k[:n, n:].mean())


@pytest.mark.parametrize("name,cfg,n_train,epochs,batch_size,lr", [
    ("gan", {}, 1000, 4, 32, 1e-3),  # 128 steps of the report-001 MLP GAN
    ("dcgan", {"width": 8}, 640, 8, 64, 1e-3),  # 80 steps of a narrow DCGAN
])
def test_short_run_moves_samples_toward_data(name, cfg, n_train, epochs, batch_size, lr,
                                             mnist_small):
    """Both the mean-image distance and a kernel two-sample statistic (MMD) between
    generated and held-out images at least halve after a short run."""
    train, val = mnist_small
    train = ImageData(train.x[:n_train], train.y[:n_train], train.dataset, train.split)
    real = val.x.float() / 255  # (500, 1, 28, 28)
    torch.manual_seed(0)
    model = build_model(name, cfg)

    def stats() -> tuple[float, float]:
        model.eval()
        torch.manual_seed(1)
        fake = model.sample(len(real))
        return float((fake.mean(0) - real.mean(0)).norm()), mmd2(fake, real)

    dist0, mmd0 = stats()
    fit(model, train, None, TrainConfig(epochs=epochs, lr=lr, batch_size=batch_size,
                                        betas=(0.5, 0.999), log_every=1000))  # DCGAN's beta1
    dist1, mmd1 = stats()
    assert math.isfinite(dist1) and math.isfinite(mmd1)
    print(f"{name}: mean-image distance {dist0:.2f} -> {dist1:.2f}, MMD^2 {mmd0:.3f} -> {mmd1:.3f}")
    assert dist1 < 0.5 * dist0, (dist0, dist1)
    assert mmd1 < 0.5 * mmd0, (mmd0, mmd1)


# -- temperature: truncated noise (issue 12) ---------------------------------------------
@pytest.mark.parametrize("t", [0.3, 0.7, 0.95])
def test_truncated_noise_has_std_t_and_no_value_beyond_the_threshold(t):
    from genlab.models.gan import truncation_threshold

    tau = truncation_threshold(t)
    # the threshold's own definition: Var(Z | |Z| <= tau) = t^2, by numerical integration
    grid = torch.linspace(-tau, tau, 200_001, dtype=torch.float64)
    dens = torch.exp(-grid ** 2 / 2)
    var = torch.trapezoid(grid ** 2 * dens, grid) / torch.trapezoid(dens, grid)
    assert float(var) == pytest.approx(t * t, rel=1e-6)
    model = tiny("gan")
    torch.manual_seed(0)
    z = model.sample_prior(20_000, temperature=t)  # (20000, 8)
    assert z.shape == (20_000, 8) and float(z.abs().max()) <= tau
    assert float(z.abs().max()) > 0.98 * tau  # truncated, not shrunk
    assert float(z.std()) == pytest.approx(t, rel=0.01)  # 160,000 draws: about 0.2% error
    # same mass in each half and equal spread per unit: a symmetric truncation per component
    assert abs(float(z.mean())) < 0.01 and float(z.std(0).min()) > 0.97 * t


def test_gan_temperature_one_is_the_untruncated_prior_and_above_one_is_refused():
    model = tiny("gan")
    torch.manual_seed(3)
    a = model.sample_prior(100)
    torch.manual_seed(3)
    assert torch.equal(model.sample_prior(100, temperature=1.0), a)
    torch.manual_seed(3)
    assert torch.equal(a, torch.randn(100, 8))
    assert model.caps.max_temperature == 1.0  # declared, for the app's sliders
    with pytest.raises(ValueError, match="gan's temperature must be > 0 and <= 1 "):
        model.sample(4, temperature=1.5)
    assert model.sample(4, temperature=0.5).shape == (4, 1, 28, 28)


def test_old_gan_configs_fold_adam_beta1_into_the_training_betas(tmp_path):
    import json

    from genlab.models import upgrade_config
    from genlab.runs import store

    m, t = upgrade_config("gan", {"latent_dim": 8, "adam_beta1": 0.5}, {"lr": 2e-4})
    assert m == {"latent_dim": 8} and t == {"lr": 2e-4, "betas": [0.5, 0.999]}
    assert upgrade_config("gan", m, t) == (m, t)  # today's configs pass unchanged
    assert build_model("gan", {**TINY["gan"], "adam_beta1": 0.5}).cfg.latent_dim == 8  # an old checkpoint's
    cfg = {"model": "gan", "model_config": {**TINY["gan"], "adam_beta1": 0.5},
           "train": {"dataset": "mnist", "betas": [0.9, 0.999]}}
    (tmp_path / store.CONFIG).write_text(json.dumps(cfg))
    with pytest.raises(store.RunError) as e:
        store.read_config(tmp_path)
    assert "\n" not in str(e.value) and "adam_beta1 (0.5) and train.betas" in str(e.value)
    cfg["train"]["betas"] = [0.5, 0.99]  # agreeing: kept as written
    (tmp_path / store.CONFIG).write_text(json.dumps(cfg))
    assert store.read_config(tmp_path).train.betas == (0.5, 0.99)
